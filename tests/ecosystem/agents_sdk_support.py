"""Shared by the ports of the OpenAI Agents SDK's session tests (``test_agents_sdk_*.py``):
a manager with an in-process worker, the SDK's ``run_agent_async`` helper, small readers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from agents import Agent, RunConfig, Runner
from agents.testing import ScriptedModel
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from durable_sessions.adapters import DurableAgentsSession
from durable_sessions.client import SessionManager
from durable_sessions.models import SessionConfig
from durable_sessions.plugin import DurableSessionsPlugin
from durable_sessions.stores.base import SessionStore

__all__ = [
    "RUNNER_METHODS",
    "RUN_CONFIG",
    "contents_of",
    "input_of_last_call",
    "manager",
    "new_session",
    "run_agent_async",
]

RUN_CONFIG = RunConfig(tracing_disabled=True)
RUNNER_METHODS = ["run", "run_sync", "run_streamed"]
"""The source parametrizes most Runner tests over these; here the two tests that exercise the
session most (history and limit) run all three, the others use ``Runner.run`` (CI time)."""


@pytest_asyncio.fixture(loop_scope="session")
async def manager(
    temporal_env: WorkflowEnvironment, store: SessionStore, task_queue: str
) -> AsyncIterator[SessionManager]:
    async with Worker(
        temporal_env.client, task_queue=task_queue, plugins=[DurableSessionsPlugin(store)]
    ):
        yield SessionManager(
            temporal_env.client, store, SessionConfig(flush_interval=0.2), task_queue
        )


async def new_session(manager: SessionManager, **kwargs: Any) -> DurableAgentsSession:
    return await DurableAgentsSession.create(manager, "sdk-suite", **kwargs)


def _run_sync_wrapper(agent: Agent[Any], input_data: Any, **kwargs: Any) -> Any:
    """As the SDK's helper: ``Runner.run_sync`` on a new event loop in its own thread."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return Runner.run_sync(agent, input_data, **kwargs)
    finally:
        loop.close()
        asyncio.set_event_loop(None)


async def run_agent_async(method: str, agent: Agent[Any], input_data: Any, **kwargs: Any) -> Any:
    """The SDK's ``run_agent_async`` helper (``tests/memory/test_session.py``)."""
    kwargs.setdefault("run_config", RUN_CONFIG)
    if method == "run":
        return await Runner.run(agent, input_data, **kwargs)
    if method == "run_sync":
        return await asyncio.to_thread(_run_sync_wrapper, agent, input_data, **kwargs)
    result = Runner.run_streamed(agent, input_data, **kwargs)
    async for _ in result.stream_events():
        pass
    return result


def input_of_last_call(model: ScriptedModel) -> list[Any]:
    call = model.last_call
    assert call is not None
    data = call.input
    return [{"role": "user", "content": data}] if isinstance(data, str) else list(data)


def contents_of(items: list[Any]) -> list[Any]:
    out = []
    for item in items:
        content = item.get("content")
        out.append(content[0]["text"] if isinstance(content, list) else content)
    return out

"""Port of the OpenAI Agents SDK's ``tests/memory/test_session_limit.py`` and of the
backend-independent tests of its Mongo/Redis/SQLAlchemy session suites, run against
``DurableAgentsSession`` (see ``test_agents_sdk_suite.py`` for how the port is made)."""

from __future__ import annotations

from typing import Any

import pytest
from agents import Agent, RunConfig, Runner
from agents.memory import SessionSettings
from agents.testing import ScriptedModel, assistant_message

from durable_sessions.client import SessionManager
from tests.ecosystem.agents_sdk_support import (
    RUN_CONFIG,
    RUNNER_METHODS,
    contents_of,
    input_of_last_call,
    manager,
    new_session,
    run_agent_async,
)

__all__ = ["manager"]  # the fixture, imported for pytest


# ------------------------------------------------------- tests/memory/test_session_limit.py


async def _three_exchanges(manager: SessionManager, method: str, n: int) -> Any:
    session = await new_session(manager)
    model = ScriptedModel()
    agent = Agent(name="test", model=model)
    for i in range(1, n + 1):
        model.enqueue([assistant_message(f"Reply {i}")])
        await run_agent_async(method, agent, f"Message {i}", session=session)
    return session, model, agent


@pytest.mark.parametrize("runner_method", RUNNER_METHODS)
async def test_session_limit_parameter(manager: SessionManager, runner_method: str) -> None:
    """``test_session_limit_parameter``."""
    session, model, agent = await _three_exchanges(manager, runner_method, 3)
    assert len(await session.get_items()) == 6
    model.enqueue([assistant_message("Reply 4")])
    await run_agent_async(
        runner_method,
        agent,
        "Message 4",
        session=session,
        run_config=RunConfig(tracing_disabled=True, session_settings=SessionSettings(limit=2)),
    )
    assert contents_of(input_of_last_call(model)) == ["Message 3", "Reply 3", "Message 4"]


async def test_session_limit_zero(manager: SessionManager) -> None:
    """``test_session_limit_zero`` (with ``Runner.run``; the Runner method is covered above)."""
    session, model, agent = await _three_exchanges(manager, "run", 2)
    model.enqueue([assistant_message("Reply 3")])
    await run_agent_async(
        "run",
        agent,
        "Message 3",
        session=session,
        run_config=RunConfig(tracing_disabled=True, session_settings=SessionSettings(limit=0)),
    )
    assert contents_of(input_of_last_call(model)) == ["Message 3"]


async def test_session_limit_none_gets_all_history(manager: SessionManager) -> None:
    """``test_session_limit_none_gets_all_history``."""
    session, model, agent = await _three_exchanges(manager, "run", 5)
    assert len(await session.get_items()) == 10
    model.enqueue([assistant_message("Reply 6")])
    await run_agent_async(
        "run",
        agent,
        "Message 6",
        session=session,
        run_config=RunConfig(tracing_disabled=True, session_settings=SessionSettings(limit=None)),
    )
    seen = contents_of(input_of_last_call(model))
    assert len(seen) == 11 and seen[0] == "Message 1" and seen[-1] == "Message 6"


async def test_session_limit_larger_than_history(manager: SessionManager) -> None:
    """``test_session_limit_larger_than_history``."""
    session, model, agent = await _three_exchanges(manager, "run", 1)
    model.enqueue([assistant_message("Reply 2")])
    await run_agent_async(
        "run",
        agent,
        "Message 2",
        session=session,
        run_config=RunConfig(tracing_disabled=True, session_settings=SessionSettings(limit=100)),
    )
    assert contents_of(input_of_last_call(model)) == ["Message 1", "Reply 1", "Message 2"]


async def test_session_limit_negative_returns_empty(manager: SessionManager) -> None:
    """``test_session_limit_negative_returns_empty``."""
    session = await new_session(manager)
    await session.add_items(
        [{"role": "user", "content": "1"}, {"role": "assistant", "content": "2"}]
    )
    assert await session.get_items(limit=-1) == []
    assert await session.get_items(limit=0) == []
    assert len(await session.get_items(limit=1)) == 1
    assert len(await session.get_items()) == 2


# ---------------------------------------------------------------- backend suites (generic tests)


async def test_add_empty_list_is_noop(manager: SessionManager) -> None:
    """Mongo suite ``test_add_empty_list_is_noop`` (also in the Redis/SQLAlchemy suites)."""
    session = await new_session(manager)
    await session.add_items([])
    assert await session.get_items() == []
    assert (await session.state()).turn_count == 0


async def test_multiple_add_calls_accumulate(manager: SessionManager) -> None:
    """Mongo suite ``test_multiple_add_calls_accumulate``."""
    session = await new_session(manager)
    for text, role in (("a", "user"), ("b", "assistant"), ("c", "user")):
        await session.add_items([{"role": role, "content": text}])  # type: ignore[misc]
    assert contents_of(await session.get_items()) == ["a", "b", "c"]


async def test_sessions_are_isolated_and_clear_does_not_affect_others(
    manager: SessionManager,
) -> None:
    """Mongo suite ``test_sessions_are_isolated`` and
    ``test_clear_does_not_affect_other_sessions``."""
    s1 = await new_session(manager)
    s2 = await new_session(manager)
    await s1.add_items([{"role": "user", "content": "keep"}])
    await s2.add_items([{"role": "user", "content": "delete"}])
    assert contents_of(await s1.get_items()) == ["keep"]
    assert contents_of(await s2.get_items()) == ["delete"]
    await s2.clear_session()
    assert len(await s1.get_items()) == 1
    assert await s2.get_items() == []


async def test_runner_integration_keeps_history(manager: SessionManager) -> None:
    """Mongo/Redis suites ``test_runner_integration``: a second run sees the first."""
    session = await new_session(manager)
    model = ScriptedModel([[assistant_message("San Francisco")], [assistant_message("CA")]])
    agent = Agent(name="test", model=model)
    await Runner.run(agent, "Where is the bridge?", session=session, run_config=RUN_CONFIG)
    await Runner.run(agent, "Which state?", session=session, run_config=RUN_CONFIG)
    assert contents_of(input_of_last_call(model)) == [
        "Where is the bridge?",
        "San Francisco",
        "Which state?",
    ]

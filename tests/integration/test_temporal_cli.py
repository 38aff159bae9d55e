"""A client we did not write, the ``temporal`` CLI, drives a session with JSON."""

from __future__ import annotations

import asyncio
import json

from temporalio.testing import WorkflowEnvironment

from durable_sessions.models import SessionStatus
from tests.helpers import assert_eventually, bundled_binary
from tests.integration.conftest import Stack


async def temporal_cli(env: WorkflowEnvironment, *args: str) -> str:
    target = env.client.service_client.config.target_host
    proc = await asyncio.create_subprocess_exec(
        bundled_binary("temporal"),
        *args,
        "--address",
        target,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_temporal_cli_signals_add_turn_and_queries_state(
    stack: Stack, temporal_env: WorkflowEnvironment
) -> None:
    s = await stack.manager.create("cli-user")
    await temporal_cli(
        temporal_env,
        "workflow",
        "signal",
        "--workflow-id",
        s.session_id,
        "--name",
        "add_turn",
        "--input",
        json.dumps({"role": "user", "content": "hi from the temporal CLI"}),
    )

    async def stored() -> None:
        history = await stack.manager.history(s.session_id)
        assert [t.content for t in history] == ["hi from the temporal CLI"]
        assert history[0].turn_id  # filled in by the workflow, deterministically
        assert history[0].seq == 0

    await assert_eventually(stored)

    out = await temporal_cli(
        temporal_env,
        "workflow",
        "query",
        "--workflow-id",
        s.session_id,
        "--name",
        "state",
        "-o",
        "json",
    )
    payload = json.loads(out)
    state = payload["queryResult"][0] if "queryResult" in payload else payload
    assert state["session_id"] == s.session_id
    assert state["status"] == SessionStatus.ACTIVE.value
    assert state["turn_count"] == 1

    out = await temporal_cli(
        temporal_env,
        "workflow",
        "update",
        "execute",
        "--workflow-id",
        s.session_id,
        "--name",
        "add_turn",
        "--input",
        json.dumps({"role": "assistant", "content": "hello, CLI", "turn_id": "cli-turn-1"}),
    )
    assert "cli-turn-1" in out
    assert (await stack.manager.get(s.session_id)).turn_count == 2

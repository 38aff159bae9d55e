"""Multi-agent group sessions on the real stack, including kill -9 of the worker mid-run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from examples.agents import team
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from durable_sessions.client import SessionManager
from durable_sessions.core.turn_managers import PriorityTurnManager, TopicBasedTurnManager
from durable_sessions.errors import WorkerUnavailableError
from durable_sessions.group import GroupSession
from durable_sessions.models import SessionConfig, SessionTurn
from durable_sessions.stores.base import SessionStore, read_transcript
from durable_sessions.stores.postgres import PostgresSessionStore
from durable_sessions.worker import create_worker
from tests.helpers import assert_eventually
from tests.processes import WorkerProcess


@pytest_asyncio.fixture(loop_scope="session")
async def group_manager(
    client: Client, store: SessionStore, task_queue: str
) -> AsyncIterator[SessionManager]:
    async with create_worker(client, store, task_queue=task_queue, agents=team()):  # type: ignore[arg-type]
        yield SessionManager(client, store, SessionConfig(flush_interval=0.2), task_queue)


async def test_round_robin_ticks_human_turns_and_failures(group_manager: SessionManager) -> None:
    m = group_manager
    group = await GroupSession.create(m, "team-lead", max_attempts=2)
    for name in ("researcher", "writer", "critic"):
        await group.add_agent(name, role=name)

    first = await group.tick()
    assert first.agent == "researcher"
    assert first.role == "assistant"
    # A human speaks between ticks: the next agent sees it.
    human = await m.add_turn(group.session_id, SessionTurn(role="user", content="focus on cost"))
    second = await group.tick()
    assert second.agent == "writer"
    assert f"user #{human.seq}" in second.content

    turns = await group.run(rounds=2)
    assert [t.agent for t in turns] == ["critic", "researcher", "writer"] * 2

    # A failing agent is skipped with a recorded failure turn; the group goes on.
    await group.add_agent("flaky", role="unreliable")
    turns = await group.run(rounds=1)
    assert [t.agent for t in turns] == ["critic", "flaky", "researcher", "writer"]
    failure = turns[1]
    assert failure.role == "system"
    assert failure.metadata["agent_failure"] is True
    state = await group.state()
    assert [f.agent for f in state.failures] == ["flaky"]
    assert state.failures[0].attempts == 2


async def test_private_turns_and_other_managers(group_manager: SessionManager) -> None:
    m = group_manager
    group = await GroupSession.create(m, "u", PriorityTurnManager())
    await group.add_agent("writer", role="writer", priority=1)
    await group.add_agent("note-taker", role="notes", priority=5)
    await group.add_agent("critic", role="critic", priority=3)
    turns = await group.run(rounds=1)
    assert [t.agent for t in turns] == ["note-taker", "critic", "writer"]
    assert turns[0].metadata.get("private") is True
    # The critic and the writer did not see the private note.
    assert "(0 turns seen" in turns[1].content
    assert "(1 turns seen" in turns[2].content

    topical = await GroupSession.create(m, "u", TopicBasedTurnManager())
    await topical.add_agent("researcher", role="r", topics=["sources", "data"])
    await topical.add_agent("critic", role="c", topics=["flaws", "review"])
    await m.add_turn(topical.session_id, SessionTurn(role="user", content="please review flaws"))
    assert (await topical.tick()).agent == "critic"
    await m.add_turn(topical.session_id, SessionTurn(role="user", content="find data sources"))
    assert (await topical.tick()).agent == "researcher"


async def test_thirty_rounds_survive_two_worker_kills(
    temporal_env: WorkflowEnvironment, pg_url: tuple[str, str], task_queue: str, tmp_path: Path
) -> None:
    dsn, schema = pg_url
    store = PostgresSessionStore(dsn, schema=schema)
    await store.setup()
    worker = WorkerProcess(
        temporal_env, task_queue, f"{dsn}?schema={schema}", tmp_path, agents="examples.agents:team"
    )
    worker.start()
    manager = SessionManager(
        temporal_env.client, store, SessionConfig(flush_interval=0.2), task_queue, call_timeout=5
    )
    try:
        group = await GroupSession.create(manager, "crash-team")
        for name in ("researcher", "writer", "critic"):
            await group.add_agent(name, role=name)

        async def chaos() -> None:
            for _ in range(2):
                await asyncio.sleep(2.0)
                worker.kill9()
                await asyncio.sleep(1.0)
                worker.start()

        runner = asyncio.create_task(group.run(rounds=30))  # rides out the restarts itself
        await chaos()
        produced = await asyncio.wait_for(runner, timeout=120)
        assert [t.agent for t in produced] == ["researcher", "writer", "critic"] * 30

        async def ninety() -> None:
            try:
                state = await group.state()
            except WorkerUnavailableError as exc:  # mid-restart
                raise AssertionError("worker restarting") from exc
            assert state.ticks_done >= 90

        await assert_eventually(ninety, timeout=120, interval=0.5)

        async def stored() -> None:
            header = await store.get_session(group.session_id)
            assert header is not None
            assert header.turn_count == 90

        await assert_eventually(stored, timeout=30)
        transcript = await read_transcript(store, group.session_id)
        agents = [t.agent for t in transcript]
        assert agents == ["researcher", "writer", "critic"] * 30
        assert len({t.turn_id for t in transcript}) == 90
        assert worker.starts == 3
    finally:
        worker.stop()
        await store.close()

"""Continue-as-new forced by the server at a low threshold: nothing lost, nothing duplicated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from durable_sessions.client import SessionManager
from durable_sessions.models import SessionConfig, SessionTurn
from durable_sessions.stores.base import SessionStore
from durable_sessions.worker import create_worker
from tests.conftest import start_dev_server
from tests.helpers import assert_eventually


@pytest_asyncio.fixture(loop_scope="session")
async def can_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_dev_server(
        "--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=60"
    )
    yield env
    await env.shutdown()


async def test_forced_continue_as_new_keeps_every_turn_and_dedup(
    can_env: WorkflowEnvironment, store: SessionStore, task_queue: str
) -> None:
    client = can_env.client
    manager = SessionManager(client, store, SessionConfig(flush_interval=0.1), task_queue)
    async with create_worker(client, store, task_queue=task_queue):
        s = await manager.create("can-user")
        sent: list[SessionTurn] = []

        signals: list[SessionTurn] = []

        async def sender(c: int) -> None:
            for i in range(50):
                turn = SessionTurn(role="user", content=f"c{c} turn {i}")
                sent.append(turn)
                await manager.add_turn(s.session_id, turn)
                if i % 5 == 4:  # signals too, also while a run drains before continuing
                    signal = SessionTurn(role="user", content=f"c{c} signal {i}")
                    signals.append(signal)
                    await manager.send_turn(s.session_id, signal)

        await asyncio.gather(*(sender(c) for c in range(4)))

        async def all_there() -> None:
            state = await manager.get(s.session_id)
            if state.turn_count != 240:
                have = {t.content for t in await manager.history(s.session_id)}
                missing = sorted({t.content for t in [*sent, *signals]} - have)
                raise AssertionError(f"{state.turn_count} turns; missing {missing}")

        await assert_eventually(all_there)

        async def several_runs() -> None:  # visibility is eventually consistent
            runs = [r async for r in client.list_workflows(f"WorkflowId = '{s.session_id}'")]
            continued = [r for r in runs if r.status == WorkflowExecutionStatus.CONTINUED_AS_NEW]
            assert len(continued) >= 3, f"expected several runs, got {len(runs)}"

        await assert_eventually(several_runs)

        # Dedup survives continue-as-new: retrying an early turn returns its original seq.
        early = sent[3]
        again = await manager.add_turn(s.session_id, early)
        history = await manager.history(s.session_id)
        assert again.seq == next(t.seq for t in history if t.turn_id == early.turn_id)
        assert len(history) == 240
        assert [t.seq for t in history] == list(range(240))
        assert len({t.turn_id for t in history}) == 240
        assert {t.turn_id for t in sent} <= {t.turn_id for t in history}

        async def flushed() -> None:
            stored = await store.get_session(s.session_id)
            assert stored is not None and stored.turn_count == 240

        await assert_eventually(flushed)


async def test_idle_sessions_continue_as_new_only_once_their_run_has_grown(
    client: Client, store: SessionStore, task_queue: str
) -> None:
    """``_patches.IDLE_CONTINUE_PAYS``: a session given two turns stays in its run through a
    quiet (ending it would cost a replay and a new run for a few events); one given twelve
    ends its run when it goes quiet, and its next turn goes into a run of a handful of events."""
    cfg = SessionConfig(idle_continue_after=0.5, flush_interval=0.1)
    manager = SessionManager(client, store, cfg, task_queue)
    async with create_worker(client, store, task_queue=task_queue):
        short = await manager.create("idle-user")
        grown = await manager.create("idle-user")
        for i in range(12):
            for s in (short, grown) if i < 2 else (grown,):
                await manager.add_turn(s.session_id, SessionTurn(role="user", content=f"t{i}"))
        runs = {
            s.session_id: (await client.get_workflow_handle(s.session_id).describe()).run_id
            for s in (short, grown)
        }

        async def grown_continued() -> None:
            handle = client.get_workflow_handle(grown.session_id)
            assert (await handle.describe()).run_id != runs[grown.session_id]

        await assert_eventually(grown_continued, timeout=20)
        await asyncio.sleep(1.5)  # three times idle_continue_after, for the short one too
        for s in (short, grown):
            await manager.add_turn(s.session_id, SessionTurn(role="user", content="back"))
        await asyncio.sleep(1.5)  # a run of features 3-9 would have ended after this visit
        short_handle = client.get_workflow_handle(short.session_id)
        assert (await short_handle.describe()).run_id == runs[short.session_id]
        continued = await client.get_workflow_handle(grown.session_id).fetch_history()
        assert len(continued.events) < 18
        assert [t.content for t in await manager.history(short.session_id)] == ["t0", "t1", "back"]
        assert len(await manager.history(grown.session_id)) == 13


async def test_a_run_that_follows_a_full_one_continues_as_new_when_idle_from_16_events(
    client: Client, store: SessionStore, task_queue: str
) -> None:
    """``_patches.FULL_RUN_IDLE``: a session that took a burst of turns is left, after its last
    size continue-as-new, with a run of 16-39 events; once quiet it continues as new into a
    minimal run (its next cold turn replays a handful of events), while a first run of the same
    length stays as it is (runs of features 10). Nothing is lost either way."""
    cfg = SessionConfig(idle_continue_after=0.5, flush_interval=0.1, max_events_per_run=50)
    manager = SessionManager(client, store, cfg, task_queue)

    async def run_id(session_id: str) -> str:
        return (await client.get_workflow_handle(session_id).describe()).run_id

    async def events(session_id: str) -> int:
        return len((await client.get_workflow_handle(session_id).fetch_history()).events)

    async with create_worker(client, store, task_queue=task_queue):
        burst = (await manager.create("idle-user")).session_id
        first = (await manager.create("idle-user")).session_id
        sent = {burst: 0, first: 0}

        async def turn(session_id: str) -> None:
            await manager.add_turn(
                session_id, SessionTurn(role="user", content=f"t{sent[session_id]}")
            )
            sent[session_id] += 1

        first_run = await run_id(burst)
        while await run_id(burst) == first_run:
            await turn(burst)
        after_full = await run_id(burst)
        while await events(burst) < 20:
            await turn(burst)
        while await events(first) < 20:
            await turn(first)
        lengths = {sid: await events(sid) for sid in (burst, first)}
        assert all(16 <= n < 40 for n in lengths.values()), lengths
        first_of_first = await run_id(first)

        async def burst_continued() -> None:
            assert await run_id(burst) != after_full

        await assert_eventually(burst_continued, timeout=20)
        await asyncio.sleep(1.5)  # three times idle_continue_after, for the first run too
        assert await run_id(first) == first_of_first
        assert await events(burst) < 16  # the minimal run
        for sid in (burst, first):
            await turn(sid)
            assert [t.seq for t in await manager.history(sid)] == list(range(sent[sid]))

        async def stored() -> None:
            for sid in (burst, first):
                header = await store.get_session(sid)
                assert header is not None and header.turn_count == sent[sid]

        await assert_eventually(stored)

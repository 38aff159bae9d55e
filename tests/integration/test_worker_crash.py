"""kill -9 of the worker during a stream of turns: every acknowledged turn stored, none twice."""

from __future__ import annotations

import asyncio

from temporalio.testing import WorkflowEnvironment

from durable_sessions.client import SessionManager
from durable_sessions.errors import WorkerUnavailableError
from durable_sessions.models import SessionConfig, SessionTurn
from durable_sessions.stores.base import read_transcript
from tests.helpers import assert_eventually
from tests.processes import PgWorker


async def test_kill_9_worker_mid_stream(
    temporal_env: WorkflowEnvironment, pg_worker: PgWorker, task_queue: str
) -> None:
    store, worker = pg_worker.store, pg_worker.worker
    manager = SessionManager(
        temporal_env.client,
        store,
        SessionConfig(flush_interval=0.2),
        task_queue,
        call_timeout=5,
    )
    acked: list[str] = []
    s = await manager.create("crash-user")

    async def sender(c: int) -> None:
        for i in range(40):
            turn = SessionTurn(role="user", content=f"c{c}-{i}")
            while True:  # a client that retries with the same turn_id
                try:
                    await manager.add_turn(s.session_id, turn)
                    break
                except WorkerUnavailableError:
                    await asyncio.sleep(0.2)
            acked.append(turn.turn_id)
            await asyncio.sleep(0.01)

    async def chaos() -> None:
        for _ in range(2):
            await asyncio.sleep(1.5)
            worker.kill9()
            await asyncio.sleep(1.0)
            worker.start()

    await asyncio.gather(chaos(), *(sender(c) for c in range(4)))
    assert len(acked) == 160

    async def all_in_store() -> None:
        header = await store.get_session(s.session_id)
        assert header is not None and header.turn_count == 160
        turns = await read_transcript(store, s.session_id)
        ids = [t.turn_id for t in turns]
        assert len(ids) == len(set(ids)) == 160
        assert set(ids) == set(acked)
        assert [t.seq for t in turns] == list(range(160))

    await assert_eventually(all_in_store, timeout=30)

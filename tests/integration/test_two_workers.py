"""Horizontal scale: two worker processes on one task queue; kill -9 one mid-run."""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from durable_sessions.client import SessionManager
from durable_sessions.errors import WorkerUnavailableError
from durable_sessions.models import SessionConfig, SessionTurn
from durable_sessions.stores.base import read_transcript
from durable_sessions.stores.postgres import PostgresSessionStore
from tests.helpers import assert_eventually
from tests.processes import WorkerProcess

SESSIONS = 200


async def test_two_workers_share_sessions_and_survive_losing_one(
    temporal_env: WorkflowEnvironment, pg_url: tuple[str, str], task_queue: str, tmp_path: Path
) -> None:
    dsn, schema = pg_url
    store = PostgresSessionStore(dsn, schema=schema)
    await store.setup()
    url = f"{dsn}?schema={schema}"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    worker_a = WorkerProcess(temporal_env, task_queue, url, tmp_path / "a")
    worker_b = WorkerProcess(temporal_env, task_queue, url, tmp_path / "b")
    worker_a.start()
    worker_b.start()
    manager = SessionManager(
        temporal_env.client, store, SessionConfig(flush_interval=0.3), task_queue, call_timeout=5
    )
    limit = asyncio.Semaphore(20)

    async def add(session_id: str, text: str) -> None:
        turn = SessionTurn(role="user", content=text)
        async with limit:
            while True:
                try:
                    await manager.add_turn(session_id, turn)
                    return
                except WorkerUnavailableError:
                    await asyncio.sleep(0.2)

    try:

        async def start(i: int) -> str:
            async with limit:
                return (await manager.create(f"user-{i % 10}")).session_id

        ids = await asyncio.gather(*(start(i) for i in range(SESSIONS)))
        await asyncio.gather(*(add(sid, "one") for sid in ids))

        # Both processes did work: workflow tasks of the sessions name both workers.
        assert worker_a.proc is not None and worker_b.proc is not None
        identities: set[str] = set()
        for sid in ids[:40]:
            history = await temporal_env.client.get_workflow_handle(sid).fetch_history()
            identities.update(
                e.workflow_task_started_event_attributes.identity
                for e in history.events
                if e.HasField("workflow_task_started_event_attributes")
            )
        pids = {i.split("@", 1)[0] for i in identities}
        assert {str(worker_a.proc.pid), str(worker_b.proc.pid)} <= pids

        worker_a.kill9()  # one worker gone for good: the other takes every session over
        await asyncio.gather(*(add(sid, "two") for sid in ids))

        async def all_stored() -> None:
            for sid in ids:
                turns = await read_transcript(store, sid)
                assert [t.content for t in turns] == ["one", "two"], sid

        await assert_eventually(all_stored, timeout=60, interval=0.5)
    finally:
        worker_a.stop()
        worker_b.stop()
        await store.close()

"""Reproduce, or show fixed, a nondeterminism error after a worker crash (an SDK issue).

A worker is killed (-9) and restarted while a session's flush timer is pending; the next
update arrives in the same (cold, full-history) workflow task as the timer's firing, and the SDK
can order the two differently live and on replay (compare temporalio/sdk-python#1591). Sessions
now produce the same commands in both orders (a flush leaves out the turns that arrived in the
current workflow task): this script prints "replay ok" where earlier code failed with "Update
machine does not handle this event" or "No command scheduled for event ... TimerStarted". The
regression test is ``tests/faults/test_cold_update_replay.py``.

    python scripts/repro_cold_update_nde.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from temporalio.worker import Replayer  # noqa: E402
from tests.conftest import start_dev_server  # noqa: E402
from tests.pg import postgres_dsn_or_skip, temporary_schema  # noqa: E402
from tests.processes import WorkerProcess  # noqa: E402

from durable_sessions.client import SessionManager  # noqa: E402
from durable_sessions.models import SessionConfig, SessionTurn  # noqa: E402
from durable_sessions.plugin import DurableSessionsPlugin  # noqa: E402
from durable_sessions.stores.memory import InMemorySessionStore  # noqa: E402
from durable_sessions.stores.postgres import PostgresSessionStore  # noqa: E402


async def main() -> int:
    env = await start_dev_server()
    dsn = await postgres_dsn_or_skip()
    failed = False
    async with temporary_schema(dsn) as schema:
        store = PostgresSessionStore(dsn, schema=schema)
        await store.setup()
        queue = "repro-" + uuid.uuid4().hex[:8]
        worker = WorkerProcess(env, queue, f"{dsn}?schema={schema}", Path(tempfile.mkdtemp()))
        worker.start()
        manager = SessionManager(
            env.client, store, SessionConfig(flush_interval=0.2), queue, call_timeout=30
        )
        session = await manager.create("repro")
        try:
            for i in range(4):
                await manager.add_turn(session.session_id, SessionTurn(role="user", content=f"{i}"))
                worker.kill9()
                worker.start()
                started = time.perf_counter()
                await manager.get(session.session_id)
                print(f"query after restart: {time.perf_counter() - started:.2f} s")
                await manager.add_turn(session.session_id, SessionTurn(role="user", content="y"))
        except Exception as exc:
            print("live error:", type(exc).__name__, exc)
            failed = True
        history = await env.client.get_workflow_handle(session.session_id).fetch_history()
        replayer = Replayer(workflows=[], plugins=[DurableSessionsPlugin(InMemorySessionStore())])
        try:
            await replayer.replay_workflow(history)
            print("replay ok")
        except Exception as exc:
            print("replay error:", type(exc).__name__, str(exc)[:200])
            failed = True
        worker.stop()
        await store.close()
    await env.shutdown()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

"""A deploy while callers are busy: the worker is stopped (SIGTERM) and a new process takes over
while 10 callers keep adding turns to 10 sessions. Every call succeeds, every acknowledged turn
is stored exactly once, and no workflow task fails or times out; how long the callers waited
across the restart is printed (a timing, not asserted)."""

from __future__ import annotations

import asyncio
import time

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from durable_sessions.client import SessionManager
from durable_sessions.models import SessionTurn
from tests.processes import PgWorker

pytestmark = pytest.mark.slow

SESSIONS = 10
BAD_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
}


async def test_a_deploy_under_traffic_loses_nothing_and_fails_no_call(
    temporal_env: WorkflowEnvironment, pg_worker: PgWorker, task_queue: str
) -> None:
    manager = SessionManager(temporal_env.client, pg_worker.store, task_queue=task_queue)
    sids = [(await manager.create("deploy")).session_id for _ in range(SESSIONS)]
    acknowledged = {sid: 0 for sid in sids}
    latencies: list[float] = []
    errors: list[str] = []
    done = asyncio.Event()

    async def caller(sid: str) -> None:
        while not done.is_set():
            started = time.monotonic()
            try:
                await manager.add_turn(
                    sid, SessionTurn(role="user", content=f"turn {acknowledged[sid]}")
                )
                acknowledged[sid] += 1
            except Exception as exc:  # every failure is a finding: collected, then asserted
                errors.append(type(exc).__name__)
            latencies.append(time.monotonic() - started)

    callers = [asyncio.ensure_future(caller(sid)) for sid in sids]
    await asyncio.sleep(3)
    pg_worker.worker.stop()  # the deploy: SIGTERM, in-flight tasks finish
    pg_worker.worker.start()
    await asyncio.sleep(4)
    done.set()
    await asyncio.gather(*callers)

    bad: list[str] = []
    for sid in sids:
        state = await manager.get(sid)
        assert state.turn_count == acknowledged[sid]  # nothing lost, nothing twice
        history = await temporal_env.client.get_workflow_handle(sid).fetch_history()
        bad += [EventType.Name(e.event_type) for e in history.events if e.event_type in BAD_EVENTS]
    latencies.sort()
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    slow = [round(x, 2) for x in latencies if x > 0.5]
    print(
        f"\ndeploy under traffic: {len(latencies)} calls, p50 {p50:.3f} s, p99 {p99:.3f} s, "
        f"calls over 0.5 s: {slow}"
    )
    assert errors == []
    assert bad == []

"""After a deploy: every session is cold on a freshly started worker, and all of them are called
at once. Nothing may fail and no replay may overrun its task timeout (issue: cold sessions); how
long calls wait is printed, against the issue's p99 <= 2 s goal (not asserted: see the end).

50 sessions of 1,000 turns each, every one holding as many turns in its current run as the
run-length rules allow (``max_events_per_run``: its last ~30 turns as single updates, no idle
continue-as-new to shrink it first), the worker process stopped (SIGTERM, or kill -9) and started
again (an empty cache: each session's next call replays its current run), then 10 callers touch
all 50 at once.
Figures go to ``tests/faults/RESULTS.md`` by hand from the printed line.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.testing import WorkflowEnvironment

from durable_sessions.client import SessionManager
from durable_sessions.models import SessionConfig, SessionState, SessionTurn
from tests.processes import PgWorker

pytestmark = pytest.mark.slow

SESSIONS = int(os.environ.get("DURABLE_SESSIONS_RESTART_SESSIONS", "50"))
TURNS = int(os.environ.get("DURABLE_SESSIONS_RESTART_TURNS", "1000"))
TAIL = 30
"""Single-turn updates at the end of each session: what its current run holds (30 updates of
~5 events each stay under the default ``max_events_per_run`` of 200)."""
CALLERS = 10
BATCH = 100
P99_GOAL = 2.0
CONFIG = SessionConfig(idle_continue_after=None)
"""The worst case: runs are not shrunk by idle continue-as-new before the restart."""

BAD_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
}


def _turns(session: str, start: int, count: int) -> list[SessionTurn]:
    return [
        SessionTurn(turn_id=f"{session}-{i}", role="user", content=f"turn {i} of a long chat")
        for i in range(start, start + count)
    ]


async def _populate(manager: SessionManager, sid: str) -> int:
    """1,000 turns: batches, then single turns into a fresh run; returns the run's events."""
    client = manager.client
    done = 0
    while done < TURNS - TAIL - BATCH:
        await manager.add_turns(sid, _turns(sid, done, BATCH))
        done += BATCH
    # Single turns until the run continues as new, so the tail starts a run of its own ...
    run = (await client.get_workflow_handle(sid).describe()).run_id
    while (await client.get_workflow_handle(sid).describe()).run_id == run:
        await manager.add_turn(sid, _turns(sid, done, 1)[0])
        done += 1
    # ... then a batch up to the tail, and the tail one turn per update.
    await manager.add_turns(sid, _turns(sid, done, TURNS - TAIL - done))
    done = TURNS - TAIL
    for i in range(TAIL):
        await manager.add_turn(sid, _turns(sid, done + i, 1)[0])
    await manager._update(sid, "flush", None, SessionState)  # everything stored
    return (await client.get_workflow_handle(sid).describe()).history_length


@pytest.mark.parametrize("restart", ["stop", "kill9"])
async def test_every_cold_session_answers_after_a_restart(
    temporal_env: WorkflowEnvironment, pg_worker: PgWorker, task_queue: str, restart: str
) -> None:
    manager = SessionManager(
        temporal_env.client, pg_worker.store, CONFIG, task_queue, call_timeout=30
    )
    sids = [(await manager.create("deploy")).session_id for _ in range(SESSIONS)]
    gate = asyncio.Semaphore(CALLERS)

    async def populate(sid: str) -> int:
        async with gate:
            return await _populate(manager, sid)

    run_events = await asyncio.gather(*(populate(s) for s in sids))
    states = await asyncio.gather(*(manager.get(s) for s in sids))
    assert all(s.turn_count == TURNS for s in states)

    # The deploy (a graceful stop) or a crash (kill -9): a new process (empty cache) takes over.
    # A killed worker cannot tell the server it has gone; the new one releases its sticky queue
    # before polling (``durable_sessions._sticky``), or each session's first task would wait out
    # the 3 s sticky timeout on it (sessions 4-21 only tested the graceful stop).
    if restart == "stop":
        pg_worker.worker.stop()
    else:
        # Flush timers still armed fire first: a task in flight at the kill would time out on
        # the dead worker (start-to-close), a kill's cost, not the replay storm this test hunts.
        await asyncio.sleep(CONFIG.flush_interval + 1.0)
        pg_worker.worker.kill9()
    pg_worker.worker.start()
    restarted = time.monotonic()

    queue: asyncio.Queue[str] = asyncio.Queue()
    for sid in sids:
        queue.put_nowait(sid)
    latencies: list[float] = []
    errors: list[BaseException] = []

    async def caller() -> None:
        while not queue.empty():
            sid = queue.get_nowait()
            started = time.monotonic()
            try:
                await manager.add_turn(sid, SessionTurn(role="user", content="after the deploy"))
            except Exception as exc:  # every failure is a finding: collected, then asserted
                errors.append(exc)
            latencies.append(time.monotonic() - started)

    await asyncio.gather(*(caller() for _ in range(CALLERS)))
    wall = time.monotonic() - restarted

    bad = 0
    sticky = 0
    causes: set[str] = set()
    for sid in sids:
        history = await temporal_env.client.get_workflow_handle(sid).fetch_history()
        for e in history.events:
            if e.event_type not in BAD_EVENTS:
                continue
            timeout = e.workflow_task_timed_out_event_attributes.timeout_type
            if timeout == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START:
                sticky += 1  # a task left on the stopped worker's sticky queue, moved on
                continue
            bad += 1  # a replay that overran the task timeout, or a failed task
            failed = e.workflow_task_failed_event_attributes.failure.message[:200]
            causes.add(f"{EventType.Name(e.event_type)}: {failed or timeout} @{e.event_id}")

    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        f"\nrestart ({restart}): {SESSIONS} sessions x {TURNS} turns, current runs of "
        f"{min(run_events)}-{max(run_events)} events, {CALLERS} callers: p50 {p50:.2f} s, "
        f"p99 {p99:.2f} s, max {latencies[-1]:.2f} s, all done in {wall:.1f} s, "
        f"{len(errors)} errors, {bad} workflow-task timeouts/failures {sorted(causes)}, "
        f"{sticky} sticky-queue schedule-to-start timeouts (goal p99 {P99_GOAL} s)"
    )
    assert not errors, [type(e).__name__ for e in errors]
    assert bad == 0  # no replay storm: no task overran its timeout, none failed
    # No first task waited on the old worker's sticky queue: a stopped worker said it had gone,
    # a killed one's queue was released by the new worker before it polled (``_sticky``).
    assert sticky == 0
    assert min(run_events) >= 5 * TAIL  # the runs really held their tails when it restarted
    # Not asserted: p99 <= P99_GOAL, a timing (benchmarks measure speed, tests behaviour). Each
    # cold replay of a ~170-event run is ~35 workflow tasks of SDK work, and 50 of them share two
    # cores with the dev server and PostgreSQL: 1.74-3.38 s in sessions 4-7, 1.15-2.08 s in
    # seven runs of session 17, after sessions 9 and 15 cut the SDK's work per activation (not
    # measured apart; tests/faults/RESULTS.md, "Cold sessions after a restart").

"""A worker killed and started again at once: its sessions do not wait on its dead sticky queue.

A worker that dies without shutting down leaves the server routing each of its sessions' next
workflow task to its own (sticky) queue, which nobody polls any more: every such task waited out
the sticky timeout (3 s), and showed in history as a timed-out workflow task. A worker now
releases this host's dead workers' sticky queues before it polls (``durable_sessions._sticky``).
"""

from __future__ import annotations

import asyncio

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from durable_sessions.client import SessionManager
from durable_sessions.models import SessionConfig, SessionState, SessionTurn
from tests.processes import PgWorker

pytestmark = pytest.mark.slow

SESSIONS = 8
CONFIG = SessionConfig(idle_continue_after=None)
"""No idle continue-as-new: each session's run and its stickiness stay as the killed worker left
them."""


async def test_sessions_of_a_killed_worker_answer_a_restarted_one_without_a_sticky_timeout(
    temporal_env: WorkflowEnvironment, pg_worker: PgWorker, task_queue: str
) -> None:
    manager = SessionManager(temporal_env.client, pg_worker.store, CONFIG, task_queue)
    sids = [(await manager.create("crash")).session_id for _ in range(SESSIONS)]
    for sid in sids:
        for i in range(3):  # batched turns: the run is sticky to this worker
            await manager.add_turn(sid, SessionTurn(role="user", content=f"turn {i}"))
        await manager._update(sid, "flush", None, SessionState)
    # Let every flush timer fire and be handled by this worker, so no task is scheduled while
    # no worker runs (such a task waits on the dead queue whatever happens next).
    await asyncio.sleep(CONFIG.flush_interval + 1.5)

    pg_worker.worker.kill9()
    pg_worker.worker.start()
    await asyncio.gather(
        *(manager.add_turn(s, SessionTurn(role="user", content="after")) for s in sids)
    )

    log = (pg_worker.worker.log_dir / "worker-2.log").read_text()
    assert "released sticky queue" in log
    timed_out = []
    for sid in sids:
        history = await temporal_env.client.get_workflow_handle(sid).fetch_history()
        timed_out += [
            e.event_id
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT
        ]
        state = await manager.get(sid)
        assert state.turn_count == 4
    assert timed_out == []  # no task waited out the sticky timeout on the dead worker's queue

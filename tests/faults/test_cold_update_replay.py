"""A worker killed (-9) while a session's flush timer is pending; the next turn then reaches the
restarted worker in the same workflow task as the timer's firing.

The SDK can hand those two to the workflow in one order live and in the other on replay
(temporalio/sdk-python#1591). Before a flush left out the turns that arrived in the current
workflow task, the history written here did not replay (2 of 3 runs, 3 of 3 with local
flushes) and the session's workflow task then failed on every retry. Here it must keep
answering, and its history must replay.
"""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from durable_sessions.client import SessionManager
from durable_sessions.models import SessionConfig, SessionTurn
from durable_sessions.plugin import DurableSessionsPlugin
from durable_sessions.stores.memory import InMemorySessionStore
from tests.processes import PgWorker

KILLS = 2


async def test_turn_after_kill_9_shares_a_task_with_the_flush_timer_and_replays(
    temporal_env: WorkflowEnvironment, pg_worker: PgWorker, task_queue: str
) -> None:
    store, worker = pg_worker.store, pg_worker.worker
    manager = SessionManager(
        temporal_env.client, store, SessionConfig(flush_interval=0.2), task_queue, call_timeout=30
    )
    sid = (await manager.create("cold-update")).session_id
    texts: list[str] = []
    for i in range(KILLS):
        # The turn arms the flush timer; the worker dies before it fires.
        texts.append(f"before kill {i}")
        await manager.add_turn(sid, SessionTurn(role="user", content=texts[-1]))
        worker.kill9()
        worker.start()
        # A read waits out the dead worker's sticky queue (3 s), and the flush timer fires
        # meanwhile; the next turn joins it in the restarted worker's first workflow task.
        assert (await manager.get(sid)).turn_count == len(texts)
        texts.append(f"after restart {i}")
        await manager.add_turn(sid, SessionTurn(role="user", content=texts[-1]))
    await manager.close(sid)
    assert [t.content for t in await manager.history(sid)] == texts

    history = await temporal_env.client.get_workflow_handle(sid).fetch_history()
    failed_tasks = [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]
    assert failed_tasks == [], failed_tasks[0].workflow_task_failed_event_attributes.failure
    replayer = Replayer(workflows=[], plugins=[DurableSessionsPlugin(InMemorySessionStore())])
    await replayer.replay_workflow(history)  # raises on nondeterminism

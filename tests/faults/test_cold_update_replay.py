"""A worker killed (-9) while a session's flush timer is pending; the next turn then reaches the
restarted worker in the same workflow task as the timer's firing.

The read in between reaches the restarted worker as a query task while the session's workflow
task still waits on the dead worker's sticky queue, and temporalio 1.35's core hands the
workflow the fired timer right there, in an activation of its own, before the workflow task
brings the turn; a replay hands both over at once. Runs of features 9 and 10 flushed one turn
live and two on replay (4 of 4 on a fast machine, 2026-12-01); runs of features 11 leave only
the current task's update turns out of a flush (``_patches.UPDATE_TURNS_WAIT``).

The SDK can hand those two to the workflow in one order live and in the other on replay
(temporalio/sdk-python#1591). Before a flush left out the turns that arrived in the current
workflow task, the history written here did not replay (2 of 3 runs, 3 of 3 with local
flushes) and the session's workflow task then failed on every retry. Here it must keep
answering, and its history must replay.
"""

from __future__ import annotations

import asyncio

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from durable_sessions.client import SessionManager
from durable_sessions.models import SessionConfig, SessionTurn
from durable_sessions.plugin import DurableSessionsPlugin
from durable_sessions.stores.base import read_transcript
from durable_sessions.stores.memory import InMemorySessionStore
from tests.processes import PgWorker
from tests.replay_answers import AnswerCapture, answer_mismatches

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
    await _replays(history)


async def test_a_read_after_kill_9_while_the_flush_timer_fires_still_flushes(
    temporal_env: WorkflowEnvironment, pg_worker: PgWorker, task_queue: str
) -> None:
    """The same read with no turn after it: the timer the query task handed over must still
    store the turn (in the workflow task that follows), and the history must replay."""
    store, worker = pg_worker.store, pg_worker.worker
    manager = SessionManager(
        temporal_env.client, store, SessionConfig(flush_interval=0.2), task_queue, call_timeout=30
    )
    sid = (await manager.create("cold-read")).session_id
    await manager.add_turn(sid, SessionTurn(role="user", content="stored after the restart"))
    worker.kill9()
    worker.start()
    assert (await manager.get(sid)).turn_count == 1
    header = await store.get_session(sid)
    for _ in range(100):
        if header is not None and header.turn_count == 1:
            break
        await asyncio.sleep(0.1)
        header = await store.get_session(sid)
    assert header is not None and header.turn_count == 1
    assert [t.content for t in await read_transcript(store, sid)] == ["stored after the restart"]

    await _replays(await temporal_env.client.get_workflow_handle(sid).fetch_history())


async def _replays(history: WorkflowHistory) -> None:
    """The run replays (raises on nondeterminism), and every update answers as it did live."""
    replayer = Replayer(
        workflows=[],
        plugins=[DurableSessionsPlugin(InMemorySessionStore())],
        interceptors=[AnswerCapture()],
    )
    await replayer.replay_workflow(history)
    assert answer_mismatches(history) == []

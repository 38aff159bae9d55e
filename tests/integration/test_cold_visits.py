"""Runs of features 8 store a cold visit's turns in the workflow task that brings them.

A cold visit is the first message of a new session, or one after ``idle_continue_after`` of
quiet (``core.flushing.cold_visit``): its ``add_turn`` answers once the turn is in the store,
and the visit adds one workflow task to the run (no flush timer and its task), so the next
cache miss replays less. A busy session's turns keep the batched flush.
"""

from __future__ import annotations

import asyncio

from temporalio.api.enums.v1 import EventType

from durable_sessions.models import SessionConfig, SessionTurn
from tests.helpers import assert_eventually
from tests.integration.conftest import Stack

QUIET = 0.6
CONFIG = SessionConfig(idle_continue_after=QUIET, flush_interval=1.5)
"""Cold after 0.6 s of quiet; a batched turn waits up to 1.5 s for its flush."""


async def _stored(stack: Stack, session_id: str) -> int:
    header = await stack.store.get_session(session_id)
    return 0 if header is None else header.turn_count


async def _events(stack: Stack, session_id: str) -> list[EventType.ValueType]:
    history = await stack.client.get_workflow_handle(session_id).fetch_history()
    return [e.event_type for e in history.events]


async def test_a_cold_visit_is_stored_by_the_time_it_is_acknowledged(stack: Stack) -> None:
    m = stack.manager
    s = await m.create("cold-user", config=CONFIG)
    sid = s.session_id

    # The visit a session is created in: stored when acknowledged.
    await m.add_turn(sid, SessionTurn(role="user", content="hello"))
    assert await _stored(stack, sid) == 1
    assert [t.content for t in await stack.store.get_own_turns(sid, 0, 0, 100)] == ["hello"]

    # A turn right after it is part of a busy session: batched, stored by the flush timer.
    await m.add_turn(sid, SessionTurn(role="assistant", content="hi there"))
    assert await _stored(stack, sid) == 1
    await assert_eventually(lambda: _expect(stack, sid, 2), timeout=10)

    # Back after a quiet spell: stored when acknowledged again, a batch as well as a turn.
    await asyncio.sleep(QUIET + 0.3)
    await m.add_turns(sid, [SessionTurn(role="user", content=f"back {i}") for i in range(2)])
    assert await _stored(stack, sid) == 4
    await m.close(sid)
    assert [t.content for t in await stack.store.get_own_turns(sid, 0, 0, 100)] == [
        "hello",
        "hi there",
        "back 0",
        "back 1",
    ]


async def _expect(stack: Stack, session_id: str, turns: int) -> None:
    assert await _stored(stack, session_id) == turns


async def test_a_session_created_with_one_turn_holds_two_workflow_tasks(stack: Stack) -> None:
    """What a cache miss into such a session replays: its start and the turn's task, which
    stored the turn (one task when the turn came before the start's task ran); the flush
    timer and its task of earlier versions are gone."""
    m = stack.manager
    s = await m.create("cold-user", config=SessionConfig(flush_interval=0.2))
    await m.add_turn(s.session_id, SessionTurn(role="user", content="only turn"))
    await asyncio.sleep(0.6)  # three flush intervals: a flush timer would have fired by now
    events = await _events(stack, s.session_id)
    assert events.count(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) <= 2
    assert EventType.EVENT_TYPE_TIMER_FIRED not in events
    assert events.count(EventType.EVENT_TYPE_MARKER_RECORDED) == 1  # the one store write
    assert await _stored(stack, s.session_id) == 1


async def test_a_signal_into_a_continued_run_after_quiet_is_a_cold_visit(stack: Stack) -> None:
    """The next run knows when the previous one heard last (``last_message`` in its input):
    after an idle continue-as-new, the first turn is stored in its own task."""
    m = stack.manager
    s = await m.create("cold-user", config=CONFIG)
    sid = s.session_id
    first = (await stack.client.get_workflow_handle(sid).describe()).run_id
    for i in range(3):  # past the idle continue-as-new's floor of 18 events
        await m.add_turn(sid, SessionTurn(role="user", content=f"t{i}"))

    async def continued() -> None:
        assert (await stack.client.get_workflow_handle(sid).describe()).run_id != first

    await assert_eventually(continued, timeout=15)
    await asyncio.sleep(QUIET + 0.3)
    await m.send_turn(sid, SessionTurn(role="user", content="by signal"))
    await assert_eventually(lambda: _expect(stack, sid, 4), timeout=10)
    history = await stack.client.get_workflow_handle(sid).fetch_history()
    events = [e.event_type for e in history.events]
    signalled = events.index(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    after = events[signalled:]
    # Stored by a local activity in the signal's own task: no flush timer before the marker.
    assert EventType.EVENT_TYPE_MARKER_RECORDED in after
    marker = after.index(EventType.EVENT_TYPE_MARKER_RECORDED)
    assert EventType.EVENT_TYPE_TIMER_STARTED not in after[:marker]
    await m.close(sid)

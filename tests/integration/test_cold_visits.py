"""Cold visits stored in their own workflow task (runs of features 12, ``_patches.COLD_VISITS``),
and the visit's answer too (features 13, ``_patches.VISIT_ANSWERS``), on the real dev server and
PostgreSQL: what a user sees is the store holding a cold visit's turn and its answer when
``add_turn`` answers, while a busy session's turns keep the batched flush."""

from __future__ import annotations

import asyncio

from temporalio.api.enums.v1 import EventType

from durable_sessions.models import SessionConfig, SessionTurn
from tests.helpers import assert_eventually
from tests.integration.conftest import Stack

# A long flush interval: a turn in the store right after its answer was not stored by the timer.
# An update 3 s after the previous one starts a cold visit: far more than two calls in a row
# take on a loaded machine, and less than the flush timer's 5 s.
QUIET = 3.0
COLD = SessionConfig(flush_interval=5.0, idle_continue_after=QUIET)


def turn(text: str, role: str = "user") -> SessionTurn:
    return SessionTurn(role=role, content=text)


async def stored(stack: Stack, session_id: str) -> list[str]:
    return [t.content for t in await stack.store.get_own_turns(session_id, 0, 0, 1_000)]


async def test_a_cold_visit_is_in_the_store_when_add_turn_answers(stack: Stack) -> None:
    m = stack.manager
    s = await m.create("cold", config=COLD)
    sid = s.session_id
    await m.add_turn(sid, turn("first"))
    assert await stored(stack, sid) == ["first"]  # the first update of the run: a cold visit
    await m.add_turn(sid, turn("its answer", "assistant"))
    assert await stored(stack, sid) == ["first", "its answer"]  # the visit's answer
    await m.add_turn(sid, turn("right after"))
    # A third update in a row: busy, batched, the timer is 5 s away.
    assert await stored(stack, sid) == ["first", "its answer"]

    async def flushed() -> None:
        assert await stored(stack, sid) == ["first", "its answer", "right after"]

    await assert_eventually(flushed, timeout=15)  # 5 s after "right after": quiet enough
    receipts = await m.add_turns(sid, [turn("back"), turn("again", "assistant")])
    assert [r.seq for r in receipts] == [3, 4]
    assert await stored(stack, sid) == ["first", "its answer", "right after", "back", "again"]
    state = await m.get(sid)
    header = await stack.store.get_session(sid)
    assert header is not None and header.turn_count == state.turn_count == 5


async def test_a_cold_visit_adds_one_workflow_task_to_the_run(stack: Stack) -> None:
    """A session created with one turn holds one workflow task with a store write in it and no
    flush timer; a visit after a quiet spell adds one more task, again with no timer."""
    m = stack.manager
    s = await m.create("cold-tasks", config=COLD)
    sid = s.session_id
    await m.add_turn(sid, turn("hello"))
    await asyncio.sleep(QUIET + 0.2)
    await m.add_turn(sid, turn("back", "assistant"))
    events = (await stack.client.get_workflow_handle(sid).fetch_history()).events
    kinds = [e.event_type for e in events]
    assert kinds.count(EventType.EVENT_TYPE_MARKER_RECORDED) == 2  # one store write per visit
    # The create, the first turn (in the create's task when it came along), the visit back.
    assert kinds.count(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) <= 3
    timers = [e for e in events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    # Only the idle TTL timer: no flush timer (nor the idle watch's, which waits for 40 events).
    assert len(timers) == 1
    assert timers[0].timer_started_event_attributes.start_to_fire_timeout.seconds > 60


async def test_a_chat_visit_adds_two_workflow_tasks_and_no_flush_timer(stack: Stack) -> None:
    """A turn and, a second later, its answer, then the same after a quiet spell: each visit is
    two workflow tasks, each with its store write, and no flush timer (features 13)."""
    m = stack.manager
    s = await m.create("chat-visits", config=COLD)
    sid = s.session_id
    for visit in range(2):
        if visit:
            await asyncio.sleep(QUIET + 0.2)
        await m.add_turn(sid, turn(f"question {visit}"))
        await asyncio.sleep(1.0)  # the model thinks; less than the quiet of a cold visit
        await m.add_turn(sid, turn(f"answer {visit}", "assistant"))
        expected = [f"{kind} {v}" for v in range(visit + 1) for kind in ("question", "answer")]
        assert await stored(stack, sid) == expected
    events = (await stack.client.get_workflow_handle(sid).fetch_history()).events
    kinds = [e.event_type for e in events]
    assert kinds.count(EventType.EVENT_TYPE_MARKER_RECORDED) == 4  # one store write per task
    # The create's own task (unless the first turn came along in it), then one per turn.
    assert kinds.count(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) <= 5
    assert kinds.count(EventType.EVENT_TYPE_TIMER_STARTED) == 1  # the idle TTL's only


async def test_a_signal_after_a_quiet_spell_keeps_the_batched_flush(stack: Stack) -> None:
    """A signal's turn is never a cold visit (its task's time is not the same on a replay that
    merges it with the next, temporalio/sdk-rust#1606): the flush timer stores it."""
    m = stack.manager
    s = await m.create("cold-signal", config=SessionConfig(flush_interval=0.3))
    sid = s.session_id
    await m.send_turn(sid, turn("by signal"))

    async def flushed() -> None:
        assert await stored(stack, sid) == ["by signal"]

    await assert_eventually(flushed, timeout=15)
    events = (await stack.client.get_workflow_handle(sid).fetch_history()).events
    flush_timers = [
        e
        for e in events
        if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
        and e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta().total_seconds() < 1
    ]
    assert flush_timers

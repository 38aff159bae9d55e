"""Cold visits (runs of features 7): a message after ``idle_continue_after`` of quiet starts one,
and so does a session's creation; once its turns are flushed and it has gone quiet, the run
continues as new in the flush's own workflow task, so the next cold call replays a minimal run
and no idle timer is left to fire."""

from __future__ import annotations

import asyncio

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from durable_sessions.client import SessionManager
from durable_sessions.models import SessionConfig, SessionTurn
from durable_sessions.stores.base import SessionStore
from durable_sessions.worker import create_worker
from tests.helpers import assert_eventually

QUIET = 1.0
CONFIG = SessionConfig(idle_continue_after=QUIET, flush_interval=0.3)
CONTINUED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW


async def _run_id(client: Client, session_id: str) -> str:
    run_id = (await client.get_workflow_handle(session_id).describe()).run_id
    assert run_id is not None
    return run_id


async def _events(client: Client, session_id: str, run_id: str) -> list[HistoryEvent]:
    history = await client.get_workflow_handle(session_id, run_id=run_id).fetch_history()
    return list(history.events)


async def _continued_from(client: Client, session_id: str, run_id: str) -> str:
    new = await _run_id(client, session_id)
    assert new != run_id, "the run has not continued as new"
    return new


def _last_task(events: list[HistoryEvent]) -> list[int]:
    """The event types of the run's last workflow task, from its start to the run's end."""
    started = max(
        i
        for i, e in enumerate(events)
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
    )
    return [e.event_type for e in events[started:]]


async def test_a_cold_visit_continues_as_new_in_its_flush_task(
    client: Client, store: SessionStore, task_queue: str
) -> None:
    manager = SessionManager(client, store, CONFIG, task_queue)
    async with create_worker(client, store, task_queue=task_queue):
        s = await manager.create("cold-user")
        sid = s.session_id
        created = await _run_id(client, sid)
        # The visit the session is created in ends its run once stored and quiet (three turns:
        # past the idle continue-as-new's floor of 18 events).
        for i in range(3):
            await manager.add_turn(sid, SessionTurn(role="user", content=f"warm {i}"))
        first = await assert_eventually(lambda: _continued_from(client, sid, created), timeout=10)
        assert _last_task(await _events(client, sid, created))[-1] == CONTINUED
        await asyncio.sleep(QUIET + 0.3)
        assert await _run_id(client, sid) == first

        for i in range(3):
            await manager.add_turn(sid, SessionTurn(role="user", content=f"cold {i}"))
        second = await assert_eventually(lambda: _continued_from(client, sid, first), timeout=10)

        events = await _events(client, sid, first)
        last = _last_task(events)
        # One task: the flush timer fired, the flush's local activity, the continue-as-new.
        assert EventType.EVENT_TYPE_MARKER_RECORDED in last
        assert last[-1] == CONTINUED
        summaries = {
            e.event_id: e.user_metadata.summary.data
            for e in events
            if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
        }
        fired = [
            summaries[e.timer_fired_event_attributes.started_event_id]
            for e in events
            if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED
        ]
        # The flush timer fired; the idle continue-as-new's timer never ran out: the visit
        # ended the run first.
        assert b'"flush"' in fired and b'"idle"' not in fired, fired

        # Everything is stored, nothing pending, and the new run is minimal.
        header = await store.get_session(sid)
        assert header is not None and header.turn_count == 6
        contents = [t.content for t in await manager.history(sid)]
        assert contents == [*(f"warm {i}" for i in range(3)), *(f"cold {i}" for i in range(3))]
        assert len(await _events(client, sid, second)) <= 6

        # A session that came back once is likely to come back again: a cold visit of one
        # turn into the minimal run ends its run too.
        await asyncio.sleep(QUIET + 0.2)
        await manager.add_turn(sid, SessionTurn(role="user", content="cold 3"))
        third = await assert_eventually(lambda: _continued_from(client, sid, second), timeout=10)
        assert (await manager.get(sid)).turn_count == 7
        assert len(await _events(client, sid, third)) <= 6


async def test_a_session_created_with_one_turn_and_left_keeps_its_run(
    client: Client, store: SessionStore, task_queue: str
) -> None:
    """The visit a session is created in ends its run only from the idle floor (18 events):
    a session given one turn and left may never come back."""
    manager = SessionManager(client, store, CONFIG, task_queue)
    async with create_worker(client, store, task_queue=task_queue):
        s = await manager.create("one-shot-user")
        sid = s.session_id
        first = await _run_id(client, sid)
        await manager.add_turn(sid, SessionTurn(role="user", content="one shot"))

        async def stored() -> None:
            header = await store.get_session(sid)
            assert header is not None
            assert header.turn_count == 1

        await assert_eventually(stored, timeout=10)
        await asyncio.sleep(0.5)  # quiet past half the flush interval, under QUIET
        assert await _run_id(client, sid) == first
        assert len(await _events(client, sid, first)) < 18


async def test_a_session_in_use_does_not_continue_on_every_pause(
    client: Client, store: SessionStore, task_queue: str
) -> None:
    """Turns that keep coming (pauses of a few flush intervals, under ``idle_continue_after``)
    are not cold visits: flush timers run out in the pauses and the run stays."""
    config = CONFIG.model_copy(update={"idle_continue_after": 3.0})
    manager = SessionManager(client, store, config, task_queue)
    async with create_worker(client, store, task_queue=task_queue):
        s = await manager.create("warm-user")
        sid = s.session_id
        created = await _run_id(client, sid)
        for i in range(3):
            await manager.add_turn(sid, SessionTurn(role="user", content=f"created {i}"))
        first = await assert_eventually(lambda: _continued_from(client, sid, created), timeout=10)
        for i in range(4):
            await manager.add_turn(sid, SessionTurn(role="user", content=f"warm {i}"))
            await asyncio.sleep(0.6)  # over the 0.3 s flush interval, under 3 s
        assert await _run_id(client, sid) == first
        fired = [
            e
            for e in await _events(client, sid, first)
            if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED
        ]
        assert fired, "no flush timer ran out in a pause"
        assert (await manager.get(sid)).turn_count == 7


async def test_a_cold_visit_that_turns_busy_continues_once_it_has_gone_quiet(
    client: Client, store: SessionStore, task_queue: str
) -> None:
    """A cold visit followed by a burst: the run continues as new only after the burst's
    turns are all stored and a quiet half flush interval has passed; every turn is kept."""
    manager = SessionManager(client, store, CONFIG, task_queue)
    async with create_worker(client, store, task_queue=task_queue):
        s = await manager.create("burst-user")
        sid = s.session_id
        await asyncio.sleep(QUIET + 0.2)
        first = await _run_id(client, sid)
        for i in range(12):
            await manager.add_turn(sid, SessionTurn(role="user", content=f"burst {i}"))
            await asyncio.sleep(0.05)
        await assert_eventually(lambda: _continued_from(client, sid, first), timeout=10)
        stored = [t.content for t in await manager.history(sid)]
        assert stored == [f"burst {i}" for i in range(12)]
        header = await store.get_session(sid)
        assert header is not None and header.turn_count == 12


async def test_no_visit_ends_a_run_with_idle_continue_as_new_switched_off(
    client: Client, store: SessionStore, task_queue: str
) -> None:
    """``idle_continue_after=None`` keeps a session in one run (until it fills up): not even
    the visit it is created in continues it as new."""
    config = CONFIG.model_copy(update={"idle_continue_after": None})
    manager = SessionManager(client, store, config, task_queue)
    async with create_worker(client, store, task_queue=task_queue):
        s = await manager.create("one-run-user")
        sid = s.session_id
        first = await _run_id(client, sid)
        await manager.add_turn(sid, SessionTurn(role="user", content="only run"))

        async def stored() -> None:
            header = await store.get_session(sid)
            assert header is not None
            assert header.turn_count == 1

        await assert_eventually(stored, timeout=10)
        await asyncio.sleep(1.0)  # quiet well past half the flush interval
        assert await _run_id(client, sid) == first

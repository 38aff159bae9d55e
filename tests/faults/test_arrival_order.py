"""Who gets the operation lock, and in which order, in runs of features 9
(``workflows._patches.ARRIVAL_ORDER``): a real dev server and PostgreSQL, with two store reads
held at a gate so that operations queue behind one another on purpose.

Under features 6 a ``branch`` read its branch names before it queued for the lock, so a signal
sent after the branch could take its place (and on replay, when the SDK merged a workflow task
that sent no command with the next one, the two swapped: a run that could not replay,
tests/faults/RESULTS.md, session 13). Now the lock's order is the order of the messages, and
work woken by a timer or an activity (expiry) goes before the messages that wait.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.worker import Replayer

from durable_sessions.agents import AgentContext
from durable_sessions.branches import BranchManager
from durable_sessions.client import SessionManager
from durable_sessions.errors import SessionClosedError
from durable_sessions.models import SessionConfig, SessionStatus, SessionTurn
from durable_sessions.plugin import DurableSessionsPlugin
from durable_sessions.stores.base import SessionStore
from durable_sessions.stores.memory import InMemorySessionStore
from durable_sessions.worker import create_worker
from tests.helpers import assert_eventually
from tests.replay_answers import AnswerCapture, answer_mismatches
from tests.stores_fixtures import make_store


class GatedStore:
    """A real store whose ``gated`` methods wait at a gate (``reached`` says a call got there).
    The gate starts closed."""

    def __init__(self, inner: SessionStore, *gated: str) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.reached = {name: asyncio.Event() for name in gated}

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if name not in self.reached:
            return target

        async def at_gate(*args: Any, **kwargs: Any) -> Any:
            self.reached[name].set()
            await self.gate.wait()
            return await target(*args, **kwargs)

        return at_gate


class SlowAgent:
    """Answers once ``go`` is set (``asked`` says it was asked)."""

    name = "slow"

    def __init__(self) -> None:
        self.asked = asyncio.Event()
        self.go = asyncio.Event()

    async def respond(self, context: AgentContext) -> str:
        self.asked.set()
        await self.go.wait()
        return "the regenerated answer"


SLOW = SlowAgent()


@pytest_asyncio.fixture
async def gated(client: Client) -> AsyncIterator[tuple[SessionManager, GatedStore]]:
    async with make_store("postgres") as store:
        gated_store = GatedStore(store, "list_branches", "get_own_turns")
        queue = f"arrival-{uuid.uuid4().hex[:8]}"
        manager = SessionManager(
            client, store, SessionConfig(flush_interval=0.2), queue, call_timeout=30
        )
        SLOW.asked.clear()
        SLOW.go.clear()
        worker = create_worker(client, gated_store, task_queue=queue, agents=[SLOW])  # type: ignore[arg-type]
        async with worker:
            yield manager, gated_store


async def _seen(handle: WorkflowHandle[Any, Any], kind: EventType.ValueType, name: str) -> None:
    async def there() -> None:
        history = await handle.fetch_history()
        names = []
        for e in history.events:
            if e.event_type != kind:
                continue
            if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                names.append(e.workflow_execution_signaled_event_attributes.signal_name)
            else:
                attrs = e.workflow_execution_update_accepted_event_attributes
                names.append(attrs.accepted_request.input.name)
        assert name in names

    await assert_eventually(there, timeout=20)


async def _replays(client: Client, session_id: str) -> None:
    """The run replays, and every update answers on replay what it answered live."""
    await _replays_history(await client.get_workflow_handle(session_id).fetch_history())


async def _replays_history(history: WorkflowHistory) -> None:
    replayer = Replayer(
        workflows=[],
        plugins=[DurableSessionsPlugin(InMemorySessionStore())],
        interceptors=[AnswerCapture()],
    )
    await replayer.replay_workflow(history)  # raises on nondeterminism
    assert answer_mismatches(history) == []


async def test_a_branch_forks_where_it_arrived_though_a_later_signal_waited_with_it(
    client: Client, gated: tuple[SessionManager, GatedStore]
) -> None:
    manager, gates = gated
    sid = (await manager.create("arrival")).session_id
    handle = client.get_workflow_handle(sid)
    await manager.add_turns(sid, [SessionTurn(role="user", content=f"t{i}") for i in range(4)])

    truncating = asyncio.create_task(manager.truncate(sid, 2))  # holds the lock at the gate
    await asyncio.wait_for(gates.reached["get_own_turns"].wait(), 20)
    branching = asyncio.create_task(BranchManager(manager).create_branch(sid, "here"))
    await _seen(handle, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED, "branch")
    await manager.send_turn(sid, SessionTurn(role="user", content="after the branch"))
    await _seen(handle, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, "add_turn")
    gates.gate.set()

    child = await branching
    assert (await truncating).turn_count == 2
    # The branch came before the signal: it forks after the truncate, before the signal's turn.
    assert [t.content for t in await manager.history(child.session_id)] == ["t0", "t1"]
    await assert_eventually(
        lambda: _contents_are(manager, sid, ["t0", "t1", "after the branch"]), timeout=20
    )
    await manager.close(child.session_id)
    await manager.close(sid)
    await _replays(client, sid)


async def _contents_are(manager: SessionManager, sid: str, expected: list[str]) -> None:
    assert [t.content for t in await manager.history(sid)] == expected


async def test_a_turn_that_waited_past_the_idle_deadline_finds_the_session_expired(
    client: Client, gated: tuple[SessionManager, GatedStore]
) -> None:
    """The TTL timer fires while an operation holds the lock and a turn waits behind it: expiry
    goes first (it was woken by a timer) and the turn is refused as closed, not lost silently;
    the session is expired and its history replays."""
    manager, gates = gated
    sid = (await manager.create("arrival", ttl=1.0)).session_id
    handle = client.get_workflow_handle(sid)
    await manager.add_turn(sid, SessionTurn(role="user", content="before"))

    # A branch holds the lock across its name check, which waits at the gate.
    branching = asyncio.create_task(BranchManager(manager).create_branch(sid, "slow", at_seq=0))
    await asyncio.wait_for(gates.reached["list_branches"].wait(), 20)
    waiting = asyncio.create_task(
        manager.add_turn(sid, SessionTurn(role="user", content="waited too long"))
    )
    await _seen(handle, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED, "add_turn")

    deadline = (await manager.get(sid)).expires_at  # a query: it does not wait for the lock
    assert deadline is not None

    async def ttl_fired() -> None:
        """The TTL timer fired at the deadline (an earlier one fired for the create's)."""
        history = await handle.fetch_history()
        assert any(
            e.event_type == EventType.EVENT_TYPE_TIMER_FIRED
            and e.event_time.ToDatetime(UTC) >= deadline
            for e in history.events
        )

    await assert_eventually(ttl_fired, timeout=20)
    gates.gate.set()

    await branching  # it held the lock before the deadline: it forks
    with pytest.raises(SessionClosedError):
        await waiting
    state = await manager.get(sid)
    assert state.status is SessionStatus.EXPIRED
    assert [t.content for t in await manager.history(sid)] == ["before"]
    await _replays(client, sid)


_COMMAND_EVENTS = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED,
    EventType.EVENT_TYPE_TIMER_STARTED,
    EventType.EVENT_TYPE_TIMER_CANCELED,
    EventType.EVENT_TYPE_MARKER_RECORDED,
    EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
    EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED,
    EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
}


def _merged_on_replay(events: list[Any], kind: EventType.ValueType) -> bool:
    """Whether a workflow task that brought an event of ``kind`` is one the SDK's core (its v1
    chunking, temporalio 1.35) merges with the next on replay: no command event since the
    previous task started, no command sent, and the next task scheduled at once (an update's:
    updates write no event first)."""
    types = [e.event_type for e in events]
    since_started = 0
    for i, t in enumerate(types):
        if t != EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            continue
        window = types[since_started:i]
        since_started = i + 1
        if types[i + 1 : i + 3] != [
            EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
            EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        ]:
            continue
        if kind in window and not _COMMAND_EVENTS.intersection(window):
            return True
    return False


async def test_a_regenerated_answer_queued_in_a_task_the_sdk_merges_keeps_its_place_on_replay(
    client: Client, gated: tuple[SessionManager, GatedStore]
) -> None:
    """The SDK bug's shape: the agent's answer comes back while a truncate holds the lock, so
    the regenerate queues for it in a workflow task that sends no command, and a signal comes
    in the next task. Live, the answer queued first.

    When the server schedules that next task *before* it writes the signal (as it did in the
    history of model seed 1008: a task for an update, and the signal landing before a worker
    took it), the SDK's core merges the two tasks on replay and hands the signal over before
    the answer (temporalio/sdk-rust#1606). That timing cannot be forced from here, so the test
    writes it: it swaps the signal with the task's scheduling in the recorded history, which
    is the history the server writes in that race. Under features 6 (one FIFO queue) that
    replay gives the lock to the signal's turn first and the run does not replay as it ran;
    woken work queues ahead of every message now, so it replays, with the same answers."""
    manager, gates = gated
    gates.gate.set()  # open while the regenerate reads the head
    sid = (await manager.create("arrival")).session_id
    handle = client.get_workflow_handle(sid)
    await manager.add_turns(
        sid,
        [
            SessionTurn(role="user", content="an earlier question"),
            SessionTurn(role="user", content="question"),
            SessionTurn(role="assistant", content="first answer"),
        ],
    )
    regenerating = asyncio.create_task(manager.regenerate(sid, agent="slow"))
    await asyncio.wait_for(SLOW.asked.wait(), 20)

    gates.gate.clear()
    gates.reached["get_own_turns"].clear()
    truncating = asyncio.create_task(manager.truncate(sid, 1))  # holds the lock at the gate
    await asyncio.wait_for(gates.reached["get_own_turns"].wait(), 20)
    # A signal's turn queues, in a task that sends no command: the core's chunking merges a
    # command-less task into the next only if no command came since the one before it.
    await _signal_and_settle(manager, handle, "by signal")
    SLOW.go.set()  # the answer comes back in a task that can only queue

    async def answer_queued() -> None:
        events = (await handle.fetch_history()).events
        kinds = [e.event_type for e in events]
        after = kinds[_agent_scheduled(events) :]
        assert EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED in after
        done = after.index(EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
        assert EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in after[done:]

    await assert_eventually(answer_queued, timeout=20)
    await _signal_and_settle(manager, handle, "after the answer")
    gates.gate.set()

    assert (await truncating).turn_count == 1
    answer = await regenerating
    assert answer.seq == 1  # the woken answer first, then the turns that waited
    await assert_eventually(
        lambda: _contents_are(
            manager,
            sid,
            ["an earlier question", "the regenerated answer", "by signal", "after the answer"],
        ),
        timeout=20,
    )
    await manager.close(sid)
    await _replays(client, sid)

    raced = _signal_after_the_next_task_was_scheduled(await handle.fetch_history())
    assert _merged_on_replay(list(raced.events), EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    await _replays_history(raced)


async def _signal_and_settle(
    manager: SessionManager, handle: WorkflowHandle[Any, Any], content: str
) -> None:
    """Signal a turn and wait until the workflow task that brought it has completed."""
    before = len((await handle.fetch_history()).events)
    await manager.send_turn(handle.id, SessionTurn(role="user", content=content))

    async def settled() -> None:
        kinds = [e.event_type for e in (await handle.fetch_history()).events][before:]
        assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED in kinds
        assert kinds[-1] == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED

    await assert_eventually(settled, timeout=20)


def _signal_after_the_next_task_was_scheduled(history: WorkflowHistory) -> WorkflowHistory:
    """``history`` as the server writes it when a task is scheduled (for an update) and a
    signal lands before a worker takes it: the first ``[task completed, signaled, task
    scheduled]`` after the agent's answer becomes ``[task completed, task scheduled,
    signaled]``, event ids and the task's references to its scheduling renumbered."""
    events = [copy.deepcopy(e) for e in history.events]
    start = _agent_scheduled(events)
    kinds = [e.event_type for e in events]
    shape = [
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    ]
    at = next(i for i in range(start, len(kinds)) if kinds[i : i + 4] == shape)
    signaled, scheduled = events[at + 1], events[at + 2]
    signaled.event_id, scheduled.event_id = scheduled.event_id, signaled.event_id
    events[at + 1], events[at + 2] = scheduled, signaled
    for e in events[at + 3 :]:
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            e.workflow_task_started_event_attributes.scheduled_event_id = scheduled.event_id
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            e.workflow_task_completed_event_attributes.scheduled_event_id = scheduled.event_id
            break
    return WorkflowHistory(history.workflow_id, events)


def _agent_scheduled(events: Any) -> int:
    for i, e in enumerate(events):
        attrs = e.activity_task_scheduled_event_attributes
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED and (
            attrs.activity_type.name == "run_agent_turn"
        ):
            return i
    raise AssertionError("no agent activity yet")

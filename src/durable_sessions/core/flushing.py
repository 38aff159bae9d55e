"""When and what a session flushes to its store, and when a run continues as new.

Pure decisions, used by the ``Session`` workflow's ``Flusher`` and unit-tested on their own.
The workflow holds the turns it accepted but has not stored yet (``pending``, oldest first) and
the checkpoints taken meanwhile; a flush writes the oldest of them in batches, each batch small
enough for one activity payload, with the header and checkpoints *as of the batch's last turn*
(a checkpoint must never point past the turns already in the store).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from durable_sessions.models import Checkpoint, SessionState, SessionTurn

__all__ = [
    "BACKSTOP_HISTORY_BYTES",
    "BACKSTOP_HISTORY_EVENTS",
    "CAN_HISTORY_BYTES",
    "CAN_HISTORY_EVENTS",
    "CARRIED_BYTES",
    "CARRY_OVER_BYTES",
    "CARRY_OVER_FEATURES",
    "COLD_VISIT_AFTER",
    "COLD_VISIT_FEATURES",
    "FLUSH_BATCH_BYTES",
    "FULL_RUN_IDLE_FEATURES",
    "IDLE_CONTINUE_MIN_EVENTS",
    "IDLE_CONTINUE_MIN_EVENTS_AFTER_FULL",
    "IDLE_CONTINUE_PAYS_FEATURES",
    "MAX_CARRIED_CHECKPOINTS",
    "VISIT_ANSWER_FEATURES",
    "VISIT_TASKS",
    "Batch",
    "RunSize",
    "carries_over",
    "carry_full",
    "cold_visit",
    "cut_batch",
    "flush_before_continuing",
    "flushable",
    "header_snapshot",
    "idle_continue_due",
    "idle_min_events",
    "in_flow_after",
    "must_turn_away",
    "payload_bytes",
    "plan_batch",
    "should_continue_as_new",
    "stores_cold_visits",
    "stores_visit_answers",
    "text_bytes",
    "visit_goes_on",
]

FLUSH_BATCH_BYTES = 128_000
"""Most turn text one flush activity carries (Temporal warns at 256 KB per payload)."""
TURN_OVERHEAD_BYTES = 256
"""What a turn costs in a payload besides its text (ids, timestamps, counters)."""
CAN_HISTORY_EVENTS = 3_000
CAN_HISTORY_BYTES = 2_500_000
"""Continue-as-new before Temporal's suggestion (4,096 events / 4 MB): what arrives while the
run drains and flushes must still fit under it."""
BACKSTOP_HISTORY_EVENTS = 3_800
BACKSTOP_HISTORY_BYTES = 3_600_000
"""Past these, updates are turned away (retryable) until the run has continued as new."""
CARRY_OVER_BYTES = 32_000
"""Most unflushed turn text a run hands to the next at continue-as-new."""
CARRIED_BYTES = 64_000
"""Runs of features 6 and later: most pending turn payload (text plus ``TURN_OVERHEAD_BYTES``
per turn) a run hands to the next at a size continue-as-new, and the pending payload at which
such a run flushes in flow (so what it carries always fits). With the recent window and the
dedup keys, the next run's input stays below Temporal's 256 KB payload warning."""
MAX_CARRIED_CHECKPOINTS = 16
"""Most unflushed checkpoints a run hands to the next (runs of features 6 and later)."""


def text_bytes(turns: list[SessionTurn]) -> int:
    """Characters of turn text (what dominates a turn's payload)."""
    return sum(len(t.content) for t in turns)


def cut_batch(
    pending: list[SessionTurn], max_turns: int | None, max_bytes: int = FLUSH_BATCH_BYTES
) -> int:
    """How many of the oldest ``pending`` turns go in one flush: at most ``max_turns`` and
    ``max_bytes`` of payload, but always at least one turn (however large) when any is due."""
    count = 0
    size = 0
    for turn in pending[:max_turns]:
        size += len(turn.content) + TURN_OVERHEAD_BYTES
        if count and size > max_bytes:
            break
        count += 1
    return count


def header_snapshot(state: SessionState) -> SessionState:
    """A copy of the header that later changes to ``state`` do not reach. Its one mutable field
    is ``metadata`` (every other is a str, number, datetime or enum), so that alone is copied
    deeply: a tenth of what ``model_copy(deep=True)`` costs, paid on every flush and again on
    every replay of one."""
    return state.model_copy(update={"metadata": copy.deepcopy(state.metadata)})


def header_as_of(state: SessionState, later: list[SessionTurn]) -> SessionState:
    """The header as it was before ``later`` (the pending turns a partial flush leaves)."""
    header = header_snapshot(state)
    header.turn_count -= len(later)
    header.total_tokens -= sum(t.tokens or 0 for t in later)
    header.total_cost -= sum(t.cost for t in later)
    return header


@dataclass(frozen=True)
class Batch:
    """One flush: these turns, the header and the checkpoints as of the last of them."""

    turns: list[SessionTurn]
    header: SessionState
    checkpoints: list[Checkpoint]
    complete: bool
    """True when the batch takes every pending turn (the header is then up to date)."""


def plan_batch(
    state: SessionState,
    pending: list[SessionTurn],
    pending_checkpoints: list[Checkpoint],
    max_turns: int | None,
) -> Batch:
    """The next flush of the oldest pending turns (at most ``max_turns``)."""
    turns = pending[: cut_batch(pending, max_turns)]
    if len(turns) == len(pending):
        return Batch(turns, header_snapshot(state), list(pending_checkpoints), True)
    header = header_as_of(state, pending[len(turns) :])
    upto = header.turn_count if not turns else (turns[-1].seq or 0) + 1
    checkpoints = [c for c in pending_checkpoints if c.turn_count <= upto]
    return Batch(turns, header, checkpoints, False)


def flushable(
    pending: int, *, fast: bool, arrived_task: int, arrived_in_task: int, current_task: int
) -> int:
    """Pending turns that a flush may take now: not those that arrived in the current workflow
    task (``fast``), because the SDK can hand a timer and an update over in either order (live
    vs replay after a worker restart) and both orders must give the same commands."""
    if not fast or arrived_task != current_task:
        return pending
    return max(0, pending - arrived_in_task)


@dataclass(frozen=True)
class RunSize:
    """How big the current run is (from ``workflow.info()``) and how many messages it took."""

    events: int
    bytes: int
    suggested: bool
    messages: int


def should_continue_as_new(
    size: RunSize, max_messages: int, max_events: int = CAN_HISTORY_EVENTS
) -> bool:
    """Continue as new well before Temporal's limits (2,000 updates, 4 MB, 4,096 events), and
    once the run holds ``max_events`` (what a cold replay of the run costs)."""
    return (
        size.suggested
        or size.messages >= max_messages
        or size.events >= min(max_events, CAN_HISTORY_EVENTS)
        or size.bytes >= CAN_HISTORY_BYTES
    )


def must_turn_away(size: RunSize, draining: bool) -> bool:
    """Whether updates are turned away (retryable) now: while the run drains, or when it is
    close to Temporal's suggested size while the main loop is still busy (a flush retrying
    against a store that is down); below that backstop turns keep flowing."""
    return (
        draining or size.events >= BACKSTOP_HISTORY_EVENTS or size.bytes >= BACKSTOP_HISTORY_BYTES
    )


IDLE_CONTINUE_MIN_EVENTS = 40
"""An idle run continues as new only past this many history events (runs of features 2): a
fresh run (about five) is already as cheap to replay as it gets, and continuing it again would
only add runs."""

IDLE_CONTINUE_MIN_EVENTS_SMALL = 18
"""The same for runs of features 3 and later: a session created and given a turn or two (19-30
events in 3-5 workflow tasks, against 6 events in one task for a bare workflow's update) goes
down to about five once it idles, so a cold call into it replays one workflow task instead of
several. A continued run with one turn (about 16 events) stays as it is."""


IDLE_CONTINUE_PAYS_FEATURES = 10
"""Runs of features 10 and later go back to ``IDLE_CONTINUE_MIN_EVENTS``: an idle continue-as-new
of a short run costs more than the replay it saves. Its timer fires ``idle_continue_after``
after the visit, when a busy worker has mostly evicted the session, so the worker replays the
run to end it (what the next cold call would have replayed), then starts the next run (a new
workflow instance, and a new run for the server to create), on every visit. A session created
with a turn or two and visited once in a while stayed at 13-27 events, and each visit paid for
a continue-as-new; measured in session 15 on a bench_scale-shaped load (2,000 sessions, a cache
of 100, each session visited once): 19.8 workflow activations per call with a floor of 18,
11.6 with 40; with sessions visited again and again, about the same either way
(bench/RESULTS.md, "Scale")."""


FULL_RUN_IDLE_FEATURES = 14
"""Runs of features 14 and later that a size continue-as-new started (the run before was full:
``SessionWorkflowInput.continued_full``) continue as new once idle from
``IDLE_CONTINUE_MIN_EVENTS_AFTER_FULL`` events, not ``IDLE_CONTINUE_MIN_EVENTS``."""

IDLE_CONTINUE_MIN_EVENTS_AFTER_FULL = 16
"""Where a session's turns end against its run boundaries decides how long its last run is:
a session that took a burst of turns (an agent's loop, an import) and went quiet is left with
whatever came after its last size continue-as-new, up to ``IDLE_CONTINUE_MIN_EVENTS`` events
plus its visits, against 8-23 (14 at the median) for a session created with a turn. Below the
usual floor it stayed as it was, so a cold turn into it cost up to ~1.3x a fresh session's
(bench/RESULTS.md, "Scale", session 20). Such a run continues as new from this many events
instead, into a minimal run (about five). It costs one idle continue-as-new per size
continue-as-new, which already costs a new run: not the one per visit that made runs of features
3-9 pay more than they saved (``IDLE_CONTINUE_PAYS_FEATURES``), as the minimal run an idle
continue-as-new starts goes back to the usual floor. A run shorter than this is about as short
as a fresh session's and stays as it is."""


def idle_min_events(features: int, *, continued_full: bool = False) -> int:
    """The history length from which an idle run of ``features`` continues as new;
    ``continued_full``: a size continue-as-new started the run."""
    if 3 <= features < IDLE_CONTINUE_PAYS_FEATURES:
        return IDLE_CONTINUE_MIN_EVENTS_SMALL
    if continued_full and features >= FULL_RUN_IDLE_FEATURES:
        return IDLE_CONTINUE_MIN_EVENTS_AFTER_FULL
    return IDLE_CONTINUE_MIN_EVENTS


CARRY_OVER_FEATURES = 6
"""Runs of features 6 and later do not flush before a size continue-as-new: the turns and
checkpoints still pending go to the next run in its input (``flush_before_continuing``), so the
update that fills a run answers without waiting for a store write."""


def carries_over(features: int) -> bool:
    """Whether a run of ``features`` carries what is pending into the next run at a size
    continue-as-new instead of flushing it first."""
    return features >= CARRY_OVER_FEATURES


def payload_bytes(turns: list[SessionTurn]) -> int:
    """What ``turns`` weigh in a payload, about: text plus ``TURN_OVERHEAD_BYTES`` each."""
    return text_bytes(turns) + TURN_OVERHEAD_BYTES * len(turns)


def carry_full(pending: list[SessionTurn], flushable: int) -> bool:
    """Whether a run of features 6 flushes in flow now because its flushable pending turns
    reach ``CARRIED_BYTES`` (more could not be carried over at a continue-as-new)."""
    return flushable > 0 and payload_bytes(pending[:flushable]) >= CARRIED_BYTES


def in_flow_after(flush_interval: float, *, carry: bool) -> float:
    """How old a batch is when a turn's workflow task flushes it in flow (the timer flushes it
    at ``flush_interval`` when no turn comes): half the interval for runs before features 6,
    three quarters from 6 on. Each flush is a local activity the turn's answer waits for, so
    a busy session flushes a third less often, and still within the interval."""
    return flush_interval * (0.75 if carry else 0.5)


def flush_before_continuing(
    pending: list[SessionTurn],
    checkpoints: list[Checkpoint],
    *,
    header_dirty: bool,
    carry: bool,
) -> bool:
    """Whether a draining run must flush (once more) before it continues as new.

    Without ``carry`` (runs before features 6): while more than ``CARRY_OVER_BYTES`` of turn text
    or any checkpoint is pending. With it: only while the pending turns would not fit in the next
    run's input (over ``CARRIED_BYTES`` of payload, or more checkpoints than
    ``MAX_CARRIED_CHECKPOINTS``), or when only the header is dirty: the next run starts with a
    clean header, so a header change with no turn to carry it is written now."""
    if not carry:
        return text_bytes(pending) > CARRY_OVER_BYTES or bool(checkpoints)
    if payload_bytes(pending) > CARRIED_BYTES or len(checkpoints) > MAX_CARRIED_CHECKPOINTS:
        return True
    return header_dirty and not pending and not checkpoints


def idle_continue_due(
    events: int,
    idle_seconds: float,
    after: float | None,
    busy: bool,
    min_events: int = IDLE_CONTINUE_MIN_EVENTS,
) -> bool:
    """Whether an idle run should continue as new into a minimal one now: it has been quiet for
    ``after`` seconds, has grown to ``min_events``, and nothing is in progress (unflushed turns,
    an agent turn, an operation)."""
    return after is not None and not busy and idle_seconds >= after and events >= min_events


COLD_VISIT_FEATURES = 12
"""Runs of features 12 and later store a cold visit's turns in the workflow task that brings
them (``cold_visit``; ``workflows._patches.COLD_VISITS``)."""

COLD_VISIT_AFTER = 10.0
"""Seconds without an update after which an update starts a cold visit, when the session's
config has no ``idle_continue_after`` (which otherwise sets it: the quiet after which a session
counts as idle)."""


def stores_cold_visits(features: int) -> bool:
    """Whether a run of ``features`` stores a cold visit's turns in their own workflow task."""
    return features >= COLD_VISIT_FEATURES


def cold_visit(
    quiet: float | None,
    after: float | None,
    *,
    armed: bool,
    only_task_updates: bool,
) -> bool:
    """Whether the turns pending now are a cold visit's, stored at once in their own task.

    ``quiet``: seconds from the latest update before the current workflow task to this task
    (None: no update before it in this run); ``after``: the config's ``idle_continue_after``
    (``COLD_VISIT_AFTER`` when None); ``armed``: something was pending before this task (a
    flush timer runs for it); ``only_task_updates``: every pending turn is one that an update
    brought in the current task, and no checkpoint is pending.

    A cold visit's turns go by a local activity in the task that brings them, and the answers
    wait for that write (a few milliseconds): the session's run grows by one workflow task per
    visit instead of two (the turns', then the flush timer's), and a session is mostly out of the
    worker's cache by its next visit, when every task of its run is replayed. Turns of a busy
    session (an update within ``after`` of the previous one) keep the batched flush, so a hot
    session does not pay a store write per turn. Only updates count: their workflow task always
    sends a command (the answer), so its time is the same live and on replay, which a signal's
    or a timer's task that sent none does not promise (temporalio/sdk-rust#1606)."""
    if armed or not only_task_updates:
        return False
    return quiet is None or quiet >= (COLD_VISIT_AFTER if after is None else after)


VISIT_ANSWER_FEATURES = 13
"""Runs of features 13 and later store the update task that follows a cold visit's in its own
task too (``visit_goes_on``; ``workflows._patches.VISIT_ANSWERS``)."""

VISIT_TASKS = 2
"""Update tasks of one visit stored in their own task: a turn and its answer."""


def stores_visit_answers(features: int) -> bool:
    """Whether a run of ``features`` stores a visit's second update task in its own task."""
    return features >= VISIT_ANSWER_FEATURES


def visit_goes_on(visit_tasks: int, *, armed: bool, only_task_updates: bool) -> bool:
    """Whether the turns pending now go on a visit stored task by task: ``visit_tasks`` of its
    update tasks were stored in their own task, each the last thing stored (0: no visit is
    going on; a task that was batched ends it), fewer than ``VISIT_TASKS``; nothing was pending
    before this task, and every pending turn is an update's of this task (as ``cold_visit``).

    A chat visit is a turn and, seconds later, its answer (the assistant's turn, written by the
    application once the model has replied). The answer comes within ``idle_continue_after``
    of the turn, so ``cold_visit`` alone batches it: a flush timer, and a task of its own 2 s
    later, which replays the whole run when the session was evicted from the worker's cache
    meanwhile. Stored in its own task it costs one task and a store write the answer waits
    for. After ``VISIT_TASKS`` such tasks the session is busy (an agent's tool calls, a
    script's loop), and its turns batch as before, so a hot session still pays one store write
    per flush interval, not one per turn."""
    if armed or not only_task_updates:
        return False
    return 0 < visit_tasks < VISIT_TASKS

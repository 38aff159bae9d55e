"""The ``Session`` entity workflow: the single writer of one conversation.

The operation model (what may interleave with what, and why)
-------------------------------------------------------------
A workflow's handlers interleave at every ``await``. Three kinds of work run here:

* **Turn acceptance** (``add_turn``/``add_turns`` updates and signals, agent turns): gives a turn
  its ``seq`` from the head and appends it to the pending turns. It never awaits while it holds
  the head, so it is atomic by itself.
* **Operations** that read the head, await, and write it (restore, truncate, pop, edit, merge,
  branch's fork point, regenerate's drop, checkpoint, close, suspend/resume, expiry, context's
  snapshot, and the drain before continue-as-new): each holds the *operation lock*
  (``_operation()``) from its first read to its last write. Turn acceptance takes the same lock,
  so a turn that arrives meanwhile waits, in arrival order, and is applied after the operation
  (re-checked then: a session closed meanwhile answers ``SessionClosedError``), never under a
  head that is about to move. Free, the lock is taken without yielding: a plain turn costs no
  extra workflow task and no command. In runs of features 9 (``_patches.ARRIVAL_ORDER``) every
  message handler takes the lock on arrival, before any await (``branch``'s name check and
  ``merge``'s source read run under it), work woken by a timer or an activity's result (expiry,
  the drain, a group tick's turn, a regenerated answer) queues ahead of the messages that wait
  (``_lock.OperationLock``), and whoever waited finds the session expired if the TTL watch
  found its deadline reached meanwhile: so a replay gives the lock out in the order the live
  run did, even when the SDK merges two workflow tasks into one activation
  (temporalio/sdk-rust#1606).
* **Flushes** (``Flusher``): write pending turns to the store in batches, one at a time (the
  flusher's own lock). They only remove turns from the front of the pending list, so turns may be
  accepted while a flush awaits its activity; operations flush first, under their lock, so
  every turn before the head they read is in the store.

What is left to interleave freely: flushes with turn acceptance, queries with anything (they read
one consistent header), agent activities with anything (they touch no state until they take
the lock; merge-source reads too in runs before features 9), and ``wait_ticks``/``ready`` (read
only).

Other shape decisions:

* Handlers decide and record; the main loop does the slow I/O (batched flushes), so an
  ``add_turn`` update answers after one workflow task (TEMPORAL-FACTS: an activity per wake-up
  halves throughput). A flush runs as a local activity in flow with a turn's task; the flush
  timer only fires for the tail of a burst; a flush never takes a turn that arrived in the
  current workflow task (``core.flushing.flushable``), except in runs of features 9 and 10
  whose activations apply every job at once (``SessionBase._whole_task``); runs of features 11
  leave out only the turns updates brought in it (``_patches.UPDATE_TURNS_WAIT``).
* The idle TTL is one lazy timer: turns only move the deadline; the timer re-arms itself.
* State is bounded: header, unflushed turns, a recent window and the dedup keys. Continue-as-new
  happens from the main loop only, after draining handlers; runs of features 6 hand what is
  still pending (at most ``CARRIED_BYTES``) to the next run instead of flushing it on the update
  that filled the run (``_patches.CARRY_OVER``).
* Patches are listed, with what each guards, in ``_patches.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from datetime import datetime
from typing import Any

from temporalio import workflow

from durable_sessions.workflows._edit_handlers import EditHandlers
from durable_sessions.workflows._turn_handlers import TurnHandlers
from durable_sessions.workflows.group import GroupHandlers

with workflow.unsafe.imports_passed_through():
    from durable_sessions.activities.context import PRUNERS, ContextRequest, ContextResult
    from durable_sessions.core.flushing import (
        carry_full,
        flush_before_continuing,
        idle_continue_due,
        in_flow_after,
    )
    from durable_sessions.core.lifecycle import Action
    from durable_sessions.errors import SessionError
    from durable_sessions.models import Checkpoint, SessionState, SessionTurn
    from durable_sessions.workflows import _calls as calls
    from durable_sessions.workflows._base import SESSION_STATUS, SESSION_USER_ID
    from durable_sessions.workflows._errors import invalid, to_application_error
    from durable_sessions.workflows._patches import LOCAL_FLUSH, RUN_FEATURES
    from durable_sessions.workflows.messages import (
        WORKFLOW_TYPE,
        ContextQuery,
        RecentWindow,
        SessionSnapshot,
        SessionWorkflowInput,
    )

__all__ = ["SESSION_STATUS", "SESSION_USER_ID", "SessionWorkflow", "to_application_error"]


@workflow.defn(name=WORKFLOW_TYPE)
class SessionWorkflow(TurnHandlers, EditHandlers, GroupHandlers):
    """One conversation session. Workflow id = session id."""

    @workflow.init
    def __init__(self, input: SessionWorkflowInput) -> None:
        self._setup(input)

    # ------------------------------------------------------------------ main loop

    @workflow.run
    async def run(self, input: SessionWorkflowInput) -> SessionState:
        # Runs recorded before a patch keep replaying the way they ran.
        self._flusher.local = self._modern or workflow.patched(LOCAL_FLUSH)
        self._serializing()
        if input.restore_checkpoint_id is not None:
            async with self._operation(internal=True):
                await self._rewind(input.restore_checkpoint_id, own_head=False)
        if self._state.status.is_terminal:  # nothing to run (e.g. an already closed input)
            await self._flush()
            return self._state
        if self._state.expires_at is None:
            self._touch()
        if not self._modern:
            # Runs of this code start with the status search attribute set (by the client, the
            # parent, or carried over by continue-as-new) and upsert it on transitions only.
            self._upsert_status()
        if not (input.continued or input.header_stored):
            await self._flush()  # the header is in the store before ``ready`` answers
        self._ready = True
        tasks = [asyncio.create_task(self._ttl_watch()), asyncio.create_task(self._agent_loop())]
        if self._modern and self._config.idle_continue_after is not None:
            tasks.append(asyncio.create_task(self._idle_watch(self._config.idle_continue_after)))
        try:
            return await self._main_loop()
        finally:
            for task in tasks:
                task.cancel()

    async def _main_loop(self) -> SessionState:
        # Turns carried over from the previous run keep the age they had there (runs of
        # features 6): a run that fills up faster than the flush interval still flushes in flow
        # on schedule, on an ordinary turn, instead of carrying more each time.
        carried_since = self._carried_since if self._carry_over else None
        if self._cold_visit(armed=False):
            # Runs of features 12: the updates the run's first task brought along (a create
            # and its first turn together) are a cold visit too; the loop below would take
            # their turns for a batch already waiting.
            await self._flush()
        while True:
            armed = self._flusher.has_unflushed()
            armed_at = workflow.now()
            carried = carried_since is not None and armed
            if carried_since is not None and armed:
                armed_at = min(carried_since, armed_at)
            carried_since = None
            self._armed_at = armed_at
            waited = (workflow.now() - armed_at).total_seconds()
            # A carried batch may be due at once: then no timer to start.
            due = carried and (
                waited >= self._config.flush_interval or self._must_act_now(armed, armed_at)
            )
            with contextlib.suppress(TimeoutError):
                if not due:
                    await workflow.wait_condition(
                        functools.partial(self._must_act_now, armed, armed_at),
                        timeout=self._config.flush_interval - waited if armed else None,
                        timeout_summary="flush" if armed else None,
                    )
            if self._expire_due and not self._state.status.is_terminal:
                async with self._operation(internal=True):
                    self._expire()
            # Runs of features 12: a cold visit's turns are stored in the task that brought
            # them (nothing was pending before it, so no flush timer was armed to race them);
            # runs of features 13: the visit's answer's too.
            cold = self._cold_visit(armed)
            if cold or self._flush_needed(armed):
                # Otherwise not the turns that arrived in this workflow task: when the flush
                # timer fires in the task that also brings a turn, the turn waits for the next
                # flush, in whichever order the SDK hands the two over.
                local = self._flusher.local and not cold
                await self._flush(limit=self._flusher.flushable() if local else None)
            if self._state.status.is_terminal:
                await workflow.wait_condition(lambda: not self._ticking)
                await workflow.wait_condition(workflow.all_handlers_finished)
                await self._flush()
                return self._state
            if self._should_continue_as_new() or self._idle_due:
                # Drain: new updates are turned away (clients retry them on the next run), so
                # the flush catches up and the next run starts with little or nothing pending.
                self._draining = True
                await workflow.wait_condition(lambda: not self._ticking)
                await workflow.wait_condition(workflow.all_handlers_finished)
                async with self._operation(internal=True):
                    # Only signals can still add turns; they wait for this and are carried over.
                    while self._flush_before_continuing():
                        await self._flush()
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._next_input())

    def _must_act_now(self, armed: bool, armed_at: datetime) -> bool:
        return (
            self._flush_full()
            or self._state.status.is_terminal
            or self._expire_due
            or self._should_continue_as_new()
            or self._idle_due
            or (not armed and self._flusher.has_unflushed())
            or (armed and self._flush_in_flow_due(armed_at))
        )

    def _flush_in_flow_due(self, armed_at: datetime) -> bool:
        """A turn arriving late in the flush interval (``core.flushing.in_flow_after``) flushes
        the batch there and then: under steady traffic the flush rides on a turn's workflow
        task and the timer never fires."""
        if not (self._flusher.local and self._flusher.flushable()):
            return False
        age = (workflow.now() - armed_at).total_seconds()
        return age >= in_flow_after(self._config.flush_interval, carry=self._carry_over)

    def _flush_full(self) -> bool:
        """A batch is full: ``flush_batch_size`` turns, or (runs of features 6) as much as a
        continue-as-new could carry over."""
        flushable = self._flusher.flushable()
        if flushable >= self._config.flush_batch_size:
            return True
        return self._carry_over and carry_full(self._flusher.pending, flushable)

    def _flush_needed(self, armed: bool) -> bool:
        if self._flush_full():
            return True
        if self._state.status.is_terminal or self._idle_due:
            return True
        if self._should_continue_as_new():
            if not self._carry_over:
                return True
            # Runs of features 6 hand what is pending to the next run (the drain decides), so
            # the update that filled the run answers without waiting for a store write; but
            # only when the run was full before this task's messages, as a due flush timer in
            # the same task may come before or after them (live vs replay) and both orders
            # must give the same commands.
            if self._should_continue_as_new(before_task=True):
                return False
        # Time-based flush: only when the timer that was armed for this batch has run out.
        return armed

    def _flush_before_continuing(self) -> bool:
        flusher = self._flusher
        return flush_before_continuing(
            flusher.pending,
            flusher.checkpoints,
            header_dirty=flusher.header_dirty,
            carry=self._carry_over and not self._idle_due,
        )

    def _next_input(self) -> SessionWorkflowInput:
        return SessionWorkflowInput(
            state=self._state,
            config=self._config,
            recent=self._recent,
            dedup=self._dedup,
            pending=self._flusher.pending,
            pending_checkpoints=self._flusher.checkpoints,
            pending_since=self._armed_at if self._flusher.has_unflushed() else None,
            continued=True,
            continued_full=self._should_continue_as_new(),
            group=self._group,
            features=RUN_FEATURES,
            fence_floor=self._fences.last,
        )

    async def _ttl_watch(self) -> None:
        """Sleep until the idle deadline; turns move the deadline, so re-arm when woken early.

        Runs of features 9 decide that the deadline has come by whether anything touched the
        session while the timer ran, not by comparing the clock with the deadline: a touch in a
        workflow task the SDK merges with the next on replay (temporalio/sdk-rust#1606) reads
        that task's later time, so the deadline it sets moves by the gap, and a timer that
        fired just past the live deadline would find it not yet reached on replay."""
        slept_through: int | None = None
        """Runs of features 9: the session's touches when the current sleep began."""
        while not self._state.status.is_terminal:
            deadline = self._state.expires_at
            if deadline is None:
                return
            remaining = (deadline - workflow.now()).total_seconds()
            if self._ordered_lock is not None and slept_through is not None:
                due = slept_through == self._touches
            else:
                due = remaining <= 0
            if due:
                self._expire_due = True
                self._expire_touches = self._touches
                # The main loop expires the session, or clears this if the deadline moved.
                await workflow.wait_condition(
                    lambda: not self._expire_due or self._state.status.is_terminal
                )
                slept_through = -1  # the deadline moved (or the session ended): sleep again
                continue
            slept_through = self._touches
            await workflow.sleep(max(remaining, 0.001), summary="idle ttl")

    async def _idle_watch(self, after: float) -> None:
        """Continue as new once the run has grown and the session has gone quiet, so a cache
        miss (a call after a deploy or an eviction) replays a minimal run. One lazy timer per
        quiet period; messages only move the time it looks at.

        Runs of features 9 decide that the run was quiet by whether a message arrived while
        the timer ran, not by the clock: a message in a workflow task the SDK merges with the
        next on replay reads that task's later time (temporalio/sdk-rust#1606; model run 20,
        tests/faults/RESULTS.md)."""
        quiet_through: int | None = None
        """Runs of features 9: the run's message count when the current sleep began."""
        while not self._state.status.is_terminal:
            await workflow.wait_condition(
                lambda: workflow.info().get_current_history_length() >= self._idle_min_events
            )
            since = self._last_message
            quiet = 0.0 if since is None else (workflow.now() - since).total_seconds()
            idle = quiet
            if self._ordered_lock is not None:
                slept_quietly = since is not None and quiet_through == self._messages_this_run
                idle = after if slept_quietly else 0.0
            busy = (
                self._flusher.has_unflushed()
                or self._ticking
                or self._ticks_wanted()
                or self._lock_held()
                or not workflow.all_handlers_finished()
            )
            events = workflow.info().get_current_history_length()
            if idle_continue_due(events, idle, after, busy, self._idle_min_events):
                self._idle_due = True
                return
            quiet_through = self._messages_this_run
            await workflow.sleep(after - quiet if 0 <= quiet < after else after, summary="idle")

    # ------------------------------------------------------------------ transitions

    def _act(self, action: Action) -> None:
        """A transition in a handler (the validator already checked it; after waiting for the
        lock it may no longer hold, and must fail the update, not the workflow task)."""
        try:
            self._transition(action)
        except SessionError as exc:
            raise to_application_error(exc) from None

    @workflow.update(name="suspend")
    async def suspend(self) -> SessionState:
        self._count_message()
        async with self._operation():
            self._act("suspend")
        return self._state

    @suspend.validator
    def _validate_suspend(self) -> None:
        self._validate_action("suspend")

    @workflow.update(name="resume")
    async def resume(self) -> SessionState:
        self._count_message()
        async with self._operation():
            self._act("resume")
        return self._state

    @resume.validator
    def _validate_resume(self) -> None:
        self._validate_action("resume")

    @workflow.update(name="close")
    async def close(self) -> SessionState:
        """Close the session: final checkpoint, everything flushed before this returns."""
        self._count_message()
        async with self._operation():
            self._act("close")
            self._add_checkpoint("close")
            await self._flush()
        return self._state

    @close.validator
    def _validate_close(self) -> None:
        self._validate_action("close")

    async def _signal_transition(self, action: Action) -> None:
        self._count_message()
        async with self._operation():
            try:
                self._transition(action)
            except SessionError as exc:
                self._reject_signal(action, exc)
                return
            if action == "close":
                self._add_checkpoint("close")

    @workflow.signal(name="suspend")
    async def suspend_signal(self) -> None:
        await self._signal_transition("suspend")

    @workflow.signal(name="resume")
    async def resume_signal(self) -> None:
        await self._signal_transition("resume")

    @workflow.signal(name="close")
    async def close_signal(self) -> None:
        await self._signal_transition("close")

    # ------------------------------------------------------------------ checkpoints, context

    @workflow.update(name="checkpoint")
    async def checkpoint(self) -> Checkpoint:
        """A manual checkpoint, persisted before this returns."""
        self._count_message()
        async with self._operation():
            self._check_live()
            cp = self._add_checkpoint("manual")
            await self._flush()
        return cp

    @checkpoint.validator
    def _validate_checkpoint(self) -> None:
        self._check_open()

    @workflow.update(name="context")
    async def context(self, request: ContextQuery) -> ContextResult:
        """Prune the transcript for a query (in an activity); answers with the chosen seqs."""
        self._count_message()
        async with self._operation():
            # Every turn up to the snapshot's head is in the store when the activity reads it.
            await self._flush()
            snapshot = ContextRequest(
                session_id=self._state.session_id,
                generation=self._state.generation,
                turn_count=self._state.turn_count,
                query=request.query,
                max_turns=request.max_turns,
                max_tokens=request.max_tokens,
                pruner=request.pruner,
                compaction=self._config.compaction,
            )
        return await calls.compute_context(snapshot)

    @context.validator
    def _validate_context(self, request: ContextQuery) -> None:
        self._check_not_draining()
        if request.pruner not in PRUNERS:
            raise invalid(
                self._state.session_id, f"pruner must be one of {', '.join(PRUNERS)}", "pruner"
            )

    @workflow.update(name="flush")
    async def flush(self) -> SessionState:
        """Persist everything accepted so far; answer with the header as stored."""
        self._count_message()
        async with self._operation():
            await self._flush()
        return self._state

    @workflow.update(name="annotate")
    async def annotate(self, metadata: dict[str, Any]) -> SessionState:
        """Merge keys into the session's metadata (used to record merges on the source)."""
        self._count_message()
        async with self._operation():
            self._state.metadata = {**self._state.metadata, **metadata}
            self._flusher.header_dirty = True
            await self._flush()
        return self._state

    @workflow.update(name="ready")
    async def ready(self) -> SessionState:
        """Answer once the run has started (header persisted, any restore done)."""
        await workflow.wait_condition(lambda: self._ready)
        return self._state

    # ------------------------------------------------------------------ queries

    @workflow.query(name="state")
    def get_state(self) -> SessionState:
        return self._state

    @workflow.query(name="recent_turns")
    def recent_turns(self) -> list[SessionTurn]:
        return self._recent

    @workflow.query(name="recent_window")
    def recent_window(self) -> RecentWindow:
        """The head's size and the recent window, read together (``get_items(limit=n)``)."""
        return RecentWindow(turn_count=self._state.turn_count, turns=self._recent)

    @workflow.query(name="snapshot")
    def snapshot(self) -> SessionSnapshot:
        """Header plus unflushed turns, taken atomically (one query)."""
        return SessionSnapshot(state=self._state, pending=self._flusher.pending)

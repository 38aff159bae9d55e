"""State of a ``Session`` run and the small operations every handler shares.

``SessionBase`` holds the header, the recent window, the dedup keys, the ``Flusher`` and the
*operation lock*; the handler groups (``session.py``, ``_head.py``, ``_edit_handlers.py``,
``group.py``) build on it. The operation model itself is described in ``session.py``'s
docstring.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from durable_sessions.core.flushing import (
        CAN_HISTORY_EVENTS,
        RunSize,
        carries_over,
        cold_visit,
        idle_min_events,
        must_turn_away,
        should_continue_as_new,
        stores_cold_visits,
        stores_visit_answers,
        visit_goes_on,
    )
    from durable_sessions.core.lifecycle import Action, check_turn, next_status
    from durable_sessions.core.turns import accept_turn, push_recent, remember
    from durable_sessions.errors import SessionError
    from durable_sessions.models import (
        Checkpoint,
        CheckpointReason,
        SessionConfig,
        SessionState,
        SessionTurn,
    )
    from durable_sessions.workflows import _calls as calls
    from durable_sessions.workflows._errors import busy, closed, to_application_error
    from durable_sessions.workflows._flusher import Flusher
    from durable_sessions.workflows._lock import OperationLock
    from durable_sessions.workflows._patches import (
        ARRIVAL_ORDER_FEATURES,
        MODERN_FEATURES,
        SERIALIZED_OPERATIONS,
        SIGNALS_WHILE_DRAINING,
        UPDATE_TURNS_WAIT_FEATURES,
    )
    from durable_sessions.workflows.messages import GroupState, SessionWorkflowInput, TurnInput

__all__ = ["SESSION_STATUS", "SESSION_USER_ID", "SessionBase"]

SESSION_USER_ID = SearchAttributeKey.for_keyword("SessionUserId")
SESSION_STATUS = SearchAttributeKey.for_keyword("SessionStatus")


class SessionBase:
    """Fields and shared steps of a run; no Temporal handlers here."""

    def _setup(self, input: SessionWorkflowInput) -> None:
        self._state: SessionState = input.state
        self._config: SessionConfig = input.config
        self._recent: list[SessionTurn] = list(input.recent)
        self._dedup: dict[str, int] = dict(input.dedup)
        self._fences = calls.WriteFences(input.fence_floor)
        self._flusher = Flusher(
            lambda: self._state,
            list(input.pending),
            list(input.pending_checkpoints),
            header_dirty=not (input.continued or input.header_stored),
            fence=self._fences.next,
            whole_task=self._whole_task,
            updates_wait=input.features >= UPDATE_TURNS_WAIT_FEATURES,
        )
        self._messages_this_run = 0
        self._messages_before_task = 0
        """Messages of this run before the workflow task the latest one arrived in ..."""
        self._message_task = -1
        """... and that task (by its history length)."""
        self._updates_wait = input.features >= UPDATE_TURNS_WAIT_FEATURES
        """Runs of features 11 (``_patches.UPDATE_TURNS_WAIT``)."""
        self._update_task = -1
        """The workflow task (by its history length) of the latest update ..."""
        self._updates_in_task = 0
        """... and how many updates came in it."""
        self._cold_visits = stores_cold_visits(input.features)
        """Runs of features 12 store a cold visit's turns in their own task (``_patches``)."""
        self._visit_answers = stores_visit_answers(input.features)
        """Runs of features 13 store a visit's answer in its own task too (``_patches``)."""
        self._visit_tasks = 0
        """Update tasks of the visit going on stored in their own task (0: none going on)."""
        self._update_task_at: datetime | None = None
        """The time of ``_update_task`` (every update of a task reads its time) ..."""
        self._update_before_task_at: datetime | None = None
        """... and of the update task before it (None: none before it in this run)."""
        self._modern = input.features >= MODERN_FEATURES
        """Started with every patch on (no markers) and idle continue-as-new (``_patches``)."""
        self._idle_min_events = idle_min_events(input.features, continued_full=input.continued_full)
        self._carry_over = carries_over(input.features)
        """A size continue-as-new carries what is pending instead of flushing it first."""
        self._carried_since = input.pending_since
        self._armed_at = workflow.now()
        """When the batch now pending began to wait (the main loop's flush timer counts from
        it); handed to the next run with what is pending."""
        self._last_message: datetime | None = None
        """When the latest update or signal arrived (None: none yet in this run)."""
        self._idle_due = False
        self._op_lock = asyncio.Lock()
        self._ordered_lock = OperationLock() if input.features >= ARRIVAL_ORDER_FEATURES else None
        """Runs of features 9: the operation lock orders waiters by what woke them
        (``_lock.py``), message handlers take it on arrival, and one that had to wait expires
        the session first if the TTL watch found its deadline reached (``_patches``)."""
        self._serialized: bool | None = None
        """Head operations hold ``_op_lock`` (patch ``serialized-operations``); decided on first
        use, which may be a handler that runs before ``run`` does (the first task of a run can
        bring updates and signals along)."""
        self._expire_due = False
        self._touches = 0
        """How many times the idle deadline was moved in this run (``_touch``)."""
        self._expire_touches = -1
        """``_touches`` when the TTL watch found the deadline reached (runs of features 9)."""
        self._ready = False
        self._draining = False
        self._branching: set[str] = set()
        self._group: GroupState | None = input.group
        self._ticking = False
        self._tick_turns: dict[int, SessionTurn] = {}

    # ------------------------------------------------------------------ the operation lock

    @contextlib.asynccontextmanager
    async def _operation(self, *, internal: bool = False) -> AsyncIterator[None]:
        """Hold the operation lock: nothing else that reads or writes the head runs meanwhile.

        Free, it is taken without yielding (no extra workflow task, no command), so a plain turn
        costs nothing; held, callers queue in arrival order (``asyncio.Lock`` is FIFO). Runs of
        features 9 queue ``internal`` callers (woken by an activity result or a timer, not by a
        message) ahead of message handlers (``_lock.py``), and a caller that had to wait finds
        the session expired if the TTL watch found its deadline reached meanwhile: which of the
        two got the lock first then makes no difference, however the SDK ordered them
        (``_patches``).
        """
        ordered = self._ordered_lock
        if ordered is not None:
            waited = await ordered.acquire(internal=internal)
            try:
                if waited:
                    self._expire_if_due()
                yield
            finally:
                ordered.release()
            return
        if not self._serializing():
            yield
            return
        async with self._op_lock:
            yield

    def _whole_task(self) -> bool:
        """Runs of features 9, in an activation whose jobs were all applied before workflow code
        ran (the SDK's workflow logic flag 2, which the plugin turns on for every worker): then
        the order in which the SDK handed a timer and a message over cannot show, so a flush
        takes the current task's turns too, and a size continue-as-new counts every message.
        Those "current task" rules read the task by its history length, which a replay that
        merges two tasks (temporalio/sdk-rust#1606) changes (``_patches.ARRIVAL_ORDER``)."""
        if self._ordered_lock is None:
            return False
        # The workflow's event loop is the SDK's workflow instance; the flag is read per
        # activation from the history, so live and replay agree. An SDK without it: False.
        return getattr(asyncio.get_running_loop(), "_single_batch_activation", False) is True

    def _lock_held(self) -> bool:
        ordered = self._ordered_lock
        return ordered.locked() if ordered is not None else self._op_lock.locked()

    def _serializing(self) -> bool:
        if self._serialized is None:
            self._serialized = self._modern or workflow.patched(SERIALIZED_OPERATIONS)
        return self._serialized

    # ------------------------------------------------------------------ flushing

    async def _flush(self, limit: int | None = None) -> None:
        await self._flusher.flush(limit)

    def _run_size(self) -> RunSize:
        info = workflow.info()
        return RunSize(
            events=info.get_current_history_length(),
            bytes=info.get_current_history_size(),
            suggested=info.is_continue_as_new_suggested(),
            messages=self._messages_this_run,
        )

    def _should_continue_as_new(self, *, before_task: bool = False) -> bool:
        """Whether the run is full; ``before_task``: already before the messages of the current
        workflow task (which the SDK may hand over before or after a timer firing in the same
        task, live and on replay: a decision both orders must take alike reads this)."""
        # Runs started before ``max_events_per_run`` existed keep the limit they ran with.
        max_events = self._config.max_events_per_run if self._modern else CAN_HISTORY_EVENTS
        size = self._run_size()
        if before_task and self._updates_wait:
            if self._update_task == size.events:
                size = dataclasses.replace(size, messages=size.messages - self._updates_in_task)
        elif before_task and self._message_task == size.events and not self._whole_task():
            size = dataclasses.replace(size, messages=self._messages_before_task)
        return should_continue_as_new(size, self._config.max_updates_per_run, max_events)

    # ------------------------------------------------------------------ header

    def _expire(self) -> None:
        """The main loop's expiry, under the lock: expire, unless a head move (which touches the
        session) pushed the deadline out while expiry waited for the lock."""
        if not self._expire_due or self._state.status.is_terminal:
            return
        if self._deadline_moved():
            self._expire_due = False  # the TTL watch sleeps again
            return
        self._expire_now()

    def _expire_if_due(self) -> None:
        """Runs of features 9, on being handed the lock after waiting: expire now if the TTL
        watch found the idle deadline reached and nothing touched the session since (expiry is
        waiting for the lock, or about to queue for it). A moved deadline is the main loop's to
        clear."""
        if self._expire_due and not self._state.status.is_terminal and not self._deadline_moved():
            self._expire_now()

    def _deadline_moved(self) -> bool:
        """Since the TTL watch found the deadline reached: by the touches in runs of features 9
        (not by the clock: ``_ttl_watch``), by the clock before."""
        if self._ordered_lock is not None:
            return self._touches != self._expire_touches
        deadline = self._state.expires_at
        return deadline is not None and deadline > workflow.now()

    def _expire_now(self) -> None:
        self._transition("expire")
        self._add_checkpoint("expire")

    def _touch(self) -> None:
        self._touches += 1
        now = workflow.now()
        self._state.updated_at = now
        if not self._state.status.is_terminal:
            self._state.expires_at = now + timedelta(seconds=self._config.session_ttl)

    def _transition(self, action: Action) -> None:
        self._state.status = next_status(self._state.session_id, self._state.status, action)
        self._state.updated_at = workflow.now()
        if self._state.status.is_terminal:
            self._state.expires_at = None
        elif action == "resume":
            self._touch()
        self._flusher.header_dirty = True
        self._upsert_status()

    def _upsert_status(self) -> None:
        workflow.upsert_search_attributes([SESSION_STATUS.value_set(self._state.status.value)])

    def _add_checkpoint(self, reason: CheckpointReason) -> Checkpoint:
        cp = Checkpoint(
            checkpoint_id=workflow.uuid4().hex,
            session_id=self._state.session_id,
            turn_count=self._state.turn_count,
            created_at=workflow.now(),
            reason=reason,
            generation=self._state.generation,
            status=self._state.status,
            metadata=dict(self._state.metadata),
            total_tokens=self._state.total_tokens,
            total_cost=self._state.total_cost,
        )
        self._flusher.add_checkpoint(cp)
        self._state.last_checkpoint_id = cp.checkpoint_id
        return cp

    # ------------------------------------------------------------------ validation

    def _count_message(self) -> None:
        task = workflow.info().get_current_history_length()
        if task != self._message_task:
            self._message_task, self._messages_before_task = task, self._messages_this_run
        if self._updates_wait and workflow.current_update_info() is not None:
            if task != self._update_task:
                self._update_task, self._updates_in_task = task, 0
                self._update_before_task_at = self._update_task_at
                self._update_task_at = workflow.now()
            self._updates_in_task += 1
        self._messages_this_run += 1
        self._last_message = workflow.now()

    def _cold_visit(self, armed: bool) -> bool:
        """Runs of features 12: the turns pending now are a cold visit's, to be stored in the
        workflow task that brought them (``core.flushing.cold_visit``); runs of features 13:
        or the visit's answer (``core.flushing.visit_goes_on``). The main loop asks once per
        wake-up, and stores the turns when told to."""
        if not self._cold_visits:
            return False
        since = self._update_before_task_at
        quiet = None if since is None else (workflow.now() - since).total_seconds()
        only = self._flusher.only_task_updates()
        if cold_visit(quiet, self._config.idle_continue_after, armed=armed, only_task_updates=only):
            self._visit_tasks = 1
            return True
        if not self._visit_answers:
            return False
        if visit_goes_on(self._visit_tasks, armed=armed, only_task_updates=only):
            self._visit_tasks += 1
            return True
        if armed or self._flusher.has_unflushed():
            self._visit_tasks = 0  # batched: the visit is over, the session is busy
        return False

    def _check_not_draining(self) -> None:
        # Validators do not run on replay: reading the run's size here is safe.
        if must_turn_away(self._run_size(), self._draining):
            raise busy(self._state.session_id)

    def _check_open(self) -> None:
        """Validators of updates that need a running, not closing, session."""
        self._check_not_draining()
        if self._state.status.is_terminal:
            raise closed(self._state)

    def _check_live(self) -> None:
        """In a handler, after waiting for the lock: the session may have ended meanwhile."""
        if self._state.status.is_terminal:
            raise closed(self._state)

    def _check(self, turn: TurnInput, *, signal: bool = False) -> None:
        """The validator of a turn (and the re-check after waiting for the operation lock)."""
        if turn.turn_id is not None and turn.turn_id in self._dedup:
            return  # a retry: always answered with the stored turn
        # A signal cannot be retried by its sender: during the drain it is taken and carried
        # over to the next run instead of being turned away (versions before the patch dropped
        # it; the patch keeps their histories replaying).
        if not (signal and (self._modern or workflow.patched(SIGNALS_WHILE_DRAINING))):
            self._check_not_draining()
        self._check_turn_rules(turn)

    def _check_turn_rules(self, turn: TurnInput, extra: int = 0) -> None:
        """Status, role, size and capacity (with ``extra`` turns ahead of this one)."""
        state = self._state
        if extra:
            state = state.model_copy(update={"turn_count": state.turn_count + extra})
        try:
            check_turn(state, self._config, turn.role, turn.content)
        except SessionError as exc:
            raise to_application_error(exc) from None

    def _validate_action(self, action: Action) -> None:
        self._check_not_draining()
        self._check_action(action)

    def _check_action(self, action: Action) -> None:
        try:
            next_status(self._state.session_id, self._state.status, action)
        except SessionError as exc:
            raise to_application_error(exc) from None

    # ------------------------------------------------------------------ accepting turns

    def _apply_turn(self, turn: TurnInput) -> SessionTurn:
        """Accept a checked turn: its ``seq``, counters, window, dedup, auto checkpoint."""
        accepted = accept_turn(
            self._state,
            self._config,
            self._dedup,
            turn.model_dump(),
            new_id=lambda: workflow.uuid4().hex,
            now=workflow.now(),
        )
        stored = accepted.turn
        if not accepted.new:
            return stored
        self._touch()
        self._flusher.add_turn(stored)
        push_recent(self._recent, stored, self._config.recent_window)
        remember(self._dedup, stored.turn_id, stored.seq or 0, self._config.dedup_window)
        if accepted.auto_checkpoint:
            self._add_checkpoint("auto")
        return stored

    def _reject_signal(self, what: str, exc: ApplicationError | SessionError) -> None:
        """A signal cannot answer: a rejected one is logged (type and reason, never content)."""
        reason = exc.message
        error_type = exc.type if isinstance(exc, ApplicationError) else type(exc).__name__
        workflow.logger.warning(
            f"{what} signal rejected", extra={"error_type": error_type, "reason": reason}
        )

"""The ``Session`` entity workflow: the single writer of one conversation.

Why it looks the way it does:

* Handlers only decide and record (validate, assign ``seq``, update counters); the main loop does
  the slow I/O (flushing batches of turns to the store), so an ``add_turn`` update answers after
  one workflow task and flushes are batched under load (TEMPORAL-FACTS: an activity per wake-up
  halves throughput).
* A flush is a local activity (it runs inside the workflow task that asks for it, so it costs the
  server no activity task and no extra workflow task) that falls back to an ordinary, durably
  retried activity when the store is slow or down. While turns keep arriving, a turn that finds
  the oldest unflushed turn half a flush interval old flushes in its own workflow task; the flush
  timer only fires for the tail of a burst. A flush never takes a turn that arrived in the
  current workflow task: the SDK can hand a timer's firing and an update over in either order
  (live vs replay after a worker crash), and both must give the same commands.
* The idle TTL is one lazy timer: turns only move the deadline; the timer re-arms itself when it
  fires early. No timer is cancelled and restarted per turn.
* State is bounded: header, unflushed turns, a recent window and the dedup keys. Continue-as-new
  happens from the main loop only, after draining handlers and flushing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
)
from temporalio.exceptions import ApplicationError, CancelledError, FailureError

from durable_sessions.workflows.group import GroupHandlers

with workflow.unsafe.imports_passed_through():
    from durable_sessions.activities.context import PRUNERS, ContextRequest, ContextResult
    from durable_sessions.core.lifecycle import Action, check_turn, next_status
    from durable_sessions.core.merging import plan_merge
    from durable_sessions.core.tokens import approx_token_count
    from durable_sessions.errors import (
        BranchExistsError,
        CheckpointNotFoundError,
        InvalidTurnError,
        SessionBusyError,
        SessionClosedError,
        SessionError,
    )
    from durable_sessions.models import (
        Checkpoint,
        CheckpointReason,
        SessionConfig,
        SessionState,
        SessionStatus,
        SessionTurn,
    )
    from durable_sessions.stores.base import PersistBatch
    from durable_sessions.workflows.messages import (
        WORKFLOW_TYPE,
        BranchRequest,
        BranchResult,
        ContextQuery,
        ExistingTurnsRequest,
        GenerationRecord,
        MergeRequest,
        RangeTotals,
        RestoreRequest,
        SessionSnapshot,
        SessionWorkflowInput,
        TranscriptTailRequest,
        TurnInput,
        TurnReceipt,
        TurnsPageRequest,
    )

SESSION_USER_ID = SearchAttributeKey.for_keyword("SessionUserId")
SESSION_STATUS = SearchAttributeKey.for_keyword("SessionStatus")

STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
)
STORE_TIMEOUT = timedelta(seconds=30)
LOCAL_STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=100),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=1),
    maximum_attempts=3,
)
LOCAL_STORE_TIMEOUT = timedelta(seconds=5)
"""A local flush gives up after this (its retries included) and hands the batch to an ordinary
activity, whose retries wait in the server, not in a workflow task kept open."""
CAN_HISTORY_EVENTS = 3_000
CAN_HISTORY_BYTES = 2_500_000
"""Continue-as-new before Temporal's suggestion (4,096 events / 4 MB): what arrives while the
run drains and flushes must still fit under it."""
BACKSTOP_HISTORY_EVENTS = 3_800
BACKSTOP_HISTORY_BYTES = 3_600_000
"""Past these, updates are turned away (retryable) until the run has continued as new."""
FLUSH_BATCH_BYTES = 128_000
CARRY_OVER_BYTES = 32_000
"""Most unflushed turn text a run hands to the next at continue-as-new."""
RECENT_WINDOW_BYTES = 64_000
"""Most turn text the recent window holds, whatever ``recent_window`` says."""
"""Most turn text one flush activity carries (Temporal warns at 256 KB per payload)."""


def _text_bytes(turns: list[SessionTurn]) -> int:
    return sum(len(t.content) for t in turns)


def to_application_error(exc: SessionError) -> ApplicationError:
    """A typed, non-retryable failure the client maps back to ``exc``'s class."""
    return ApplicationError(
        exc.message,
        {"session_id": exc.session_id, "field": exc.field},
        type=type(exc).__name__,
        non_retryable=True,
    )


@workflow.defn(name=WORKFLOW_TYPE)
class SessionWorkflow(GroupHandlers):
    """One conversation session. Workflow id = session id."""

    @workflow.init
    def __init__(self, input: SessionWorkflowInput) -> None:
        self._state: SessionState = input.state
        self._config: SessionConfig = input.config
        self._recent: list[SessionTurn] = list(input.recent)
        self._dedup: dict[str, int] = dict(input.dedup)
        self._pending: list[SessionTurn] = list(input.pending)
        self._pending_checkpoints: list[Checkpoint] = list(input.pending_checkpoints)
        self._header_dirty = not input.continued
        self._messages_this_run = 0
        self._flush_lock = asyncio.Lock()
        self._expire_due = False
        self._ready = False
        self._draining = False
        self._branching: set[str] = set()
        self._group = input.group
        self._ticking = False
        self._tick_turns: dict[int, SessionTurn] = {}
        self._fast_flush = False
        self._arrived_task = -1
        """The workflow task (by its history length) the latest pending turns arrived in ..."""
        self._arrived_in_task = 0
        """... and how many arrived in it."""

    # ------------------------------------------------------------------ main loop

    @workflow.run
    async def run(self, input: SessionWorkflowInput) -> SessionState:
        # Runs recorded before local flushes keep replaying the way they ran.
        self._fast_flush = workflow.patched("local-flush-in-flow")
        if input.restore_checkpoint_id is not None:
            await self._rewind(input.restore_checkpoint_id)
        if self._state.status.is_terminal:  # nothing to run (e.g. an already closed input)
            await self._flush()
            return self._state
        if self._state.expires_at is None:
            self._touch()
        self._upsert_status()
        if not input.continued:
            await self._flush()  # the header is in the store before ``create`` returns
        self._ready = True
        ttl = asyncio.create_task(self._ttl_watch())
        agents = asyncio.create_task(self._agent_loop())
        try:
            return await self._main_loop()
        finally:
            ttl.cancel()
            agents.cancel()

    async def _main_loop(self) -> SessionState:
        while True:
            armed = self._has_unflushed()
            armed_at = workflow.now()
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    functools.partial(self._must_act_now, armed, armed_at),
                    timeout=self._config.flush_interval if armed else None,
                    timeout_summary="flush" if armed else None,
                )
            if self._expire_due and not self._state.status.is_terminal:
                self._transition("expire")
                self._add_checkpoint("expire")
            if self._flush_needed(armed):
                # Not the turns that arrived in this workflow task: when the flush timer fires
                # in the task that also brings a turn, the turn waits for the next flush, in
                # whichever order the SDK hands the two over (after a worker restart it can be
                # one order live and the other on replay).
                await self._flush(limit=self._flushable() if self._fast_flush else None)
            if self._state.status.is_terminal:
                await workflow.wait_condition(lambda: not self._ticking)
                await workflow.wait_condition(workflow.all_handlers_finished)
                await self._flush()
                return self._state
            if self._should_continue_as_new():
                # Drain: new updates are turned away (clients retry them on the next run), so
                # the flush catches up and the next run starts with nothing pending.
                self._draining = True
                await workflow.wait_condition(lambda: not self._ticking)
                await workflow.wait_condition(workflow.all_handlers_finished)
                while _text_bytes(self._pending) > CARRY_OVER_BYTES or self._pending_checkpoints:
                    await self._flush()  # only signals can still add turns
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._next_input())

    def _flushable(self) -> int:
        """Pending turns that arrived before the current workflow task (all, before the patch)."""
        if not self._fast_flush:
            return len(self._pending)
        if self._arrived_task != workflow.info().get_current_history_length():
            return len(self._pending)
        return max(0, len(self._pending) - self._arrived_in_task)

    def _must_act_now(self, armed: bool, armed_at: datetime) -> bool:
        return (
            self._flushable() >= self._config.flush_batch_size
            or self._state.status.is_terminal
            or self._expire_due
            or self._should_continue_as_new()
            or (not armed and self._has_unflushed())
            or (armed and self._flush_in_flow_due(armed_at))
        )

    def _flush_in_flow_due(self, armed_at: datetime) -> bool:
        """A turn arriving half a flush interval after the batch began flushes it there and then:
        under steady traffic the flush rides on a turn's workflow task and the timer never
        fires."""
        if not (self._fast_flush and self._flushable()):
            return False
        age = (workflow.now() - armed_at).total_seconds()
        return age >= self._config.flush_interval / 2

    def _has_unflushed(self) -> bool:
        return bool(self._pending or self._pending_checkpoints or self._header_dirty)

    def _flush_needed(self, armed: bool) -> bool:
        if self._flushable() >= self._config.flush_batch_size:
            return True
        if self._state.status.is_terminal or self._should_continue_as_new():
            return True
        # Time-based flush: only when the timer that was armed for this batch has run out.
        return armed

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or self._messages_this_run >= self._config.max_updates_per_run
            or info.get_current_history_length() >= CAN_HISTORY_EVENTS
            or info.get_current_history_size() >= CAN_HISTORY_BYTES
        )

    def _next_input(self) -> SessionWorkflowInput:
        return SessionWorkflowInput(
            state=self._state,
            config=self._config,
            recent=self._recent,
            dedup=self._dedup,
            pending=self._pending,
            pending_checkpoints=self._pending_checkpoints,
            continued=True,
            group=self._group,
        )

    async def _ttl_watch(self) -> None:
        """Sleep until the idle deadline; turns move the deadline, so re-arm when woken early."""
        while not self._state.status.is_terminal:
            deadline = self._state.expires_at
            if deadline is None:
                return
            remaining = (deadline - workflow.now()).total_seconds()
            if remaining <= 0:
                self._expire_due = True
                return
            await workflow.sleep(remaining, summary="idle ttl")

    # ------------------------------------------------------------------ persistence

    async def _flush(self, limit: int | None = None) -> None:
        """Write the pending turns (the oldest ``limit`` of them, or all), the checkpoints and
        header as of the last of them.

        One activity call per batch of at most ``FLUSH_BATCH_BYTES`` of turn text, so no
        payload in history comes near Temporal's limits however large the turns are.
        """
        async with self._flush_lock:
            if limit is None:
                # Flush what is pending now; turns arriving meanwhile wait for the next flush
                # (a loop chasing them would never end under steady load).
                target = len(self._pending)
                while self._has_unflushed():
                    flushed = await self._flush_batch(None)
                    target -= flushed
                    if flushed and target <= 0:
                        break
                return
            target = min(limit, len(self._pending))
            while self._has_unflushed():
                target -= await self._flush_batch(target)
                if target <= 0:
                    break

    async def _flush_batch(self, max_turns: int | None) -> int:
        """Flush the oldest pending turns, at most ``max_turns`` (one activity); returns how
        many."""
        turns: list[SessionTurn] = []
        size = 0
        for turn in self._pending[:max_turns]:
            size += len(turn.content) + 256
            if turns and size > FLUSH_BATCH_BYTES:
                break
            turns.append(turn)
        last_seq = turns[-1].seq if turns else None
        if len(turns) == len(self._pending):
            header = self._state.model_copy(deep=True)
            checkpoints = list(self._pending_checkpoints)
        else:  # a partial batch: the header and checkpoints must not point past its turns
            header = self._header_as_of(turns)
            upto = header.turn_count if last_seq is None else last_seq + 1
            checkpoints = [c for c in self._pending_checkpoints if c.turn_count <= upto]
        complete = len(turns) == len(self._pending)
        if complete:
            self._header_dirty = False
        try:
            await self._persist(PersistBatch(state=header, turns=turns, checkpoints=checkpoints))
        except BaseException:
            self._header_dirty = True
            raise
        del self._pending[: len(turns)]
        flushed = {c.checkpoint_id for c in checkpoints}
        self._pending_checkpoints = [
            c for c in self._pending_checkpoints if c.checkpoint_id not in flushed
        ]
        return len(turns)

    async def _persist(self, batch: PersistBatch) -> None:
        summary = f"flush {len(batch.turns)} turns"
        if self._fast_flush:
            try:
                await workflow.execute_local_activity(
                    "persist_batch",
                    batch,
                    start_to_close_timeout=LOCAL_STORE_TIMEOUT,
                    schedule_to_close_timeout=LOCAL_STORE_TIMEOUT,
                    retry_policy=LOCAL_STORE_RETRY,
                    summary=summary,
                )
                return
            except FailureError as exc:
                # A local activity's failure arrives unwrapped (ApplicationError, TimeoutError),
                # not as an ActivityError; only a cancellation must go on up.
                if isinstance(exc, CancelledError):
                    raise
                workflow.logger.warning(
                    "local flush failed; retrying it as an activity",
                    extra={"session_id": self._state.session_id, "turns": len(batch.turns)},
                )
        await workflow.execute_activity(
            "persist_batch",
            batch,
            start_to_close_timeout=STORE_TIMEOUT,
            retry_policy=STORE_RETRY,
            summary=summary,
        )

    def _header_as_of(self, turns: list[SessionTurn]) -> SessionState:
        """The header as it was right after the last of ``turns`` (for a partial flush)."""
        later = self._pending[len(turns) :]
        header = self._state.model_copy(deep=True)
        header.turn_count -= len(later)
        header.total_tokens -= sum(t.tokens or 0 for t in later)
        header.total_cost -= sum(t.cost for t in later)
        return header

    # ------------------------------------------------------------------ helpers

    def _touch(self) -> None:
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
        self._header_dirty = True
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
        self._pending_checkpoints.append(cp)
        self._state.last_checkpoint_id = cp.checkpoint_id
        self._header_dirty = True
        return cp

    def _check_not_draining(self) -> None:
        # Also when the run is close to Temporal's suggested size while the main loop is still
        # busy (e.g. a flush retrying against a database that is down): what is accepted meanwhile
        # would push it past. Below that backstop turns keep flowing, so an outage of the store
        # does not stop a session. (Validators do not run on replay: reading the size is safe.)
        info = workflow.info()
        if (
            self._draining
            or info.get_current_history_length() >= BACKSTOP_HISTORY_EVENTS
            or info.get_current_history_size() >= BACKSTOP_HISTORY_BYTES
        ):
            raise ApplicationError(
                "session is moving to a new run; retry in a moment",
                {"session_id": self._state.session_id, "field": None},
                type=SessionBusyError.__name__,
            )

    def _check_open(self) -> None:
        """Validators of updates that need a running, not closing, session."""
        self._check_not_draining()
        if self._state.status.is_terminal:
            raise to_application_error(
                SessionClosedError(
                    f"session is {self._state.status.value}",
                    session_id=self._state.session_id,
                    field="status",
                )
            )

    def _count_message(self) -> None:
        self._messages_this_run += 1

    def _check(self, turn: TurnInput, *, signal: bool = False) -> None:
        if turn.turn_id is not None and turn.turn_id in self._dedup:
            return  # a retry: always answered with the stored turn
        # A signal cannot be retried by its sender: during the drain it is taken and carried
        # over to the next run instead of being turned away (versions before the patch dropped
        # it; the patch keeps their histories replaying).
        if not (signal and workflow.patched("signals-accepted-while-draining")):
            self._check_not_draining()
        try:
            check_turn(self._state, self._config, turn.role, turn.content)
        except SessionError as exc:
            raise to_application_error(exc) from None

    def _apply_turn(self, turn: TurnInput) -> SessionTurn:
        seen = self._dedup.get(turn.turn_id) if turn.turn_id is not None else None
        data = turn.model_dump()
        data["turn_id"] = turn.turn_id or workflow.uuid4().hex
        data["timestamp"] = turn.timestamp or workflow.now()
        if seen is not None:
            return SessionTurn.model_validate({**data, "seq": seen})
        if turn.tokens is None:
            data["tokens"] = approx_token_count(turn.content)
        stored = SessionTurn.model_validate({**data, "seq": self._state.turn_count})
        self._state.turn_count += 1
        self._state.total_tokens += stored.tokens or 0
        self._state.total_cost += stored.cost
        self._touch()
        self._pending.append(stored)
        if self._fast_flush:
            task = workflow.info().get_current_history_length()
            if task != self._arrived_task:
                self._arrived_task, self._arrived_in_task = task, 0
            self._arrived_in_task += 1
        self._recent.append(stored)
        del self._recent[: max(0, len(self._recent) - self._config.recent_window)]
        while len(self._recent) > 1 and _text_bytes(self._recent) > RECENT_WINDOW_BYTES:
            del self._recent[0]
        self._dedup[stored.turn_id] = stored.seq or 0
        if len(self._dedup) > self._config.dedup_window:
            for key in list(self._dedup)[: len(self._dedup) - self._config.dedup_window]:
                del self._dedup[key]
        interval = self._config.auto_checkpoint_interval
        if interval is not None and self._state.turn_count % interval == 0:
            self._add_checkpoint("auto")
        self._header_dirty = True
        return stored

    async def _load_checkpoint(self, checkpoint_id: str) -> Checkpoint:
        """One of this session's checkpoints, or a typed CheckpointNotFoundError."""
        cp: Checkpoint | None = await workflow.execute_activity(
            "load_checkpoint",
            checkpoint_id,
            result_type=Checkpoint,
            start_to_close_timeout=STORE_TIMEOUT,
            retry_policy=STORE_RETRY,
        )
        if cp is None or cp.session_id != self._state.session_id:
            raise to_application_error(
                CheckpointNotFoundError(
                    "no such checkpoint in this session",
                    session_id=self._state.session_id,
                    field="checkpoint_id",
                )
            )
        return cp

    async def _rewind(self, checkpoint_id: str) -> None:
        """Move the transcript head to a checkpoint; rewound turns stay in the log."""
        await self._flush()
        cp = await self._load_checkpoint(checkpoint_id)
        self._state.metadata = dict(cp.metadata)
        await self._move_head(
            cp.generation, cp.turn_count, cp.total_tokens, cp.total_cost, checkpoint_id
        )

    async def _move_head(
        self, generation: int, turn_count: int, tokens: int, cost: float, origin: str
    ) -> None:
        """Start a new generation forked from ``generation`` at ``turn_count`` (copy-on-write)."""
        new_generation = self._state.generation + 1
        await workflow.execute_activity(
            "record_generation",
            GenerationRecord(
                session_id=self._state.session_id,
                generation=new_generation,
                parent_generation=generation,
                fork_seq=turn_count,
            ),
            start_to_close_timeout=STORE_TIMEOUT,
            retry_policy=STORE_RETRY,
        )
        self._state.generation = new_generation
        self._state.turn_count = turn_count
        self._state.total_tokens = tokens
        self._state.total_cost = cost
        self._state.status = SessionStatus.ACTIVE
        self._dedup = {k: v for k, v in self._dedup.items() if v < turn_count}
        self._recent = await workflow.execute_activity(
            "load_transcript_tail",
            TranscriptTailRequest(
                session_id=self._state.session_id,
                generation=new_generation,
                turn_count=turn_count,
                limit=self._config.recent_window,
            ),
            result_type=list[SessionTurn],
            start_to_close_timeout=STORE_TIMEOUT,
            retry_policy=STORE_RETRY,
        )
        self._touch()
        self._upsert_status()
        restore_cp = self._add_checkpoint("restore")
        restore_cp.metadata = {**restore_cp.metadata, "restored_from": origin}
        await self._flush()

    @workflow.update(name="truncate")
    async def truncate(self, turn_count: int) -> SessionState:
        """Keep only the first ``turn_count`` turns in the transcript (the log keeps the rest).

        What ``pop_item`` / ``clear_session`` of agent-framework adapters need: the head moves
        like a restore, nothing is deleted.
        """
        self._count_message()
        await self._flush()
        if turn_count >= self._state.turn_count:
            return self._state
        dropped = await workflow.execute_activity(
            "range_totals",
            ExistingTurnsRequest(
                session_id=self._state.session_id,
                generation=self._state.generation,
                turn_count=self._state.turn_count,
                turn_ids=[],
                offset=turn_count,
            ),
            result_type=RangeTotals,
            start_to_close_timeout=STORE_TIMEOUT,
            retry_policy=STORE_RETRY,
        )
        await self._move_head(
            self._state.generation,
            turn_count,
            max(0, self._state.total_tokens - dropped.tokens),
            max(0.0, self._state.total_cost - dropped.cost),
            f"truncate:{turn_count}",
        )
        return self._state

    @truncate.validator
    def _validate_truncate(self, turn_count: int) -> None:
        self._check_open()
        if turn_count < 0:
            raise to_application_error(
                InvalidTurnError(
                    "turn_count must be >= 0", session_id=self._state.session_id, field="turn_count"
                )
            )

    # ------------------------------------------------------------------ add_turn

    @workflow.update(name="add_turn")
    def add_turn(self, turn: TurnInput) -> TurnReceipt:
        """Store a turn; the receipt says where (``seq``). A known ``turn_id`` answers with the
        original receipt. The receipt leaves the content out: it is in the input already, and
        echoing it would double every turn's footprint in history."""
        self._count_message()
        stored = self._apply_turn(turn)
        assert stored.seq is not None
        assert stored.tokens is not None
        return TurnReceipt(
            turn_id=stored.turn_id, seq=stored.seq, tokens=stored.tokens, timestamp=stored.timestamp
        )

    @add_turn.validator
    def _validate_add_turn(self, turn: TurnInput) -> None:
        self._check(turn)

    @workflow.signal(name="add_turn")
    def add_turn_signal(self, turn: TurnInput) -> None:
        """Fire-and-forget ``add_turn``; a rejected turn is logged and never fails a task."""
        self._count_message()
        try:
            self._check(turn, signal=True)
        except ApplicationError as exc:
            workflow.logger.warning(
                "add_turn signal rejected",
                extra={"turn_id": turn.turn_id, "error_type": exc.type, "reason": exc.message},
            )
            return
        self._apply_turn(turn)

    # ------------------------------------------------------------------ transitions

    def _validate_action(self, action: Action) -> None:
        self._check_not_draining()
        try:
            next_status(self._state.session_id, self._state.status, action)
        except SessionError as exc:
            raise to_application_error(exc) from None

    @workflow.update(name="suspend")
    def suspend(self) -> SessionState:
        self._count_message()
        self._transition("suspend")
        return self._state

    @suspend.validator
    def _validate_suspend(self) -> None:
        self._validate_action("suspend")

    @workflow.update(name="resume")
    def resume(self) -> SessionState:
        self._count_message()
        self._transition("resume")
        return self._state

    @resume.validator
    def _validate_resume(self) -> None:
        self._validate_action("resume")

    @workflow.update(name="close")
    async def close(self) -> SessionState:
        """Close the session: final checkpoint, everything flushed before this returns."""
        self._count_message()
        self._transition("close")
        self._add_checkpoint("close")
        await self._flush()
        return self._state

    @close.validator
    def _validate_close(self) -> None:
        self._validate_action("close")

    def _signal_transition(self, action: Action) -> None:
        self._count_message()
        try:
            self._transition(action)
        except SessionError as exc:
            workflow.logger.warning(
                f"{action} signal rejected",
                extra={"error_type": type(exc).__name__, "reason": exc.message},
            )
            return
        if action == "close":
            self._add_checkpoint("close")

    @workflow.signal(name="suspend")
    def suspend_signal(self) -> None:
        self._signal_transition("suspend")

    @workflow.signal(name="resume")
    def resume_signal(self) -> None:
        self._signal_transition("resume")

    @workflow.signal(name="close")
    def close_signal(self) -> None:
        self._signal_transition("close")

    # ------------------------------------------------------------------ checkpoints

    @workflow.update(name="checkpoint")
    async def checkpoint(self) -> Checkpoint:
        """A manual checkpoint, persisted before this returns."""
        self._count_message()
        cp = self._add_checkpoint("manual")
        await self._flush()
        return cp

    @checkpoint.validator
    def _validate_checkpoint(self) -> None:
        self._check_open()

    @workflow.update(name="restore")
    async def restore(self, request: RestoreRequest) -> SessionState:
        """Rewind this running session in place to one of its checkpoints."""
        self._count_message()
        await self._rewind(request.checkpoint_id)
        return self._state

    @restore.validator
    def _validate_restore(self, request: RestoreRequest) -> None:
        self._check_open()

    # ------------------------------------------------------------------ branches and merges

    @workflow.update(name="branch")
    async def branch(self, request: BranchRequest) -> BranchResult:
        """Start a child session forked from now or from a checkpoint; answer once it runs.

        The child is abandoned on parent close (``ParentClosePolicy.ABANDON``): a branch
        outlives its parent, so it can still be merged back into a restored parent.
        """
        self._count_message()
        if request.name in self._branching:
            raise self._branch_exists(request.name)
        self._branching.add(request.name)
        try:
            names = await workflow.execute_activity(
                "branch_names",
                self._state.session_id,
                result_type=list[str],
                start_to_close_timeout=STORE_TIMEOUT,
                retry_policy=STORE_RETRY,
            )
            if request.name in names:
                raise self._branch_exists(request.name)
            await self._flush()  # the child reads its prefix from the store
            base = self._state
            if request.from_checkpoint_id is None:
                fork_seq, fork_generation = base.turn_count, base.generation
                tokens, cost = base.total_tokens, base.total_cost
                recent = list(self._recent)
            else:
                cp = await self._load_checkpoint(request.from_checkpoint_id)
                fork_seq, fork_generation = cp.turn_count, cp.generation
                tokens, cost = cp.total_tokens, cp.total_cost
                recent = [t for t in self._recent if (t.seq or 0) < fork_seq]
            now = workflow.now()
            child = SessionState(
                session_id=workflow.uuid4().hex,
                user_id=base.user_id,
                metadata=dict(base.metadata),
                created_at=now,
                updated_at=now,
                turn_count=fork_seq,
                total_tokens=tokens,
                total_cost=cost,
                parent_session_id=base.session_id,
                branch_name=request.name,
                fork_seq=fork_seq,
                parent_generation=fork_generation,
            )
            await workflow.start_child_workflow(
                WORKFLOW_TYPE,
                SessionWorkflowInput(state=child, config=self._config, recent=recent),
                id=child.session_id,
                task_queue=workflow.info().task_queue,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                task_timeout=workflow.info().task_timeout,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(SESSION_USER_ID, child.user_id),
                        SearchAttributePair(SESSION_STATUS, SessionStatus.ACTIVE.value),
                    ]
                ),
            )
            return BranchResult(session_id=child.session_id)
        finally:
            self._branching.discard(request.name)

    def _branch_exists(self, name: str) -> ApplicationError:
        return to_application_error(
            BranchExistsError(
                "this session already has a branch with that name",
                session_id=self._state.session_id,
                field="name",
            )
        )

    @branch.validator
    def _validate_branch(self, request: BranchRequest) -> None:
        self._check_not_draining()
        if request.name in self._branching:
            raise self._branch_exists(request.name)
        self._check_open()

    @workflow.update(name="merge")
    async def merge(self, request: MergeRequest) -> SessionState:
        """Copy chosen turns of another session into this one, exactly once per source turn."""
        self._count_message()
        source: list[SessionTurn] = []
        offset = request.lo
        while offset < request.hi:
            page: list[SessionTurn] = await workflow.execute_activity(
                "load_turns_page",
                TurnsPageRequest(
                    session_id=request.source_session_id,
                    generation=request.source_generation,
                    turn_count=request.hi,
                    offset=offset,
                ),
                result_type=list[SessionTurn],
                start_to_close_timeout=STORE_TIMEOUT,
                retry_policy=STORE_RETRY,
            )
            if not page:
                break
            source.extend(page)
            offset = (page[-1].seq or offset) + 1
        try:
            candidates = plan_merge(request.source_session_id, source, request.spec, set())
        except ValueError as exc:
            raise to_application_error(
                InvalidTurnError(str(exc), session_id=self._state.session_id, field="turn_ids")
            ) from None
        await self._flush()
        existing = set(
            await workflow.execute_activity(
                "existing_turn_ids",
                ExistingTurnsRequest(
                    session_id=self._state.session_id,
                    generation=self._state.generation,
                    turn_count=self._state.turn_count,
                    turn_ids=[t.turn_id for t in candidates],
                ),
                result_type=list[str],
                start_to_close_timeout=STORE_TIMEOUT,
                retry_policy=STORE_RETRY,
            )
        )
        existing.update(t.turn_id for t in self._pending)
        added = 0
        for turn in candidates:
            if turn.turn_id in existing or turn.turn_id in self._dedup:
                continue
            if self._state.status is not SessionStatus.ACTIVE:
                break
            self._apply_turn(TurnInput.model_validate(turn.model_dump(exclude={"seq"})))
            added += 1
        merges = list(self._state.metadata.get("merges", []))
        merges.append(
            {
                "source_session_id": request.source_session_id,
                "strategy": request.spec.strategy,
                "added": added,
                "at": workflow.now().isoformat(),
            }
        )
        self._state.metadata = {**self._state.metadata, "merges": merges}
        self._header_dirty = True
        await self._flush()
        return self._state

    @merge.validator
    def _validate_merge(self, request: MergeRequest) -> None:
        self._check_not_draining()
        try:
            check_turn(self._state, self._config, "user", "-")
        except SessionError as exc:
            raise to_application_error(exc) from None

    @workflow.update(name="context")
    async def context(self, request: ContextQuery) -> ContextResult:
        """Prune the transcript for a query (in an activity); answers with the chosen seqs."""
        self._count_message()
        await self._flush()
        result: ContextResult = await workflow.execute_activity(
            "compute_context",
            ContextRequest(
                session_id=self._state.session_id,
                generation=self._state.generation,
                turn_count=self._state.turn_count,
                query=request.query,
                max_turns=request.max_turns,
                max_tokens=request.max_tokens,
                pruner=request.pruner,
            ),
            result_type=ContextResult,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_attempts=3, non_retryable_error_types=["ValueError"]),
            summary="prune context",
        )
        return result

    @context.validator
    def _validate_context(self, request: ContextQuery) -> None:
        self._check_not_draining()
        if request.pruner not in PRUNERS:
            raise to_application_error(
                InvalidTurnError(
                    f"pruner must be one of {', '.join(PRUNERS)}",
                    session_id=self._state.session_id,
                    field="pruner",
                )
            )

    @workflow.update(name="flush")
    async def flush(self) -> SessionState:
        """Persist everything accepted so far; answer with the header as stored."""
        self._count_message()
        await self._flush()
        return self._state

    @workflow.update(name="annotate")
    async def annotate(self, metadata: dict[str, Any]) -> SessionState:
        """Merge keys into the session's metadata (used to record merges on the source)."""
        self._count_message()
        self._state.metadata = {**self._state.metadata, **metadata}
        self._header_dirty = True
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

    @workflow.query(name="snapshot")
    def snapshot(self) -> SessionSnapshot:
        """Header plus unflushed turns, taken atomically (one query)."""
        return SessionSnapshot(state=self._state, pending=self._pending)

"""Handlers that move or read-then-write the head of a session: restore, truncate, pop, branch
and merge (edit and regenerate, which also move it, are in ``_edit_handlers``).

Each runs inside ``_operation()`` (the operation lock): it may await activities between reading
the head and writing it, and no turn is accepted meanwhile (turns wait, in order, and are applied
after it). See ``session.py`` for the whole model.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from durable_sessions.core.forks import (
        ForkPoint,
        branch_header,
        fork_at_checkpoint,
        fork_at_seq,
        fork_now,
        merge_record,
        new_merge_candidates,
        with_merge_record,
    )
    from durable_sessions.core.merging import plan_merge
    from durable_sessions.core.turns import forget_after
    from durable_sessions.errors import BranchExistsError, CheckpointNotFoundError
    from durable_sessions.models import Checkpoint, SessionState, SessionStatus, SessionTurn
    from durable_sessions.workflows import _calls as calls
    from durable_sessions.workflows._base import SESSION_STATUS, SESSION_USER_ID, SessionBase
    from durable_sessions.workflows._errors import invalid, to_application_error
    from durable_sessions.workflows._patches import NO_CHECKPOINT_PAST_HEAD, RUN_FEATURES
    from durable_sessions.workflows.messages import (
        WORKFLOW_TYPE,
        BranchRequest,
        BranchResult,
        ExistingTurnsRequest,
        GenerationRecord,
        MergeRequest,
        PopResult,
        RestoreRequest,
        SessionWorkflowInput,
        TranscriptTailRequest,
        TurnInput,
        TurnsPageRequest,
    )

__all__ = ["HeadHandlers"]


def _ignore_outcome(done: asyncio.Future[object]) -> None:
    if not done.cancelled():
        done.exception()


class HeadHandlers(SessionBase):
    """Restore, truncate, pop, branch, merge: exclusive operations on the head."""

    # ------------------------------------------------------------------ moving the head

    async def _load_checkpoint(self, checkpoint_id: str) -> Checkpoint:
        """One of this session's checkpoints, or a typed CheckpointNotFoundError."""
        cp = await calls.load_checkpoint(checkpoint_id)
        # Past the head of the current generation: a dead workflow task's (_patches).
        past_head = (
            cp is not None
            and cp.session_id == self._state.session_id
            and cp.generation == self._state.generation
            and cp.turn_count > self._state.turn_count
            and workflow.patched(NO_CHECKPOINT_PAST_HEAD)
        )
        if cp is None or cp.session_id != self._state.session_id or past_head:
            raise to_application_error(
                CheckpointNotFoundError(
                    "no such checkpoint in this session",
                    session_id=self._state.session_id,
                    field="checkpoint_id",
                )
            )
        return cp

    async def _rewind(self, checkpoint_id: str, *, own_head: bool = True) -> None:
        """Move the head to a checkpoint; rewound turns stay in the log. Holds the lock.

        ``own_head`` is False when the head came from the store (a closed session brought
        back), not from this workflow: then nothing past it is taken for a stray.
        """
        await self._flush()
        cp = await self._load_checkpoint(checkpoint_id)
        self._state.metadata = dict(cp.metadata)
        await self._move_head(
            cp.generation,
            cp.turn_count,
            cp.total_tokens,
            cp.total_cost,
            checkpoint_id,
            own_head=own_head,
        )

    async def _range_totals(self, offset: int) -> tuple[int, float]:
        """Tokens and cost of the stored transcript's turns from ``offset`` on."""
        totals = await calls.range_totals(
            ExistingTurnsRequest(
                session_id=self._state.session_id,
                generation=self._state.generation,
                turn_count=self._state.turn_count,
                turn_ids=[],
                offset=offset,
            )
        )
        return totals.tokens, totals.cost

    async def _cut_head(self, turn_count: int, origin: str) -> None:
        """Keep the first ``turn_count`` turns (flushed first). Holds the lock."""
        dropped_tokens, dropped_cost = await self._range_totals(turn_count)
        await self._move_head(
            self._state.generation,
            turn_count,
            max(0, self._state.total_tokens - dropped_tokens),
            max(0.0, self._state.total_cost - dropped_cost),
            origin,
        )

    async def _move_head(
        self,
        generation: int,
        turn_count: int,
        tokens: int,
        cost: float,
        origin: str,
        *,
        own_head: bool = True,
    ) -> None:
        """Start a new generation forked from ``generation`` at ``turn_count`` (copy-on-write).

        Every turn is flushed before this runs, and the caller holds the operation lock: the
        awaits below (recording the generation, reading the new tail) must not see a turn
        accepted under the old head, which would take a ``seq`` the new head gives again.
        So the store may drop whatever lies past the head being left (``prior_head``): only
        a flush of a workflow task that then timed out can have put it there.
        """
        new_generation = self._state.generation + 1
        await calls.record_generation(
            GenerationRecord(
                session_id=self._state.session_id,
                generation=new_generation,
                parent_generation=generation,
                fork_seq=turn_count,
                prior_head=self._state.turn_count if own_head else None,
                fence=self._fences.next(),
            )
        )
        self._state.generation = new_generation
        self._state.turn_count = turn_count
        self._state.total_tokens = tokens
        self._state.total_cost = cost
        self._state.status = SessionStatus.ACTIVE
        self._dedup = forget_after(self._dedup, turn_count)
        self._recent = await calls.load_transcript_tail(
            TranscriptTailRequest(
                session_id=self._state.session_id,
                generation=new_generation,
                turn_count=turn_count,
                limit=self._config.recent_window,
            )
        )
        self._touch()
        self._upsert_status()
        restore_cp = self._add_checkpoint("restore")
        restore_cp.metadata = {**restore_cp.metadata, "restored_from": origin}
        await self._flush()

    @workflow.update(name="restore")
    async def restore(self, request: RestoreRequest) -> SessionState:
        """Rewind this running session in place to one of its checkpoints."""
        self._count_message()
        async with self._operation():
            self._check_live()
            await self._rewind(request.checkpoint_id)
        return self._state

    @restore.validator
    def _validate_restore(self, request: RestoreRequest) -> None:
        self._check_open()

    @workflow.update(name="truncate")
    async def truncate(self, turn_count: int) -> SessionState:
        """Keep only the first ``turn_count`` turns in the transcript (the log keeps the rest).

        What ``pop_item`` / ``clear_session`` of agent-framework adapters need: the head moves
        like a restore, nothing is deleted.
        """
        self._count_message()
        async with self._operation():
            self._check_live()
            await self._flush()
            if turn_count < self._state.turn_count:
                await self._cut_head(turn_count, f"truncate:{turn_count}")
        return self._state

    @truncate.validator
    def _validate_truncate(self, turn_count: int) -> None:
        self._check_open()
        if turn_count < 0:
            raise invalid(self._state.session_id, "turn_count must be >= 0", "turn_count")

    async def _turn_at(self, seq: int) -> SessionTurn | None:
        """Turn ``seq`` of the (flushed) transcript, from the window or the store."""
        for turn in self._recent:
            if turn.seq == seq:
                return turn
        page = await calls.load_turns_page(
            TurnsPageRequest(
                session_id=self._state.session_id,
                generation=self._state.generation,
                turn_count=seq + 1,
                offset=seq,
            )
        )
        return page[0] if page else None

    @workflow.update(name="pop_turn")
    async def pop_turn(self) -> PopResult:
        """Take the last turn off the head and answer with it, in one step (atomic pop)."""
        self._count_message()
        async with self._operation():
            self._check_live()
            if self._state.turn_count == 0:
                return PopResult(turn=None, state=self._state)
            await self._flush()
            last = await self._turn_at(self._state.turn_count - 1)
            await self._cut_head(self._state.turn_count - 1, "pop")
        return PopResult(turn=last, state=self._state)

    @pop_turn.validator
    def _validate_pop_turn(self) -> None:
        self._check_open()

    # ------------------------------------------------------------------ branches

    @workflow.update(name="branch")
    async def branch(self, request: BranchRequest) -> BranchResult:
        """Start a child session forked from now, a checkpoint or any turn; answer once it runs.

        The child is abandoned on parent close (``ParentClosePolicy.ABANDON``): a branch
        outlives its parent, so it can still be merged back into a restored parent.
        """
        self._count_message()
        if request.name in self._branching:
            raise self._branch_exists()
        self._branching.add(request.name)
        try:
            if self._ordered_lock is not None:
                # Runs of features 9: the lock first, its place the message's (``_patches``).
                async with self._operation():
                    await self._check_branch_name(request.name)
                    fork = await self._fork_after_flush(request)
            else:
                await self._check_branch_name(request.name)
                async with self._operation():
                    fork = await self._fork_after_flush(request)
            child = branch_header(
                self._state, fork, workflow.uuid4().hex, request.name, workflow.now()
            )
            child_handle = await workflow.start_child_workflow(
                WORKFLOW_TYPE,
                SessionWorkflowInput(
                    state=child, config=self._config, recent=fork.recent, features=RUN_FEATURES
                ),
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
            # The branch outlives this run and is nobody's result to wait for: take its outcome
            # when it ends (e.g. a deleted branch fails with ChildWorkflowError), so it is not
            # logged as an exception never retrieved. No command: a plain callback.
            child_handle.add_done_callback(_ignore_outcome)
            return BranchResult(session_id=child.session_id)
        finally:
            self._branching.discard(request.name)

    async def _check_branch_name(self, name: str) -> None:
        if name in await calls.branch_names(self._state.session_id):
            raise self._branch_exists()

    async def _fork_after_flush(self, request: BranchRequest) -> ForkPoint:
        """Under the lock. The child reads its prefix from the store: flush, then fix the fork
        point before any other turn or head move can land."""
        await self._flush()
        return await self._fork_point(request)

    async def _fork_point(self, request: BranchRequest) -> ForkPoint:
        if request.from_checkpoint_id is not None:
            cp = await self._load_checkpoint(request.from_checkpoint_id)
            return fork_at_checkpoint(cp, self._recent)
        if request.at_seq is None or request.at_seq >= self._state.turn_count:
            return fork_now(self._state, self._recent)
        tokens, cost = await self._range_totals(request.at_seq)
        return fork_at_seq(self._state, self._recent, request.at_seq, tokens, cost)

    def _branch_exists(self) -> ApplicationError:
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
            raise self._branch_exists()
        self._check_open()
        if request.at_seq is not None and request.from_checkpoint_id is not None:
            raise invalid(
                self._state.session_id, "give at_seq or from_checkpoint_id, not both", "at_seq"
            )
        if request.at_seq is not None and request.at_seq > self._state.turn_count:
            raise invalid(self._state.session_id, "at_seq is past the transcript", "at_seq")

    # ------------------------------------------------------------------ merges

    @workflow.update(name="merge")
    async def merge(self, request: MergeRequest) -> SessionState:
        """Copy chosen turns of another session into this one, exactly once per source turn."""
        self._count_message()
        if self._ordered_lock is not None:
            # Runs of features 9: the lock first, its place the message's (``_patches``).
            async with self._operation():
                candidates = await self._merge_candidates(request)
                return await self._merge_in(request, candidates)
        # Another session: read without the lock.
        candidates = await self._merge_candidates(request)
        async with self._operation():
            return await self._merge_in(request, candidates)

    async def _merge_candidates(self, request: MergeRequest) -> list[SessionTurn]:
        source = await calls.load_turns_range(
            request.source_session_id, request.source_generation, request.lo, request.hi
        )
        try:
            return plan_merge(request.source_session_id, source, request.spec, set())
        except ValueError as exc:
            raise invalid(self._state.session_id, str(exc), "turn_ids") from None

    async def _merge_in(self, request: MergeRequest, candidates: list[SessionTurn]) -> SessionState:
        """Under the lock: which copies the target already holds, and appending the rest, with
        no turn or head move in between."""
        await self._flush()
        existing = set(
            await calls.existing_turn_ids(
                ExistingTurnsRequest(
                    session_id=self._state.session_id,
                    generation=self._state.generation,
                    turn_count=self._state.turn_count,
                    turn_ids=[t.turn_id for t in candidates],
                )
            )
        )
        existing.update(t.turn_id for t in self._flusher.pending)
        added = 0
        for turn in new_merge_candidates(candidates, existing, self._dedup):
            if self._state.status is not SessionStatus.ACTIVE:
                break
            if turn.turn_id in self._dedup:
                continue
            self._apply_turn(TurnInput.model_validate(turn.model_dump(exclude={"seq"})))
            added += 1
        record = merge_record(
            request.source_session_id, request.spec.strategy, added, workflow.now()
        )
        self._state.metadata = with_merge_record(self._state.metadata, record)
        self._flusher.header_dirty = True
        await self._flush()
        return self._state

    @merge.validator
    def _validate_merge(self, request: MergeRequest) -> None:
        self._check_not_draining()
        self._check_turn_rules(TurnInput(role="user", content="-"))

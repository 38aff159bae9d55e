"""The flush engine of a ``Session`` run: turns accepted but not stored yet, and their flushes.

A plain class the workflow holds (like samples-python's ``UpdatableTimer``). Decisions (batch
cuts, the header and checkpoints as of a batch, which turns may go now) are in
``core.flushing``; this class only keeps the pending state and calls the activity.

Concurrency: flushes run one at a time (``_lock``); turns may be accepted while a flush awaits
its activity (they are appended after the batch being written and wait for the next flush).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_sessions.core.flushing import flushable, plan_batch
    from durable_sessions.models import Checkpoint, SessionState, SessionTurn
    from durable_sessions.stores.base import PersistBatch
    from durable_sessions.workflows import _calls as calls

__all__ = ["Flusher"]


class Flusher:
    """Pending turns and checkpoints of one run, flushed in batches."""

    def __init__(
        self,
        state: Callable[[], SessionState],
        pending: list[SessionTurn],
        pending_checkpoints: list[Checkpoint],
        *,
        header_dirty: bool,
        fence: Callable[[], int],
        whole_task: Callable[[], bool],
        updates_wait: bool = False,
    ) -> None:
        self._state = state
        self._fence = fence
        """The fence of the next store write (``_calls.WriteFences.next``)."""
        self._whole_task = whole_task
        """Whether a flush may take the current task's turns too (``SessionBase._whole_task``)."""
        self.pending = pending
        self.checkpoints = pending_checkpoints
        self.header_dirty = header_dirty
        self.local = False
        """Flush through a local activity, in flow (patch ``local-flush-in-flow``)."""
        self._lock = asyncio.Lock()
        self._arrived_task = -1
        """The workflow task (by its history length) the latest pending turns arrived in ..."""
        self._arrived_in_task = 0
        """... and how many arrived in it."""
        self._updates_wait = updates_wait
        """Runs of features 11: only turns that updates brought in the current task wait
        (``_patches.UPDATE_TURNS_WAIT``)."""
        self._update_task = -1
        """The workflow task (by its history length) of the latest turn an update brought ..."""
        self._update_turns: set[str] = set()
        """... and the ids of the turns updates brought in it."""

    # ------------------------------------------------------------------ what is pending

    def add_turn(self, turn: SessionTurn) -> None:
        self.pending.append(turn)
        self.header_dirty = True
        if self._updates_wait:
            if workflow.current_update_info() is not None:
                task = workflow.info().get_current_history_length()
                if task != self._update_task:
                    self._update_task = task
                    self._update_turns = set()
                self._update_turns.add(turn.turn_id)
            return
        if self.local:
            task = workflow.info().get_current_history_length()
            if task != self._arrived_task:
                self._arrived_task, self._arrived_in_task = task, 0
            self._arrived_in_task += 1

    def add_checkpoint(self, cp: Checkpoint) -> None:
        self.checkpoints.append(cp)
        self.header_dirty = True

    def has_unflushed(self) -> bool:
        return bool(self.pending or self.checkpoints or self.header_dirty)

    def flushable(self) -> int:
        """Pending turns that arrived before the current workflow task (all, before the patch,
        and in runs of features 9 whose activations apply every job first); in runs of features
        11, those before the first turn an update brought in the current task."""
        if self._updates_wait:
            if self._update_task != workflow.info().get_current_history_length():
                return len(self.pending)
            waiting = self._update_turns
            return next(
                (i for i, t in enumerate(self.pending) if t.turn_id in waiting), len(self.pending)
            )
        if self._whole_task():
            return len(self.pending)
        return flushable(
            len(self.pending),
            fast=self.local,
            arrived_task=self._arrived_task,
            arrived_in_task=self._arrived_in_task,
            current_task=workflow.info().get_current_history_length(),
        )

    def only_task_updates(self) -> bool:
        """Runs of features 11: something is pending, and it is all turns that updates brought
        in the current workflow task (no checkpoint, no turn from a signal or woken work)."""
        if not (self._updates_wait and self.pending) or self.checkpoints:
            return False
        if self._update_task != workflow.info().get_current_history_length():
            return False
        waiting = self._update_turns
        return all(t.turn_id in waiting for t in self.pending)

    def drop_pending_from(self, seq: int) -> list[SessionTurn]:
        """Take pending turns with ``seq >= seq`` out (the head moved back past them)."""
        dropped = [t for t in self.pending if (t.seq or 0) >= seq]
        self.pending[:] = [t for t in self.pending if (t.seq or 0) < seq]
        return dropped

    # ------------------------------------------------------------------ flushing

    async def flush(self, limit: int | None = None) -> None:
        """Write the pending turns (the oldest ``limit`` of them, or all pending now), with the
        checkpoints and header as of the last of them.

        One activity per batch of at most ``FLUSH_BATCH_BYTES`` of turn text, so no payload in
        history comes near Temporal's limits however large the turns are. Turns arriving while
        this runs wait for the next flush (a loop chasing them would never end under load).
        """
        async with self._lock:
            # This await (the lock) only orders flushes; what they write is decided inside.
            target = len(self.pending) if limit is None else min(limit, len(self.pending))
            while self.has_unflushed():
                flushed = await self._flush_batch(None if limit is None else target)
                target -= flushed
                if target <= 0 and (flushed or limit is not None):
                    break

    async def _flush_batch(self, max_turns: int | None) -> int:
        """Flush the oldest pending turns, at most ``max_turns`` (one activity); how many."""
        state = self._state()
        batch = plan_batch(state, self.pending, self.checkpoints, max_turns)
        if batch.complete:
            self.header_dirty = False
        try:
            await calls.persist_batch(
                PersistBatch(
                    state=batch.header,
                    turns=batch.turns,
                    checkpoints=batch.checkpoints,
                    fence=self._fence(),
                ),
                local=self.local,
                session_id=state.session_id,
            )
        except BaseException:
            self.header_dirty = True
            raise
        del self.pending[: len(batch.turns)]
        flushed = {c.checkpoint_id for c in batch.checkpoints}
        self.checkpoints[:] = [c for c in self.checkpoints if c.checkpoint_id not in flushed]
        return len(batch.turns)

"""Handlers that accept turns: ``add_turn`` and ``add_turns``, as updates and as signals.

Turn acceptance takes the operation lock (``SessionBase._operation``): free, it is taken without
yielding, so a turn costs one workflow task and no command; held by an operation that moves the
head, turns wait in arrival order and are re-checked once it is done (see ``session.py``).
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from durable_sessions.models import SessionTurn
    from durable_sessions.workflows._base import SessionBase
    from durable_sessions.workflows._errors import invalid
    from durable_sessions.workflows.messages import (
        MAX_BATCH_BYTES,
        MAX_BATCH_TURNS,
        TurnBatch,
        TurnBatchReceipt,
        TurnInput,
        TurnReceipt,
    )

__all__ = ["TurnHandlers"]


def _receipt(stored: SessionTurn) -> TurnReceipt:
    assert stored.seq is not None
    assert stored.tokens is not None
    return TurnReceipt(
        turn_id=stored.turn_id, seq=stored.seq, tokens=stored.tokens, timestamp=stored.timestamp
    )


class TurnHandlers(SessionBase):
    """``add_turn`` / ``add_turns`` updates and signals."""

    @workflow.update(name="add_turn")
    async def add_turn(self, turn: TurnInput) -> TurnReceipt:
        """Store a turn; the receipt says where (``seq``). A known ``turn_id`` answers with the
        original receipt. The receipt leaves the content out: it is in the input already, and
        echoing it would double every turn's footprint in history."""
        self._count_message()
        async with self._operation():
            # Waited behind an operation? The session may have closed or filled up meanwhile.
            if turn.turn_id is None or turn.turn_id not in self._dedup:
                self._check_turn_rules(turn)
            return _receipt(self._apply_turn(turn))

    @add_turn.validator
    def _validate_add_turn(self, turn: TurnInput) -> None:
        self._check(turn)

    @workflow.signal(name="add_turn")
    async def add_turn_signal(self, turn: TurnInput) -> None:
        """Fire-and-forget ``add_turn``; a rejected turn is logged and never fails a task."""
        self._count_message()
        try:
            self._check(turn, signal=True)
        except ApplicationError as exc:
            self._reject_signal("add_turn", exc)
            return
        async with self._operation():
            try:
                if turn.turn_id is None or turn.turn_id not in self._dedup:
                    self._check_turn_rules(turn)
            except ApplicationError as exc:
                self._reject_signal("add_turn", exc)
                return
            self._apply_turn(turn)

    @workflow.update(name="add_turns")
    async def add_turns(self, batch: TurnBatch) -> TurnBatchReceipt:
        """Store several turns in order, all or none; each is idempotent by its ``turn_id``."""
        self._count_message()
        async with self._operation():
            self._check_batch(batch)
            receipts = [_receipt(self._apply_turn(t)) for t in batch.turns]
        return TurnBatchReceipt(receipts=receipts)

    @add_turns.validator
    def _validate_add_turns(self, batch: TurnBatch) -> None:
        self._check_not_draining()
        self._check_batch(batch)

    @workflow.signal(name="add_turns")
    async def add_turns_signal(self, batch: TurnBatch) -> None:
        """Fire-and-forget ``add_turns``: all or none, a rejected batch is logged."""
        self._count_message()
        async with self._operation():
            try:
                self._check_batch(batch)
            except ApplicationError as exc:
                self._reject_signal("add_turns", exc)
                return
            for turn in batch.turns:
                self._apply_turn(turn)

    def _check_batch(self, batch: TurnBatch) -> None:
        sid = self._state.session_id
        if len(batch.turns) > MAX_BATCH_TURNS:
            raise invalid(sid, f"a batch holds at most {MAX_BATCH_TURNS} turns", "turns")
        size = sum(len(t.content.encode("utf-8", "surrogatepass")) for t in batch.turns)
        if size > MAX_BATCH_BYTES:
            raise invalid(sid, f"a batch holds at most {MAX_BATCH_BYTES} bytes of text", "turns")
        seen: set[str] = set()
        for i, turn in enumerate(batch.turns):
            if turn.turn_id is not None and (turn.turn_id in self._dedup or turn.turn_id in seen):
                continue
            try:
                self._check_turn_rules(turn, extra=len(seen))
            except ApplicationError as exc:
                # The same error (closed, suspended, full, a bad field), naming the turn.
                field = (exc.details[0] or {}).get("field") if exc.details else None
                raise ApplicationError(
                    f"turns[{i}]: {exc.message}",
                    {"session_id": sid, "field": f"turns[{i}].{field}"},
                    type=exc.type,
                    non_retryable=True,
                ) from None
            seen.add(turn.turn_id or f"#{i}")

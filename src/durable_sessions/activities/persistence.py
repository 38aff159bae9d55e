"""Activities that move a session's turns and checkpoints into the store.

Every one is idempotent (decision 7): they run at least once, and a retry after a crash writes
the same rows again. Data a store refuses outright becomes a non-retryable ``ApplicationError``
so a bad row never retries forever; anything else (a lost connection, a restarting database)
stays retryable and Temporal retries it with backoff.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from durable_sessions import metrics
from durable_sessions.models import Checkpoint, SessionTurn
from durable_sessions.stores.base import PersistBatch, SessionStore, read_transcript
from durable_sessions.workflows.messages import (
    ExistingTurnsRequest,
    GenerationRecord,
    RangeTotals,
    TranscriptTailRequest,
    TurnsPageRequest,
)

__all__ = ["PersistenceActivities", "add_generation", "classify_failures"]

T = TypeVar("T")

log = logging.getLogger("durable_sessions.activities.persistence")

_NON_RETRYABLE_NAMES = frozenset(
    {
        # asyncpg: the data itself is refused; retrying cannot help.
        "DataError",
        "IntegrityConstraintViolationError",
        "CharacterNotInRepertoireError",
        "UntranslatableCharacterError",
        "InvalidTextRepresentationError",
        "StringDataRightTruncationError",
        "NumericValueOutOfRangeError",
        # pydantic / our own validation.
        "ValidationError",
        "ValueError",
        "TypeError",
        # The session was crypto-erased: its data can never be read or written again.
        "SessionKeyDestroyedError",
    }
)


async def classify_failures(call: Callable[[], Awaitable[T]]) -> T:
    """Run ``call``; turn refusals of the data into non-retryable ``ApplicationError``."""
    try:
        return await call()
    except ApplicationError:
        raise
    except Exception as exc:
        names = {cls.__name__ for cls in type(exc).__mro__}
        if names & _NON_RETRYABLE_NAMES:
            raise ApplicationError(
                f"store refused the data: {type(exc).__name__}",
                type="StoreDataError",
                non_retryable=True,
            ) from exc
        raise


async def add_generation(store: SessionStore, record: GenerationRecord) -> bool:
    """``store.add_generation`` with the record's ``prior_head`` and ``fence``; a store written
    before those keywords existed gets the call without them (what timed-out workflow tasks
    left past a head stays, and no write is fenced, as before), and a warning. False when the
    store refused the record as stale (``SessionStore.persist``)."""
    args = (record.session_id, record.generation, record.parent_generation, record.fork_seq)
    if record.prior_head is not None or record.fence is not None:
        try:
            written = await store.add_generation(
                *args, prior_head=record.prior_head, fence=record.fence
            )
            return written is not False
        except TypeError as exc:
            if "prior_head" not in str(exc) and "fence" not in str(exc):
                raise
            log.warning(
                "%s.add_generation takes no prior_head or fence: strays of timed-out workflow "
                "tasks are not cleaned up and late writes are not fenced "
                "(see SessionStore.add_generation)",
                type(store).__name__,
            )
    return await store.add_generation(*args) is not False


def _refused(what: str, session_id: str) -> None:
    """A fenced write the store refused: nobody waits for it (see ``SessionStore.persist``)."""
    log.info(
        "a %s of session %s was refused as stale: a later workflow task already wrote "
        "(the late write of a timed-out workflow task or activity attempt)",
        what,
        session_id,
    )


class PersistenceActivities:
    """Activities bound to one store (an asyncpg pool, a SQLite file, ...)."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    @activity.defn(name="persist_batch")
    async def persist_batch(self, batch: PersistBatch) -> None:
        """Upsert a flush: header, new turns, checkpoints, in one transaction. Fenced writes
        are tie-broken by when this attempt started (``PersistBatch.fence_tiebreak``)."""
        if batch.fence is not None:
            batch = batch.model_copy(update={"fence_tiebreak": time.time_ns() // 1000})
        with metrics.stopwatch() as sw:
            written = await classify_failures(lambda: self.store.persist(batch))
        if written is False:
            _refused("flush", batch.state.session_id)
            return
        metrics.record_flush(len(batch.turns), sw.seconds, len(batch.checkpoints))

    @activity.defn(name="load_checkpoint")
    async def load_checkpoint(self, checkpoint_id: str) -> Checkpoint | None:
        return await classify_failures(lambda: self.store.get_checkpoint(checkpoint_id))

    @activity.defn(name="record_generation")
    async def record_generation(self, record: GenerationRecord) -> None:
        if not await classify_failures(lambda: add_generation(self.store, record)):
            _refused("generation record", record.session_id)

    @activity.defn(name="load_transcript_tail")
    async def load_transcript_tail(self, request: TranscriptTailRequest) -> list[SessionTurn]:
        """The last ``limit`` turns of a transcript (to refill the recent window after a rewind)."""
        start = max(0, request.turn_count - request.limit)
        return await classify_failures(
            lambda: read_transcript(
                self.store,
                request.session_id,
                generation=request.generation,
                turn_count=request.turn_count,
                offset=start,
            )
        )

    @activity.defn(name="branch_names")
    async def branch_names(self, parent_session_id: str) -> list[str]:
        """Names of the branches a session already has (they must be unique per parent)."""
        branches = await classify_failures(lambda: self.store.list_branches(parent_session_id))
        return [b.branch_name for b in branches if b.branch_name is not None]

    @activity.defn(name="load_turns_page")
    async def load_turns_page(self, request: TurnsPageRequest) -> list[SessionTurn]:
        """Turns from ``offset`` on, as many as fit in ``max_bytes`` of text (at least one)."""
        turns = await classify_failures(
            lambda: read_transcript(
                self.store,
                request.session_id,
                generation=request.generation,
                turn_count=request.turn_count,
                offset=request.offset,
                limit=max(1, request.max_bytes // 512),
            )
        )
        page: list[SessionTurn] = []
        size = 0
        for turn in turns:
            size += len(turn.content) + 256
            if page and size > request.max_bytes:
                break
            page.append(turn)
        return page

    @activity.defn(name="existing_turn_ids")
    async def existing_turn_ids(self, request: ExistingTurnsRequest) -> list[str]:
        """The subset of ``turn_ids`` already in a transcript (idempotent merges)."""
        wanted = set(request.turn_ids)
        found: list[str] = []
        async for turns in self._pages(request):
            found.extend(t.turn_id for t in turns if t.turn_id in wanted)
        return found

    @activity.defn(name="range_totals")
    async def range_totals(self, request: ExistingTurnsRequest) -> RangeTotals:
        """Sum of tokens and cost of the turns from ``offset`` to ``turn_count``."""
        totals = RangeTotals()
        async for turns in self._pages(request):
            totals.tokens += sum(t.tokens or 0 for t in turns)
            totals.cost += sum(t.cost for t in turns)
        return totals

    async def _pages(self, request: ExistingTurnsRequest) -> AsyncIterator[list[SessionTurn]]:
        offset = request.offset
        while offset < request.turn_count:
            turns = await classify_failures(
                functools.partial(
                    read_transcript,
                    self.store,
                    request.session_id,
                    generation=request.generation,
                    turn_count=request.turn_count,
                    offset=offset,
                    limit=2000,
                )
            )
            if not turns:
                return
            yield turns
            offset += len(turns)

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.persist_batch,
            self.load_checkpoint,
            self.record_generation,
            self.load_transcript_tail,
            self.branch_names,
            self.load_turns_page,
            self.existing_turn_ids,
            self.range_totals,
        ]

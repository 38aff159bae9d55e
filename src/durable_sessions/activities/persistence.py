"""Activities that move a session's turns and checkpoints into the store.

Every one is idempotent (decision 7): they run at least once, and a retry after a crash writes
the same rows again. Data a store refuses outright becomes a non-retryable ``ApplicationError``
so a bad row never retries forever; anything else (a lost connection, a restarting database)
stays retryable and Temporal retries it with backoff.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from durable_sessions.models import Checkpoint, SessionTurn
from durable_sessions.stores.base import PersistBatch, SessionStore, read_transcript
from durable_sessions.workflows.messages import GenerationRecord, TranscriptTailRequest

T = TypeVar("T")

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


class PersistenceActivities:
    """Activities bound to one store (an asyncpg pool, a SQLite file, ...)."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    @activity.defn(name="persist_batch")
    async def persist_batch(self, batch: PersistBatch) -> None:
        """Upsert a flush: header, new turns, checkpoints, in one transaction."""
        await classify_failures(lambda: self.store.persist(batch))

    @activity.defn(name="load_checkpoint")
    async def load_checkpoint(self, checkpoint_id: str) -> Checkpoint | None:
        return await classify_failures(lambda: self.store.get_checkpoint(checkpoint_id))

    @activity.defn(name="record_generation")
    async def record_generation(self, record: GenerationRecord) -> None:
        await classify_failures(
            lambda: self.store.add_generation(
                record.session_id, record.generation, record.parent_generation, record.fork_seq
            )
        )

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

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.persist_batch,
            self.load_checkpoint,
            self.record_generation,
            self.load_transcript_tail,
        ]

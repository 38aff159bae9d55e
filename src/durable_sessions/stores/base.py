"""The ``SessionStore`` protocol: the system of record for headers, turns and checkpoints.

Layout every implementation follows (decision 4 of the architecture):

* ``sessions``: one header row per session (``SessionState``), upserted on every flush.
* ``turns``: append-only, keyed ``(session_id, generation, seq)``. ``seq`` is the position in the
  transcript. ``generation`` starts at 0 and is bumped by every in-place restore, so turns that
  a restore rewinds stay in the log under their old generation instead of being overwritten.
* ``generations``: for generation ``g > 0`` of a session, the generation it was forked from and
  the fork point (``fork_seq`` = the checkpoint's ``turn_count``).
* ``checkpoints``: pointers ``(session_id, generation, turn_count)`` plus a small header.

A transcript is resolved by walking the lineage: the own turns of ``(session, generation)``
from its fork point up to its ``turn_count``, preceded by the transcript of its parent
(the same session's older generation, or for generation 0 of a branch the parent session at
``parent_generation``) up to the fork point. Branches and restores are copy-on-write alike.

Every write is an idempotent upsert (decision 7): activities run at least once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, Field

from durable_sessions.models import (
    Checkpoint,
    SessionState,
    SessionStats,
    SessionStatus,
    SessionTurn,
)

__all__ = [
    "PersistBatch",
    "Segment",
    "SessionStore",
    "read_transcript",
    "resolve_segments",
]


class PersistBatch(BaseModel):
    """One flush: the header as of the last turn, the new turns and checkpoints to write.

    Written in one transaction so a header never points past turns the log does not hold.

    The same transaction deletes this generation's rows at ``seq >= state.turn_count`` that
    hold one of the batch's turns (same ``turn_id``). Such a stray copy is left when a flush ran
    inside a workflow task that then timed out: its writes stay, its commands are discarded,
    and the retried task may give the same turns other seqs. Rows of other turns past the head
    are left alone, so a late retry of an earlier batch never removes a later batch's turns.
    Likewise a checkpoint of this generation past ``turn_count`` whose turns are no longer all
    in the log (that timed-out task wrote it too) is deleted: it could not be restored.

    ``fence`` orders the writes of one session (see ``SessionStore.persist``). A fenced batch
    also deletes every other checkpoint of its generation past ``turn_count``: within a
    generation the head only grows and batches are written in fence order, so such a
    checkpoint was written by a flush of a workflow task that then timed out (it was never
    acknowledged, and its turns may never be), and restoring it would fork past the head.
    """

    state: SessionState
    turns: list[SessionTurn] = Field(default_factory=list)
    """New turns of ``state.generation``, each with ``seq`` set."""
    checkpoints: list[Checkpoint] = Field(default_factory=list)
    fence: int | None = None
    """When the workflow task that wrote this batch started (``workflow.now()``, microseconds
    since the epoch). None from workflows of earlier versions and from direct store use."""
    fence_tiebreak: int | None = None
    """Orders writes of the same ``fence`` (None reads as 0): the persist activity sets it to
    its worker's clock (microseconds since the epoch) as it starts. A worker can run one workflow
    task twice (a first run the server then gave up on, and a second), and the two may number
    a task's turns differently; both write with the task's start time as their fence. Without
    this, a slow write of the first run that lands after the second's would be accepted, and
    its turns would stay at seqs the session gave to other turns. A retry of the same batch
    starts later, so it is accepted."""


@dataclass(frozen=True)
class Segment:
    """A run of one generation's own turns that belongs to a transcript: ``lo <= seq < hi``."""

    session_id: str
    generation: int
    lo: int
    hi: int


@runtime_checkable
class SessionStore(Protocol):
    """Where sessions are persisted. Implementations: PostgreSQL, SQLite, in-memory."""

    async def setup(self) -> None:
        """Create or migrate the schema. Idempotent; safe to call from every process."""

    async def close(self) -> None: ...

    async def persist(self, batch: PersistBatch) -> bool:
        """Upsert header, turns ``(session_id, generation, seq)`` and checkpoints, atomically.

        Fenced: the store keeps the highest ``fence`` it accepted for the session, and refuses a
        batch whose ``fence`` is lower, writing nothing of it; between equal fences, the higher
        ``fence_tiebreak`` (None reads as 0) wins the same way. Returns False when it refused.

        Only a write that began in a workflow task older than one that already wrote can be
        refused. The workflow writes one batch at a time and waits for each, so such a write
        is the late landing of a local activity whose workflow task timed out (its commands
        were discarded and the retried task wrote the same turns again, maybe under other
        seqs, or moved the head) or of a timed-out attempt of an activity that was retried.
        Accepted, it would move the header back or put back rows a head move cleaned up.
        A batch or call without a fence (None) is always accepted and moves no fence.
        """

    async def upsert_session(self, state: SessionState) -> None: ...

    async def get_session(self, session_id: str) -> SessionState | None: ...

    async def list_sessions(
        self,
        user_id: str | None = None,
        status: SessionStatus | None = None,
        *,
        limit: int | None = None,
    ) -> list[SessionState]:
        """Sessions of a user (all users when None), oldest first."""

    async def count_live_sessions(self, user_id: str) -> int:
        """Sessions of the user that are ACTIVE or SUSPENDED."""

    async def list_branches(self, parent_session_id: str) -> list[SessionState]:
        """Direct branches of a session, oldest first."""

    async def add_generation(
        self,
        session_id: str,
        generation: int,
        parent_generation: int,
        fork_seq: int,
        *,
        prior_head: int | None = None,
        fence: int | None = None,
    ) -> bool:
        """Record that ``generation`` of a session forks ``parent_generation`` at ``fork_seq``.
        Idempotent. Fenced like ``persist`` (``fence`` from the same clock); False if refused.

        ``prior_head`` is the head (``turn_count``) of the generation being left,
        ``generation - 1``, when the workflow moves its head. Every turn under it was flushed
        first, so that generation's rows at ``seq >= prior_head`` and its checkpoints past it,
        and any row or checkpoint of ``generation`` itself, were written by flushes of workflow
        tasks that then timed out (see ``PersistBatch``): the same transaction deletes them.
        """

    async def get_generation_parent(
        self, session_id: str, generation: int
    ) -> tuple[int, int] | None:
        """``(parent_generation, fork_seq)`` of a generation > 0, or None."""

    async def get_own_turns(
        self, session_id: str, generation: int, lo: int, hi: int
    ) -> list[SessionTurn]:
        """Own turns of one generation with ``lo <= seq < hi``, in seq order."""

    async def get_checkpoint(self, checkpoint_id: str) -> Checkpoint | None: ...

    async def list_checkpoints(self, session_id: str) -> list[Checkpoint]:
        """Checkpoints of a session, oldest first."""

    async def delete_session(self, session_id: str) -> bool:
        """Remove the header, every turn, generation and checkpoint of the session.
        Returns False when there was nothing to delete."""

    async def get_stats(self, user_id: str | None = None) -> SessionStats:
        """Aggregates computed by the store itself (SQL, not Python loops, where it can)."""


async def resolve_segments(
    store: SessionStore,
    session_id: str,
    generation: int,
    turn_count: int,
    *,
    max_depth: int = 10_000,
) -> list[Segment]:
    """The segments making up a transcript, oldest first (see the module docstring)."""
    segments: list[Segment] = []
    sid, gen, hi = session_id, generation, turn_count
    for _ in range(max_depth):
        lo = 0
        parent: tuple[str, int, int] | None = None
        if gen > 0:
            gp = await store.get_generation_parent(sid, gen)
            if gp is not None:
                parent = (sid, gp[0], gp[1])
        else:
            header = await store.get_session(sid)
            if header is not None and header.parent_session_id is not None:
                parent = (
                    header.parent_session_id,
                    header.parent_generation or 0,
                    header.fork_seq or 0,
                )
        if parent is not None:
            lo = min(parent[2], hi)
        segments.append(Segment(sid, gen, lo, hi))
        if parent is None or lo == 0:
            break
        # The ancestor supplies what lies below this segment: up to ``lo``, which is below its
        # fork point when a head was cut back past an earlier fork (truncate after truncate).
        sid, gen, hi = parent[0], parent[1], lo
    segments.reverse()
    return segments


async def read_transcript(
    store: SessionStore,
    session_id: str,
    *,
    generation: int | None = None,
    turn_count: int | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> list[SessionTurn]:
    """The transcript of a session as persisted, ``seq`` in ``[offset, offset + limit)``.

    ``generation`` and ``turn_count`` default to the stored header's.
    """
    if generation is None or turn_count is None:
        header = await store.get_session(session_id)
        if header is None:
            return []
        generation = header.generation if generation is None else generation
        turn_count = header.turn_count if turn_count is None else turn_count
    end = turn_count if limit is None else min(turn_count, offset + limit)
    if end <= offset:
        return []
    out: list[SessionTurn] = []
    for seg in await resolve_segments(store, session_id, generation, turn_count):
        lo, hi = max(seg.lo, offset), min(seg.hi, end)
        if lo < hi:
            out.extend(await store.get_own_turns(seg.session_id, seg.generation, lo, hi))
    return out

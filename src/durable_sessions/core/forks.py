"""Where a branch forks from its parent, the branch's first header, and the record a merge leaves.

Pure, next to ``core.merging``: the parent's workflow decides with these and only starts the
child and calls activities itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from durable_sessions.models import Checkpoint, SessionState, SessionTurn

__all__ = [
    "ForkPoint",
    "branch_header",
    "fork_at_checkpoint",
    "fork_at_seq",
    "fork_now",
    "merge_record",
    "new_merge_candidates",
    "with_merge_record",
]


@dataclass(frozen=True)
class ForkPoint:
    """A prefix of the parent's log: its first ``seq`` turns of ``generation``."""

    seq: int
    generation: int
    tokens: int
    cost: float
    recent: list[SessionTurn] = field(default_factory=list)
    """The parent's recent turns that belong to the prefix (the child's first window)."""


def fork_now(state: SessionState, recent: list[SessionTurn]) -> ForkPoint:
    """Fork after every turn of the transcript."""
    return ForkPoint(
        state.turn_count, state.generation, state.total_tokens, state.total_cost, list(recent)
    )


def fork_at_checkpoint(cp: Checkpoint, recent: list[SessionTurn]) -> ForkPoint:
    """Fork at a checkpoint (of any generation of this session)."""
    return ForkPoint(
        cp.turn_count,
        cp.generation,
        cp.total_tokens,
        cp.total_cost,
        [t for t in recent if (t.seq or 0) < cp.turn_count],
    )


def fork_at_seq(
    state: SessionState,
    recent: list[SessionTurn],
    at_seq: int,
    dropped_tokens: int,
    dropped_cost: float,
) -> ForkPoint:
    """Fork after the first ``at_seq`` turns of the current transcript; ``dropped_*`` are the
    totals of the turns from ``at_seq`` on (read from the store)."""
    if not 0 <= at_seq <= state.turn_count:
        raise ValueError(f"at_seq must be between 0 and {state.turn_count}")
    return ForkPoint(
        at_seq,
        state.generation,
        max(0, state.total_tokens - dropped_tokens),
        max(0.0, state.total_cost - dropped_cost),
        [t for t in recent if (t.seq or 0) < at_seq],
    )


def branch_header(
    parent: SessionState, fork: ForkPoint, child_id: str, name: str, now: datetime
) -> SessionState:
    """The first header of a branch: the parent's user and metadata, the prefix's counters."""
    return SessionState(
        session_id=child_id,
        user_id=parent.user_id,
        metadata=dict(parent.metadata),
        created_at=now,
        updated_at=now,
        turn_count=fork.seq,
        total_tokens=fork.tokens,
        total_cost=fork.cost,
        parent_session_id=parent.session_id,
        branch_name=name,
        fork_seq=fork.seq,
        parent_generation=fork.generation,
    )


def new_merge_candidates(
    candidates: list[SessionTurn], existing: set[str], dedup: dict[str, int]
) -> list[SessionTurn]:
    """The planned copies the target does not hold yet (merging twice adds nothing)."""
    return [t for t in candidates if t.turn_id not in existing and t.turn_id not in dedup]


def merge_record(source_session_id: str, strategy: str, added: int, at: datetime) -> dict[str, Any]:
    """What a merge leaves in the target's metadata (ids and counts, never content)."""
    return {
        "source_session_id": source_session_id,
        "strategy": strategy,
        "added": added,
        "at": at.isoformat(),
    }


def with_merge_record(metadata: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """``metadata`` with ``record`` appended to its ``merges`` list (a new dict)."""
    merges = list(metadata.get("merges", []))
    merges.append(record)
    return {**metadata, "merges": merges}

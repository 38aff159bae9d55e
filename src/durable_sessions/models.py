"""Pydantic models that cross every boundary: client, Temporal payloads, activities and stores.

They are the wire contract of the project. Adding an optional field is safe; renaming or removing
one breaks histories recorded by older workers, so the replay tests guard them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from durable_sessions.core.clock import utcnow

__all__ = [
    "Checkpoint",
    "CheckpointReason",
    "CompactionConfig",
    "Role",
    "SessionConfig",
    "SessionState",
    "SessionStats",
    "SessionStatus",
    "SessionTurn",
    "new_id",
]

Role = Literal["system", "user", "assistant", "tool"]
CheckpointReason = Literal["manual", "auto", "close", "expire", "restore"]


def new_id() -> str:
    """A random 32-hex-digit identifier (used for turn, session and checkpoint ids)."""
    return uuid.uuid4().hex


class SessionStatus(StrEnum):
    """Lifecycle status of a session. Values are lower-case strings on the wire."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in (SessionStatus.CLOSED, SessionStatus.EXPIRED)


class SessionTurn(BaseModel):
    """One turn of a conversation.

    ``turn_id`` is the idempotency key: sending the same turn twice stores it once. ``seq`` is
    assigned by the session when the turn is stored (0-based position in the transcript).
    """

    model_config = ConfigDict(extra="forbid")

    turn_id: str = Field(
        default_factory=new_id, min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$"
    )
    role: Role
    content: str = Field(min_length=1)
    timestamp: datetime = Field(default_factory=utcnow)
    tokens: int | None = Field(default=None, ge=0, le=2**31 - 1)
    cost: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    agent: str | None = Field(default=None, max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict)
    seq: int | None = Field(default=None, ge=0)

    @field_validator("content")
    @classmethod
    def _encodable(cls, value: str) -> str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("content must be valid Unicode text (no lone surrogates)") from None
        return value


class SessionState(BaseModel):
    """The header of a session: everything but the transcript."""

    session_id: str
    user_id: str
    status: SessionStatus = SessionStatus.ACTIVE
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    turn_count: int = 0
    total_tokens: int = 0
    total_cost: float = 0.0
    parent_session_id: str | None = None
    branch_name: str | None = None
    fork_seq: int | None = None
    last_checkpoint_id: str | None = None
    expires_at: datetime | None = None
    generation: int = 0
    """Bumped by every in-place restore; turns are stored per generation so rewound turns stay
    in the log (see ``stores.base``)."""
    parent_generation: int | None = None
    """For a branch: the parent's generation at the fork point."""


class Checkpoint(BaseModel):
    """A pointer into the turn log: the transcript as of the checkpoint is ``seq < turn_count``."""

    checkpoint_id: str
    session_id: str
    turn_count: int
    created_at: datetime
    reason: CheckpointReason
    generation: int = 0
    status: SessionStatus = SessionStatus.ACTIVE
    metadata: dict[str, Any] = Field(default_factory=dict)
    total_tokens: int = 0
    total_cost: float = 0.0


class CompactionConfig(BaseModel):
    """Compaction that keeps the log: old turns are summarized, never deleted.

    Once a session's transcript holds more than ``budget_tokens`` tokens, ``context()`` returns
    the system turns, summaries of the old turns and the relevant and recent turns, all within
    ``budget_tokens`` (or the call's ``max_tokens`` when smaller). Summaries cover fixed ranges
    ``[k * chunk_turns, (k + 1) * chunk_turns)`` and, ``fanout`` of those at a time, coarser
    ranges of summaries; they are computed in the context activity, stored once per range and
    shared by every branch and restore that has the same turns. ``history()`` is unchanged.
    """

    budget_tokens: int = Field(default=8_000, ge=64, le=10_000_000)
    """Context budget in tokens; compaction starts when the transcript holds more."""
    chunk_turns: int = Field(default=50, ge=2, le=100_000)
    """Turns per first-level summary."""
    fanout: int = Field(default=4, ge=2, le=64)
    """Summaries per summary one level up."""
    keep_recent_turns: int = Field(default=20, ge=0)
    """The latest turns never summarized (the context's pruner still chooses among them)."""
    summary_tokens: int = Field(default=200, ge=16, le=100_000)
    """Longest summary in tokens (a longer one from an agent is cut at a word)."""
    summarizer: str | None = Field(default=None, min_length=1, max_length=200)
    """Name of an ``Agent`` registered on the workers that writes the summaries (any LLM,
    e.g. ``examples/openai_agent.py``); ``None`` is the built-in offline extractive summarizer."""

    @model_validator(mode="after")
    def _summary_fits(self) -> CompactionConfig:
        if self.summary_tokens * 2 > self.budget_tokens:
            raise ValueError("summary_tokens must be at most half of budget_tokens")
        return self


class SessionConfig(BaseModel):
    """Per-session limits and tuning. Carried in the workflow input, so it survives
    continue-as-new and a session keeps the config it was created with."""

    session_ttl: float = Field(default=86_400, gt=0)
    """Idle time (seconds) after which the session expires; every turn resets it."""
    auto_checkpoint_interval: int | None = Field(default=10, ge=1)
    """Write a checkpoint every N turns; ``None`` disables automatic checkpoints."""
    max_turns: int | None = Field(default=None, ge=1)
    max_turn_bytes: int = Field(default=256_000, ge=1, le=1_000_000)
    """Largest turn content in UTF-8 bytes; bounded well below Temporal's 2 MB payload limit."""
    max_sessions_per_user: int | None = Field(default=None, ge=1)
    flush_interval: float = Field(default=2.0, gt=0)
    """How long (seconds) accepted turns may wait before a batched flush to the store."""
    flush_batch_size: int = Field(default=100, ge=1, le=1000)
    """Flush at once when this many turns are waiting."""
    recent_window: int = Field(default=20, ge=1, le=500)
    """How many recent turns the workflow keeps for the ``recent_turns`` query."""
    dedup_window: int = Field(default=2000, ge=10, le=10_000)
    """How many recent ``turn_id`` values the workflow remembers for idempotency."""
    max_updates_per_run: int = Field(default=1000, ge=10, le=1900)
    """Continue-as-new after this many updates and signals in one run (Temporal caps a run at
    2,000 updates), or earlier when the server suggests it."""
    max_events_per_run: int = Field(default=200, ge=50, le=3_000)
    """Continue-as-new once the run's history holds this many events (about five per turn). A
    call that finds no worker holding the session in cache (after a deploy, or an eviction)
    replays the whole current run, so this bounds what such a call costs."""
    idle_continue_after: float | None = Field(default=10.0, gt=0)
    """Seconds without a message after which a run that has grown past a few dozen history
    events continues as new into a minimal run, so the next call into the session, if it finds
    no worker holding it in cache, replays a handful of events instead of the whole run.
    ``None`` keeps runs until ``max_updates_per_run``."""
    compaction: CompactionConfig | None = None
    """Summarize old turns once the transcript passes a token budget (off when ``None``)."""
    cookie_name: str = "durable_session_id"
    header_name: str = "X-Session-Id"


class SessionStats(BaseModel):
    """Aggregates over a user's (or every) session, computed in the store."""

    active: int = 0
    suspended: int = 0
    closed: int = 0
    expired: int = 0
    avg_turns: float = 0.0
    checkpoints_per_session: float = 0.0
    total_tokens: int = 0
    total_cost: float = 0.0

"""Inputs and outputs of the ``Session`` workflow and its activities: the Temporal wire contract.

Names of fields here are recorded in workflow histories; add optional fields, never rename.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from durable_sessions.models import Checkpoint, SessionConfig, SessionState, SessionTurn

WORKFLOW_TYPE = "Session"
DEFAULT_TASK_QUEUE = "durable-sessions"


class SessionWorkflowInput(BaseModel):
    """Everything a run needs; also what a run hands to the next at continue-as-new."""

    state: SessionState
    config: SessionConfig = Field(default_factory=SessionConfig)
    recent: list[SessionTurn] = Field(default_factory=list)
    """The bounded window of latest turns (for the ``recent_turns`` query)."""
    dedup: dict[str, int] = Field(default_factory=dict)
    """``turn_id`` → ``seq`` of the latest ``config.dedup_window`` turns, oldest first."""
    pending: list[SessionTurn] = Field(default_factory=list)
    """Turns accepted but not yet flushed (normally empty: runs flush before continuing)."""
    pending_checkpoints: list[Checkpoint] = Field(default_factory=list)
    restore_checkpoint_id: str | None = None
    """Start by rewinding to this checkpoint: how a closed or expired session is restored."""
    continued: bool = False
    """False on the first run of a session (the header is written to the store then)."""


class RestoreRequest(BaseModel):
    checkpoint_id: str


class CheckpointRequest(BaseModel):
    reason: str = "manual"


class SessionSnapshot(BaseModel):
    """The live header plus the turns not yet in the store: what ``history()`` merges."""

    state: SessionState
    pending: list[SessionTurn] = Field(default_factory=list)


class GenerationRecord(BaseModel):
    """Activity input: generation ``generation`` forks ``parent_generation`` at ``fork_seq``."""

    session_id: str
    generation: int
    parent_generation: int
    fork_seq: int


class TranscriptTailRequest(BaseModel):
    session_id: str
    generation: int
    turn_count: int
    limit: int

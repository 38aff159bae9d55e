"""Inputs and outputs of the ``Session`` workflow and its activities: the Temporal wire contract.

Names of fields here are recorded in workflow histories; add optional fields, never rename.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from durable_sessions.core.merging import MergeSpec
from durable_sessions.core.turn_managers import AgentSlot, TurnManagerSpec, TurnManagerState
from durable_sessions.models import Checkpoint, SessionConfig, SessionState, SessionTurn

__all__ = [
    "DEFAULT_TASK_QUEUE",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_TURNS",
    "WORKFLOW_TYPE",
    "AgentFailure",
    "BranchRequest",
    "BranchResult",
    "CheckpointRequest",
    "ContextQuery",
    "EditRequest",
    "ExistingTurnsRequest",
    "GenerationRecord",
    "GroupSetup",
    "GroupState",
    "MergeRequest",
    "PopResult",
    "RangeTotals",
    "RegenerateRequest",
    "RestoreRequest",
    "SessionSnapshot",
    "SessionWorkflowInput",
    "TickPlan",
    "TickProgress",
    "TranscriptTailRequest",
    "TurnBatch",
    "TurnBatchReceipt",
    "TurnInput",
    "TurnReceipt",
    "TurnsPageRequest",
]

WORKFLOW_TYPE = "Session"
DEFAULT_TASK_QUEUE = "durable-sessions"
MAX_BATCH_TURNS = 500
"""Most turns one ``add_turns`` update carries (clients split larger batches)."""
MAX_BATCH_BYTES = 200_000
"""Most turn text (UTF-8 bytes of ``content``) one ``add_turns`` update carries."""


class SessionWorkflowInput(BaseModel):
    """Everything a run needs; also what a run hands to the next at continue-as-new."""

    state: SessionState
    config: SessionConfig = Field(default_factory=SessionConfig)
    recent: list[SessionTurn] = Field(default_factory=list)
    """The bounded window of latest turns (for the ``recent_turns`` query)."""
    dedup: dict[str, int] = Field(default_factory=dict)
    """``turn_id`` → ``seq`` of the latest ``config.dedup_window`` turns, oldest first."""
    pending: list[SessionTurn] = Field(default_factory=list)
    """Turns accepted but not yet flushed, handed over at continue-as-new."""
    pending_checkpoints: list[Checkpoint] = Field(default_factory=list)
    pending_since: datetime | None = None
    """Since when the carried-over ``pending`` turns have waited for a flush (runs of features 6
    carry them at a size continue-as-new): the next run flushes them on the same schedule."""
    restore_checkpoint_id: str | None = None
    """Start by rewinding to this checkpoint: how a closed or expired session is restored."""
    continued: bool = False
    """False on the first run of a session (the header is written to the store then)."""
    continued_full: bool = False
    """A continue-as-new of a full run started this one (``max_updates_per_run``,
    ``max_events_per_run`` or Temporal's suggestion), not an idle one: runs of features 14 then
    continue as new once idle from fewer events (``core.flushing.idle_min_events``)."""
    header_stored: bool = False
    """The client stored the header before starting the first run (``SessionManager.create``),
    so the run does not flush it at start; the first flush rewrites it along with the turns."""
    group: GroupState | None = None
    """Present on group sessions: roster, turn manager and agent-turn progress."""
    features: int = 0
    """Which workflow behaviours this run was started with (``_patches.RUN_FEATURES``): 0 for
    inputs written before the field existed, whose runs decide by ``workflow.patched``."""
    fence_floor: int = 0
    """The fence of the previous run's last store write (``_calls.WriteFences``): this run's
    writes are fenced no lower, whatever the clock says."""


class TurnInput(BaseModel):
    """What ``add_turn`` accepts: a ``SessionTurn`` whose id and timestamp may be missing.

    Any Temporal client (the ``temporal`` CLI, another SDK) can send
    ``{"role": "user", "content": "hi"}``; the workflow fills ``turn_id`` and ``timestamp``
    deterministically. Role and content are checked by the workflow's validator, so a bad value
    gets a typed error naming the field (and never echoes the content back).
    """

    model_config = ConfigDict(extra="ignore")

    turn_id: str | None = Field(default=None, min_length=1, max_length=128)
    role: str
    content: str
    timestamp: datetime | None = None
    tokens: int | None = Field(default=None, ge=0)
    cost: float = Field(default=0.0, ge=0.0)
    agent: str | None = Field(default=None, max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict)


class TurnReceipt(BaseModel):
    """What the ``add_turn`` update answers: where the turn was stored."""

    turn_id: str
    seq: int
    tokens: int
    timestamp: datetime


class TurnBatch(BaseModel):
    """What ``add_turns`` accepts: turns applied together, in order, all or none."""

    turns: list[TurnInput] = Field(min_length=1)


class TurnBatchReceipt(BaseModel):
    """Where each turn of a batch was stored, in the batch's order."""

    receipts: list[TurnReceipt]


class PopResult(BaseModel):
    """What ``pop_turn`` answers: the turn taken off the head (None when empty) and the header."""

    turn: SessionTurn | None = None
    state: SessionState


class EditRequest(BaseModel):
    """Rewind the head to ``seq`` and add an edited copy of turn ``seq`` there."""

    seq: int = Field(ge=0)
    content: str
    turn_id: str | None = Field(default=None, min_length=1, max_length=128)


class RegenerateRequest(BaseModel):
    """Drop the head's last ``role`` turn (if it ends with one) and ask ``agent`` again."""

    agent: str = Field(min_length=1, max_length=200)
    role: str = "assistant"
    max_turns: int | None = Field(default=40, ge=1)
    timeout: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=20)


class RestoreRequest(BaseModel):
    checkpoint_id: str


class CheckpointRequest(BaseModel):
    reason: str = "manual"


class RecentWindow(BaseModel):
    """What the ``recent_window`` query answers: the head's size and its latest turns, taken
    together (one query instead of ``state`` and ``recent_turns``)."""

    turn_count: int
    turns: list[SessionTurn] = Field(default_factory=list)


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
    prior_head: int | None = None
    """Head of the generation being left (``generation - 1``); the store drops strays past it
    (``SessionStore.add_generation``). None from workflows of earlier versions."""
    fence: int | None = None
    """When the workflow task that asked started (``PersistBatch.fence``). None from workflows of
    earlier versions."""


class TranscriptTailRequest(BaseModel):
    session_id: str
    generation: int
    turn_count: int
    limit: int


class BranchRequest(BaseModel):
    """Fork a child session from now, or from one of this session's checkpoints."""

    name: str = Field(min_length=1, max_length=200)
    from_checkpoint_id: str | None = None
    at_seq: int | None = Field(default=None, ge=0)
    """Fork after the first ``at_seq`` turns of the transcript (any turn, not only a
    checkpoint); at most one of ``from_checkpoint_id`` and ``at_seq``."""


class BranchResult(BaseModel):
    session_id: str


class MergeRequest(BaseModel):
    """Merge the source's turns with ``lo <= seq < hi`` (of its transcript) into this session."""

    source_session_id: str
    source_generation: int
    lo: int
    hi: int
    spec: MergeSpec


class TurnsPageRequest(BaseModel):
    """A page of a transcript (turns ``offset <= seq < turn_count``), at most ``max_bytes``."""

    session_id: str
    generation: int
    turn_count: int
    offset: int
    max_bytes: int = 128_000


class ExistingTurnsRequest(BaseModel):
    """Which of ``turn_ids`` a transcript already holds (from ``offset`` on)."""

    session_id: str
    generation: int
    turn_count: int
    turn_ids: list[str]
    offset: int = 0


class RangeTotals(BaseModel):
    """Tokens and cost of a run of turns."""

    tokens: int = 0
    cost: float = 0.0


class ContextQuery(BaseModel):
    """What ``context`` asks: a query and budgets; the pruner by name."""

    query: str = ""
    max_turns: int | None = Field(default=20, ge=0)
    max_tokens: int | None = Field(default=None, ge=0)
    pruner: str = "relevance"


class AgentFailure(BaseModel):
    """An agent turn that failed after its retries; the group went on without it."""

    agent: str
    tick: int
    error_type: str
    attempts: int
    at: datetime


class GroupState(BaseModel):
    """A group session's roster and progress; survives continue-as-new."""

    roster: list[AgentSlot] = Field(default_factory=list)
    manager: TurnManagerSpec = Field(default_factory=lambda: TurnManagerSpec(kind="round_robin"))
    manager_state: TurnManagerState = Field(default_factory=TurnManagerState)
    ticks_target: int = 0
    ticks_done: int = 0
    plans: dict[str, int] = Field(default_factory=dict)
    """``plan_id`` → the tick target it set (so a retried ``schedule_ticks`` adds nothing)."""
    failures: list[AgentFailure] = Field(default_factory=list)
    context_max_turns: int = Field(default=40, ge=1)
    max_attempts: int = Field(default=3, ge=1, le=20)
    agent_timeout: float = Field(default=60.0, gt=0)


class GroupSetup(BaseModel):
    manager: TurnManagerSpec = Field(default_factory=lambda: TurnManagerSpec(kind="round_robin"))
    context_max_turns: int = Field(default=40, ge=1)
    max_attempts: int = Field(default=3, ge=1, le=20)
    agent_timeout: float = Field(default=60.0, gt=0)


class TickPlan(BaseModel):
    """Schedule ``count`` agent turns; idempotent by ``plan_id``."""

    plan_id: str
    count: int = Field(ge=1, le=10_000)


class TickProgress(BaseModel):
    ticks_done: int
    ticks_target: int
    status: str
    last_turns: list[SessionTurn] = Field(default_factory=list)
    """The agent turns of the ticks asked about (as far as done), oldest first."""


# ``group: GroupState | None`` names a class defined after ``SessionWorkflowInput``, so pydantic
# left the model incomplete at class creation. Complete it now: an incomplete model is rebuilt
# by every new ``TypeAdapter``, and the SDK's payload converter is created anew with every
# workflow instance, so each cold replay and each new run paid ~2.5 ms to decode its input.
SessionWorkflowInput.model_rebuild()

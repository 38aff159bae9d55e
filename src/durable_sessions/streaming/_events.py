"""The events of a session's live stream (``SessionManager.stream``, SSE ``/events``).

Chunk events (``delta``, ``restart``, ``done``) come from the side channel while an agent's
activity runs; ``status``, ``turn``, ``rewind``, ``branch`` and ``error`` come from the session
itself (its workflow and store). Each event is a kind, a JSON object and, for ``turn`` and
``rewind``, the SSE id a client resumes from.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = ["ChunkEvent", "EventKind", "SessionEvent"]

EventKind = Literal[
    "status", "turn", "rewind", "branch", "error", "delta", "restart", "done", "ping"
]


class ChunkEvent(BaseModel):
    """What an agent's activity publishes while it writes a turn.

    ``turn_id`` names the streamed turn: the id the workflow gave the activity (``regenerate``
    does), else the activity's own stable key (workflow run + activity id), the same across
    retries. ``attempt`` is the activity attempt; a ``restart`` says attempt ``n`` starts over,
    so everything received for the turn so far is void.
    """

    kind: Literal["delta", "restart", "done"]
    session_id: str
    turn_id: str
    agent: str
    attempt: int = Field(ge=1)
    index: int = Field(default=0, ge=0)
    """Index of the first chunk in ``text`` (``delta``); chunks sent so far (``done``)."""
    chunks: int = Field(default=0, ge=0)
    """Chunks batched into ``text``."""
    text: str = ""
    at: float = 0.0
    """Unix time at which the agent yielded the batch's last chunk (for latency figures)."""

    def data(self) -> dict[str, Any]:
        return self.model_dump(exclude={"kind"})


class SessionEvent(BaseModel):
    """One event of ``SessionManager.stream`` (and one SSE event of ``/events``)."""

    kind: EventKind
    data: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None
    """SSE ``id``: a turn's seq (``turn``), the last seq kept (``rewind``, empty for none)."""

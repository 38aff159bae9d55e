"""Agents that take turns in group sessions.

An agent is anything with a ``name`` and ``async respond(context) -> str`` (or an
``AgentReply``). A ``StreamingAgent`` also has ``stream(context)``, an async iterator of text
chunks: the worker then calls ``stream`` instead of ``respond``, sends each chunk to the
session's subscribers as it comes, and stores the joined text as the turn.

An agent runs inside an activity on a worker that registered it by name
(``create_worker(..., agents=[...])``), so it may do I/O: call a model, a tool, a human.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, Field

from durable_sessions.models import SessionTurn

__all__ = [
    "Agent",
    "AgentContext",
    "AgentReply",
    "StreamingAgent",
]


class AgentContext(BaseModel):
    """What an agent sees when it is its turn."""

    session_id: str
    agent: str
    role: str
    turns: list[SessionTurn] = Field(default_factory=list)
    """What this agent may see, pruned to its budget, in order (others' private turns left out)."""


class AgentReply(BaseModel):
    """A richer answer than a plain string."""

    content: str = Field(min_length=1)
    private: bool = False
    """Visible only to this agent in later contexts (and to humans reading the transcript)."""
    metadata: dict[str, object] = Field(default_factory=dict)


@runtime_checkable
class Agent(Protocol):
    """The protocol agents implement."""

    name: str

    async def respond(self, context: AgentContext) -> str | AgentReply: ...


@runtime_checkable
class StreamingAgent(Protocol):
    """An agent that writes its turn chunk by chunk (``respond`` stays for non-streaming use)."""

    name: str

    async def respond(self, context: AgentContext) -> str | AgentReply: ...

    def stream(self, context: AgentContext) -> AsyncIterator[str]:
        """Text chunks, in order; their concatenation is the turn."""
        ...

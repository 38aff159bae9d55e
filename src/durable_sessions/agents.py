"""Agents that take turns in group sessions.

An agent is anything with a ``name`` and ``async respond(context) -> str`` (or an
``AgentReply``). It runs inside an activity on a worker that registered it by name
(``create_worker(..., agents=[...])``), so it may do I/O: call a model, a tool, a human.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel, Field

from durable_sessions.models import SessionTurn


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

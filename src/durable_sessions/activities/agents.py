"""The agent-turn activity: builds an agent's context and asks the agent to speak.

Its result is the agent's text; the workflow turns it into a stored turn exactly once, keyed by a
deterministic turn id, so an activity that ran twice (a retry after a crash) still adds one turn.
Failures of the agent itself are retried a bounded number of times by the workflow's policy;
an unknown agent is a non-retryable error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from durable_sessions.activities.context import TranscriptCache
from durable_sessions.agents import Agent, AgentContext, AgentReply
from durable_sessions.core.pruning import SlidingWindowPruner
from durable_sessions.models import SessionTurn
from durable_sessions.stores.base import SessionStore


class AgentTurnRequest(BaseModel):
    session_id: str
    generation: int
    turn_count: int
    agent: str
    role: str
    max_turns: int | None = Field(default=40, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)


def visible_to(agent: str, turn: SessionTurn) -> bool:
    """Private turns are seen only by their author."""
    return not turn.metadata.get("private") or turn.agent == agent


class AgentActivities:
    """Runs registered agents by name."""

    def __init__(self, store: SessionStore, agents: Sequence[Agent]) -> None:
        self.store = store
        self.agents = {a.name: a for a in agents}
        self.transcripts = TranscriptCache()

    @activity.defn(name="run_agent_turn")
    async def run_agent_turn(self, request: AgentTurnRequest) -> AgentReply:
        agent = self.agents.get(request.agent)
        if agent is None:
            raise ApplicationError(
                "no agent registered under that name on this worker",
                type="UnknownAgent",
                non_retryable=True,
            )
        history = await self.transcripts.get(
            self.store, request.session_id, request.generation, request.turn_count
        )
        visible = [t for t in history if visible_to(request.agent, t)]
        turns = SlidingWindowPruner().prune_sync(
            visible, "", max_turns=request.max_turns, max_tokens=request.max_tokens
        )
        reply = await agent.respond(
            AgentContext(
                session_id=request.session_id,
                agent=request.agent,
                role=request.role,
                turns=turns,
            )
        )
        if isinstance(reply, str):
            reply = AgentReply(content=reply)
        return reply

    def all(self) -> list[Callable[..., Any]]:
        return [self.run_agent_turn]

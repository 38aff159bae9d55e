"""The agent-turn activity: builds an agent's context and asks the agent to speak.

An agent with ``stream`` (``StreamingAgent``) is streamed: each chunk goes to the session's side
channel (``durable_sessions.streaming``) as the agent yields it, never into workflow history,
and the joined text is the activity's result like any reply. A retried attempt announces
itself with a ``restart`` event and streams the turn again from its first chunk.

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
from durable_sessions.agents import Agent, AgentContext, AgentReply, StreamingAgent
from durable_sessions.core.pruning import SlidingWindowPruner
from durable_sessions.models import SessionTurn
from durable_sessions.stores.base import SessionStore
from durable_sessions.streaming import StreamBroker, TurnPublisher, broker_for_store

__all__ = ["AgentActivities", "AgentTurnRequest", "visible_to"]


class AgentTurnRequest(BaseModel):
    session_id: str
    generation: int
    turn_count: int
    agent: str
    role: str
    max_turns: int | None = Field(default=40, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    turn_id: str | None = None
    """The id the workflow will store the turn under, when it fixes one in advance: streamed
    chunks carry it. Without it they carry the activity's own key (stable across retries)."""


def visible_to(agent: str, turn: SessionTurn) -> bool:
    """Private turns are seen only by their author."""
    return not turn.metadata.get("private") or turn.agent == agent


class AgentActivities:
    """Runs registered agents by name."""

    def __init__(
        self,
        store: SessionStore,
        agents: Sequence[Agent],
        *,
        broker: StreamBroker | None = None,
    ) -> None:
        self.store = store
        self.agents = {a.name: a for a in agents}
        self.transcripts = TranscriptCache()
        self._broker = broker

    @property
    def broker(self) -> StreamBroker:
        """Where streamed chunks go (by default the channel that matches the store)."""
        if self._broker is None:
            self._broker = broker_for_store(self.store)
        return self._broker

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
        context = AgentContext(
            session_id=request.session_id, agent=request.agent, role=request.role, turns=turns
        )
        if isinstance(agent, StreamingAgent):
            return await self._stream(agent, context, request)
        reply = await agent.respond(context)
        if isinstance(reply, str):
            reply = AgentReply(content=reply)
        return reply

    async def _stream(
        self, agent: StreamingAgent, context: AgentContext, request: AgentTurnRequest
    ) -> AgentReply:
        info = activity.info()
        turn_id = request.turn_id or f"{info.workflow_run_id}.{info.activity_id}"
        parts: list[str] = []
        async with TurnPublisher(
            self.broker,
            session_id=request.session_id,
            turn_id=turn_id,
            agent=request.agent,
            attempt=info.attempt,
        ) as publisher:
            async for chunk in agent.stream(context):
                parts.append(chunk)
                publisher.add(chunk)
                activity.heartbeat(publisher.chunks)
        content = "".join(parts)
        if not content:
            raise ApplicationError(
                "the agent streamed no text", type="EmptyAgentReply", non_retryable=True
            )
        return AgentReply(content=content)

    def all(self) -> list[Callable[..., Any]]:
        return [self.run_agent_turn]

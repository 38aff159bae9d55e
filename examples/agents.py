"""Example agents that run offline and deterministically (for demos and tests).

Run a worker with them::

    DURABLE_SESSIONS_AGENTS=examples.agents:team durable-sessions worker
"""

from __future__ import annotations

from durable_sessions.agents import AgentContext, AgentReply


class EchoingAgent:
    """Says who it is, how many turns it can see, and what it answers (the latest turn)."""

    def __init__(self, name: str, verb: str) -> None:
        self.name = name
        self.verb = verb

    async def respond(self, context: AgentContext) -> str:
        last = context.turns[-1] if context.turns else None
        about = f"{last.agent or last.role} #{last.seq}" if last else "nothing yet"
        return f"{self.name} {self.verb} ({len(context.turns)} turns seen; replying to {about})"


class NoteTaker:
    """Keeps private notes: visible to itself in later contexts, to no other agent."""

    name = "note-taker"

    async def respond(self, context: AgentContext) -> AgentReply:
        return AgentReply(content=f"note: {len(context.turns)} turns so far", private=True)


class FailingAgent:
    """Always fails: shows that the group skips it, records the failure and goes on."""

    name = "flaky"

    async def respond(self, context: AgentContext) -> str:
        raise RuntimeError("this agent always fails")


def team() -> list[object]:
    return [
        EchoingAgent("researcher", "researches"),
        EchoingAgent("writer", "drafts"),
        EchoingAgent("critic", "reviews"),
        NoteTaker(),
        FailingAgent(),
    ]

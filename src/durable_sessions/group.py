"""``GroupSession``: several agents (and humans) taking turns in one durable session.

The roster, the turn manager's state and the progress of agent turns live in the session's
workflow; this class only sends updates. ``run`` schedules all its agent turns in one idempotent
update and then waits, so the run goes on even if this client goes away, and no agent turn is
ever produced twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from durable_sessions.client import SessionManager
from durable_sessions.core.turn_managers import (
    AgentSlot,
    RoundRobinTurnManager,
    TurnManager,
    agents_per_round,
)
from durable_sessions.errors import SessionClosedError, WorkerUnavailableError
from durable_sessions.models import SessionState, SessionTurn, new_id
from durable_sessions.workflows.messages import GroupSetup, GroupState, TickPlan, TickProgress

__all__ = ["GroupSession"]

T = TypeVar("T")


class GroupSession:
    """A session with a roster of agents and a turn manager."""

    def __init__(
        self, manager: SessionManager, session_id: str, *, patience: float = 120.0
    ) -> None:
        self.manager = manager
        self.session_id = session_id
        self.patience = patience
        """Seconds ``tick``/``run`` keep retrying while no worker answers (e.g. a restart)."""

    @classmethod
    async def create(
        cls,
        manager: SessionManager,
        user_id: str,
        turn_manager: TurnManager | None = None,
        metadata: dict[str, Any] | None = None,
        *,
        session_id: str | None = None,
        ttl: float | None = None,
        context_max_turns: int = 40,
        max_attempts: int = 3,
        agent_timeout: float = 60.0,
    ) -> GroupSession:
        """Create the session and make it a group session."""
        state = await manager.create(user_id, metadata, session_id=session_id, ttl=ttl)
        group = cls(manager, state.session_id)
        await group.configure(
            turn_manager or RoundRobinTurnManager(),
            context_max_turns=context_max_turns,
            max_attempts=max_attempts,
            agent_timeout=agent_timeout,
        )
        return group

    async def configure(
        self,
        turn_manager: TurnManager,
        *,
        context_max_turns: int = 40,
        max_attempts: int = 3,
        agent_timeout: float = 60.0,
    ) -> GroupState:
        setup = GroupSetup(
            manager=turn_manager.to_spec(),
            context_max_turns=context_max_turns,
            max_attempts=max_attempts,
            agent_timeout=agent_timeout,
        )
        return await self.manager._update(self.session_id, "configure_group", setup, GroupState)

    async def add_agent(
        self,
        name: str,
        role: str = "",
        priority: int = 0,
        topics: list[str] | None = None,
        *,
        private: bool = False,
    ) -> GroupState:
        """Put an agent (registered on the workers under ``name``) on the roster."""
        slot = AgentSlot(
            name=name, role=role or name, priority=priority, topics=topics or [], private=private
        )
        return await self.manager._update(self.session_id, "add_agent", slot, GroupState)

    async def remove_agent(self, name: str) -> GroupState:
        return await self.manager._update(self.session_id, "remove_agent", name, GroupState)

    async def state(self) -> GroupState:
        """Roster, turn-manager state, progress and recorded agent failures."""
        return await self.manager._query(self.session_id, "group", GroupState)

    async def session(self) -> SessionState:
        return await self.manager.get(self.session_id)

    async def _patiently(self, call: Callable[[], Awaitable[T]]) -> T:
        """Retry ``call`` while no worker answers (a worker restarting), up to ``patience``."""
        deadline = asyncio.get_running_loop().time() + self.patience
        while True:
            try:
                return await call()
            except WorkerUnavailableError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def _schedule(self, count: int) -> int:
        plan = TickPlan(plan_id=new_id(), count=count)  # the same id on every retry
        return await self._patiently(
            lambda: self.manager._update(self.session_id, "schedule_ticks", plan, int)
        )

    async def _wait(self, target: int) -> TickProgress:
        while True:
            progress = await self._patiently(
                lambda: self.manager._update(self.session_id, "wait_ticks", target, TickProgress)
            )
            if progress.ticks_done >= target:
                return progress
            if progress.status in ("closed", "expired"):
                raise SessionClosedError(
                    f"session is {progress.status}", session_id=self.session_id, field="status"
                )

    async def tick(self) -> SessionTurn:
        """The next agent speaks (in an activity on a worker); returns its stored turn."""
        progress = await self._wait(await self._schedule(1))
        if not progress.last_turns:
            raise SessionClosedError("no agent turn was produced", session_id=self.session_id)
        return progress.last_turns[-1]

    async def run(
        self, rounds: int = 1, until: Callable[[SessionTurn], bool] | None = None
    ) -> list[SessionTurn]:
        """Run ``rounds`` rounds (every agent on the roster speaks once per round, in the turn
        manager's order, continuing where the last tick left off); with ``until``, stop after
        the first agent turn for which it returns True. Returns the agent turns produced."""
        roster = (await self._patiently(self.state)).roster
        total = rounds * agents_per_round(roster)
        if total == 0:
            return []
        if until is not None:
            produced: list[SessionTurn] = []
            for _ in range(total):
                turn = await self.tick()
                produced.append(turn)
                if until(turn):
                    break
            return produced
        before = (await self._patiently(self.session)).turn_count
        await self._wait(await self._schedule(total))
        history = await self._patiently(
            lambda: self.manager.history(self.session_id, offset=before)
        )
        return [t for t in history if t.agent is not None and t.role in ("assistant", "system")]

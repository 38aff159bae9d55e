"""Group-session handlers of the ``Session`` workflow: roster, turn manager, agent turns.

Agent turns run from a loop of their own inside the workflow, one at a time, until the
scheduled number of ticks is reached; scheduling is an idempotent update, so a client that
crashes or retries never makes an agent speak twice, and a worker crash replays the recorded
activity result instead of asking the agent again. The turn manager is pure and its state lives
in ``GroupState``, which travels through continue-as-new.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from durable_sessions.activities.agents import AgentTurnRequest
    from durable_sessions.core.lifecycle import check_turn
    from durable_sessions.core.turn_managers import AgentSlot, manager_from_spec
    from durable_sessions.errors import InvalidTransitionError, InvalidTurnError, SessionError
    from durable_sessions.models import SessionStatus
    from durable_sessions.workflows import _calls as calls
    from durable_sessions.workflows._base import SessionBase
    from durable_sessions.workflows.messages import (
        AgentFailure,
        GroupSetup,
        GroupState,
        TickPlan,
        TickProgress,
        TurnInput,
    )

__all__ = [
    "MAX_FAILURES_KEPT",
    "MAX_PLANS_KEPT",
    "MAX_TICK_TURNS_KEPT",
    "WAIT_SLICE",
    "GroupHandlers",
]

MAX_FAILURES_KEPT = 50
MAX_PLANS_KEPT = 200
MAX_TICK_TURNS_KEPT = 200
WAIT_SLICE = timedelta(seconds=5)
"""Longest a ``wait_ticks`` call holds before answering with progress (clients poll again)."""


def _error(exc: SessionError) -> ApplicationError:
    return ApplicationError(
        exc.message,
        {"session_id": exc.session_id, "field": exc.field},
        type=type(exc).__name__,
        non_retryable=True,
    )


class GroupHandlers(SessionBase):
    """Group-session handlers and the agent loop, on the run's shared state."""

    # ------------------------------------------------------------------ the agent loop

    def _ticks_wanted(self) -> bool:
        g = self._group
        return (
            g is not None
            and g.ticks_done < g.ticks_target
            and self._state.status is SessionStatus.ACTIVE
            and not self._draining
        )

    async def _agent_loop(self) -> None:
        while True:
            await workflow.wait_condition(self._ticks_wanted)
            self._ticking = True
            try:
                await self._tick()
            finally:
                self._ticking = False

    async def _tick(self) -> None:
        g = self._group
        assert g is not None
        manager = manager_from_spec(g.manager)
        name, next_state = manager.next_agent(g.roster, self._recent, g.manager_state)
        if name is None:  # nobody on the roster: nothing to do
            g.ticks_done = g.ticks_target
            return
        slot = next(a for a in g.roster if a.name == name)
        await self._flush()  # the agent's context is read from the store
        now = workflow.now()
        # Runs of this version fix the turn's id before the agent speaks, so its streamed
        # chunks carry it (older runs drew it when storing the turn; their replay must too).
        turn_id = workflow.uuid4().hex if self._modern else None
        turn: TurnInput
        try:
            reply = await calls.run_agent_turn(
                AgentTurnRequest(
                    session_id=self._state.session_id,
                    generation=self._state.generation,
                    turn_count=self._state.turn_count,
                    agent=name,
                    role=slot.role,
                    max_turns=g.context_max_turns,
                    turn_id=turn_id,
                ),
                timeout=g.agent_timeout,
                max_attempts=g.max_attempts,
            )
            private = reply.private or slot.private
            turn = TurnInput(
                turn_id=turn_id,
                role="assistant",
                content=reply.content,
                agent=name,
                timestamp=now,
                metadata={**reply.metadata, "group_role": slot.role}
                | ({"private": True} if private else {}),
            )
        except ActivityError as exc:
            cause = exc.cause
            error_type = (
                cause.type or "ApplicationError"
                if isinstance(cause, ApplicationError)
                else type(cause).__name__
            )
            g.failures.append(
                AgentFailure(
                    agent=name,
                    tick=g.ticks_done,
                    error_type=error_type,
                    attempts=g.max_attempts,
                    at=now,
                )
            )
            del g.failures[: max(0, len(g.failures) - MAX_FAILURES_KEPT)]
            turn = TurnInput(
                role="system",
                content=f"agent {name} failed ({error_type}); skipped",
                agent=name,
                timestamp=now,
                metadata={"agent_failure": True, "error_type": error_type},
            )
        ordered = self._ordered_lock is not None
        if not ordered:
            g.manager_state = next_state
        async with self._operation(internal=True):  # woken by the agent's answer
            # The agent spoke while other turns and operations went on; its turn takes the head
            # as it is now.
            if ordered:  # runs of features 9 change nothing before the lock (``_patches``)
                g.manager_state = next_state
            try:
                check_turn(self._state, self._config, turn.role, turn.content)
            except SessionError as exc:
                workflow.logger.warning(
                    "agent turn not stored",
                    extra={"agent": name, "error_type": type(exc).__name__},
                )
                g.ticks_target = g.ticks_done  # e.g. max_turns reached: stop the run
                return
            stored = self._apply_turn(turn)
            if ordered:
                # Stored in flow: the task that applies the agent's turn sends a command, so
                # the SDK never merges it with the next task on replay, where a message's turn
                # could take its place (``_patches.ARRIVAL_ORDER``).
                await self._flush()
        self._tick_turns[g.ticks_done] = stored
        for old in [k for k in self._tick_turns if k < g.ticks_done - MAX_TICK_TURNS_KEPT]:
            del self._tick_turns[old]
        g.ticks_done += 1

    # ------------------------------------------------------------------ updates

    def _require_group(self) -> GroupState:
        if self._group is None:
            raise _error(
                InvalidTransitionError(
                    "not a group session; call configure_group first",
                    session_id=self._state.session_id,
                    field="group",
                )
            )
        return self._group

    @workflow.update(name="configure_group")
    def configure_group(self, setup: GroupSetup) -> GroupState:
        """Make this a group session (or change its turn manager and budgets)."""
        self._count_message()
        try:
            manager_from_spec(setup.manager)
        except (ValueError, KeyError) as exc:
            raise _error(
                InvalidTurnError(str(exc), session_id=self._state.session_id, field="manager")
            ) from None
        if self._group is None:
            self._group = GroupState()
        g = self._group
        g.manager = setup.manager
        g.context_max_turns = setup.context_max_turns
        g.max_attempts = setup.max_attempts
        g.agent_timeout = setup.agent_timeout
        return g

    @workflow.update(name="add_agent")
    def add_agent(self, slot: AgentSlot) -> GroupState:
        self._count_message()
        g = self._require_group()
        if any(a.name == slot.name for a in g.roster):
            g.roster = [slot if a.name == slot.name else a for a in g.roster]
        else:
            g.roster.append(slot)
        return g

    @workflow.update(name="remove_agent")
    def remove_agent(self, name: str) -> GroupState:
        self._count_message()
        g = self._require_group()
        g.roster = [a for a in g.roster if a.name != name]
        return g

    @workflow.update(name="schedule_ticks")
    def schedule_ticks(self, plan: TickPlan) -> int:
        """Ask for ``count`` more agent turns; answers the tick number to wait for."""
        self._count_message()
        g = self._require_group()
        known = g.plans.get(plan.plan_id)
        if known is not None:
            return known
        g.ticks_target = max(g.ticks_target, g.ticks_done) + plan.count
        g.plans[plan.plan_id] = g.ticks_target
        for old in list(g.plans)[: max(0, len(g.plans) - MAX_PLANS_KEPT)]:
            del g.plans[old]
        return g.ticks_target

    @schedule_ticks.validator
    def _validate_schedule_ticks(self, plan: TickPlan) -> None:
        self._check_not_draining()
        if self._state.status.is_terminal:
            raise _error(
                InvalidTransitionError(
                    f"session is {self._state.status.value}",
                    session_id=self._state.session_id,
                    field="status",
                )
            )

    @workflow.update(name="wait_ticks")
    async def wait_ticks(self, target: int) -> TickProgress:
        """Wait (a few seconds at most) until ``target`` ticks are done; answers progress."""
        g = self._require_group()
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: g.ticks_done >= target or self._state.status.is_terminal or self._draining,
                timeout=WAIT_SLICE,
            )
        last = self._tick_turns.get(target - 1) if g.ticks_done >= target else None
        return TickProgress(
            ticks_done=g.ticks_done,
            ticks_target=g.ticks_target,
            status=self._state.status.value,
            last_turns=[last] if last is not None else [],
        )

    @workflow.query(name="group")
    def group_state(self) -> GroupState | None:
        return self._group

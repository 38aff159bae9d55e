"""Turn managers, part 1: the roster, state and spec models, and the round-based managers.

Private; everything is re-exported by :mod:`durable_sessions.core.turn_managers`, which explains
the design.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Self

from pydantic import BaseModel, ConfigDict, Field

from durable_sessions.models import SessionTurn

__all__ = [
    "AgentSlot",
    "PriorityTurnManager",
    "RoundRobinTurnManager",
    "TurnManager",
    "TurnManagerSpec",
    "TurnManagerState",
    "advance_state",
    "agents_per_round",
    "check_kind",
    "roster_names",
    "round_base",
]


class AgentSlot(BaseModel):
    """One agent in a group session's roster.

    Attributes:
        name: Unique within the roster; it is what :meth:`TurnManager.next_agent` returns and
            what ``SessionTurn.agent`` holds for the agent's turns.
        role: What the agent does in the group (free text, e.g. ``"critic"``).
        priority: Higher speaks earlier in each round of a :class:`PriorityTurnManager`.
        topics: Subjects the agent is good at, for :class:`TopicBasedTurnManager`. Write content
            words: the default scorer matches every word, including "the" and "of".
        private: The agent's turns are not shared with the other agents. Turn managers ignore
            this flag; it is enforced where agent context is built.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    role: str
    priority: int = 0
    topics: list[str] = Field(default_factory=list)
    private: bool = False


class TurnManagerState(BaseModel):
    """Everything a turn manager remembers between ticks. Stored by the workflow.

    Attributes:
        ticks: How many speakers have been chosen so far.
        last_agent: The agent chosen on the previous tick, or ``None`` before the first.
        order: The roster's agent names at the previous tick. Lets round-robin continue in the
            right place when the previous speaker has since left the roster.
        round_spoken: Agents chosen since the current round began (pruned to the roster; reset
            once everyone in the roster has spoken).
        spoken: How many times each agent has been chosen, ever.
    """

    ticks: int = Field(default=0, ge=0)
    last_agent: str | None = None
    order: list[str] = Field(default_factory=list)
    round_spoken: list[str] = Field(default_factory=list)
    spoken: dict[str, int] = Field(default_factory=dict)


class TurnManagerSpec(BaseModel):
    """The serialisable description of a turn manager, carried in the workflow input.

    Attributes:
        kind: Which manager (``"round_robin"``, ``"priority"`` or ``"topic"``).
        options: Its configuration; the keys each kind accepts are listed on its class.
    """

    model_config = ConfigDict(extra="forbid")

    kind: str
    options: dict[str, Any] = Field(default_factory=dict)


class TurnManager(Protocol):
    """Chooses the next speaker. Stateless: the state goes in and comes back out."""

    @property
    def kind(self) -> str:
        """The manager's ``TurnManagerSpec.kind``."""
        ...

    def next_agent(
        self,
        roster: list[AgentSlot],
        recent_turns: list[SessionTurn],
        state: TurnManagerState,
    ) -> tuple[str | None, TurnManagerState]:
        """Choose who speaks next.

        Args:
            roster: The agents, in roster order. Names must be unique.
            recent_turns: The latest turns of the session, oldest first.
            state: The state returned by the previous call (``TurnManagerState()`` at first).

        Returns:
            The chosen agent's name and the new state; ``(None, state)`` for an empty roster.

        Raises:
            ValueError: If two roster entries share a name.
        """
        ...

    def to_spec(self) -> TurnManagerSpec:
        """The spec from which :func:`manager_from_spec` rebuilds this manager."""
        ...


def agents_per_round(roster: list[AgentSlot]) -> int:
    """How many ticks make a round: ``len(roster)``.

    ``run(rounds=N)`` means ``N * agents_per_round(roster)`` ticks. With round-robin or priority
    managers and an unchanged roster, every agent speaks exactly once per round; a topic-based
    manager takes as many ticks but may give them to the agents that match best.

    Args:
        roster: The current roster.

    Returns:
        The number of ticks in one round (0 for an empty roster).
    """
    return len(roster)


def roster_names(roster: list[AgentSlot]) -> list[str]:
    names = [slot.name for slot in roster]
    if len(set(names)) != len(names):
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(f"duplicate agent names in roster: {duplicates}")
    return names


def round_base(state: TurnManagerState, names: list[str]) -> list[str]:
    """Who has spoken in the current round, starting a new round if everyone has."""
    present = set(names)
    spoken = [name for name in state.round_spoken if name in present]
    if present <= set(spoken):
        return []
    return spoken


def advance_state(
    state: TurnManagerState, names: list[str], chosen: str, round_base: list[str]
) -> TurnManagerState:
    spoken = dict(state.spoken)
    spoken[chosen] = spoken.get(chosen, 0) + 1
    return TurnManagerState(
        ticks=state.ticks + 1,
        last_agent=chosen,
        order=list(names),
        round_spoken=[*round_base, chosen] if chosen not in round_base else list(round_base),
        spoken=spoken,
    )


def check_kind(spec: TurnManagerSpec, kind: str, allowed: frozenset[str]) -> None:
    if spec.kind != kind:
        raise ValueError(f"spec is for kind {spec.kind!r}, not {kind!r}")
    unknown = sorted(set(spec.options) - allowed)
    if unknown:
        raise ValueError(f"unknown options for {kind!r}: {unknown}")


class _RoundTurnManager:
    """What the round-robin and priority managers share: everything but the choice itself.

    Each tick the roster is checked, an empty roster yields ``None``, :meth:`_choose` picks the
    speaker (knowing who has already spoken in the current round), and the state advances.
    Neither reads the turns, and neither takes options.
    """

    kind: ClassVar[str]

    def _choose(
        self, roster: list[AgentSlot], names: list[str], state: TurnManagerState, done: set[str]
    ) -> str:
        """The next speaker; ``done`` holds who has spoken in the current round."""
        raise NotImplementedError

    def next_agent(
        self,
        roster: list[AgentSlot],
        recent_turns: list[SessionTurn],
        state: TurnManagerState,
    ) -> tuple[str | None, TurnManagerState]:
        """Choose the next speaker by the manager's rule (see the class docstring).

        Args:
            roster: The agents, in roster order. Names must be unique.
            recent_turns: Ignored.
            state: The state returned by the previous call.

        Returns:
            The chosen agent's name and the new state; ``(None, state)`` for an empty roster.

        Raises:
            ValueError: If two roster entries share a name.
        """
        del recent_turns
        names = roster_names(roster)
        if not names:
            return None, state
        base = round_base(state, names)
        chosen = self._choose(roster, names, state, set(base))
        return chosen, advance_state(state, names, chosen, base)

    def to_spec(self) -> TurnManagerSpec:
        """Return ``TurnManagerSpec(kind=self.kind)``: the manager has no options."""
        return TurnManagerSpec(kind=self.kind)

    @classmethod
    def from_spec(cls, spec: TurnManagerSpec) -> Self:
        """Rebuild the manager from :meth:`to_spec`'s output.

        Args:
            spec: A spec of the manager's kind with no options.

        Returns:
            The manager.

        Raises:
            ValueError: For another kind or any option.
        """
        check_kind(spec, cls.kind, frozenset())
        return cls()


@dataclass(frozen=True)
class RoundRobinTurnManager(_RoundTurnManager):
    """Every agent in roster order, then again from the top.

    The next speaker is the agent after the previous speaker in the *current* roster, so an agent
    inserted right after the previous speaker speaks next, and any other newcomer when its
    position comes. If the previous speaker has left the roster, the agent that followed it in
    the previous roster (``state.order``; the first one still present, wrapping around) speaks
    next, so nobody is skipped or repeated because someone left. Before the first tick, or when
    none of the previous roster is left, it starts at the top of the roster.

    Options: none.
    """

    kind: ClassVar[str] = "round_robin"

    def _choose(
        self, roster: list[AgentSlot], names: list[str], state: TurnManagerState, done: set[str]
    ) -> str:
        """The agent after the previous speaker, in roster order."""
        return names[_round_robin_index(names, state)]


def _round_robin_index(names: list[str], state: TurnManagerState) -> int:
    last = state.last_agent
    if last is None:
        return 0
    positions = {name: index for index, name in enumerate(names)}
    if last in positions:
        return (positions[last] + 1) % len(names)
    if last in state.order:
        # The previous speaker left: whoever followed it in the previous roster (wrapping
        # around) and is still present speaks next.
        at = state.order.index(last)
        for step in range(1, len(state.order)):
            follower = state.order[(at + step) % len(state.order)]
            if follower in positions:
                return positions[follower]
    return 0


@dataclass(frozen=True)
class PriorityTurnManager(_RoundTurnManager):
    """Rounds in which every agent speaks once, highest ``priority`` first.

    The order of a round is the roster sorted by ``priority`` descending; equal priorities keep
    roster order. After the last agent of a round has spoken the next round begins again with the
    highest priority. ``state.round_spoken`` records who has spoken in the current round, so the
    roster may change mid-round: a newly added agent speaks in the current round (at once if it
    outranks everyone still waiting), a removed agent simply drops out, and changed priorities
    reorder whoever has not yet spoken.

    Options: none.
    """

    kind: ClassVar[str] = "priority"

    def _choose(
        self, roster: list[AgentSlot], names: list[str], state: TurnManagerState, done: set[str]
    ) -> str:
        """The highest-priority agent that has not spoken in the current round."""
        # sorted() is stable, so equal priorities keep roster order.
        ranked = sorted(roster, key=lambda slot: -slot.priority)
        return next(slot.name for slot in ranked if slot.name not in done)

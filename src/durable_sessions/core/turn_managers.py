"""Turn managers: who speaks next in a multi-agent group session.

Why managers are stateless and pure: a group session is a Temporal workflow, and the workflow
asks the manager for the next speaker on every tick. The answer must be the same when the
workflow replays, and it must survive continue-as-new. So a manager holds only configuration
(rebuilt from a :class:`TurnManagerSpec` in the workflow input), and everything that changes
from tick to tick lives in a :class:`TurnManagerState` that goes in and comes back out of
:meth:`TurnManager.next_agent`. The workflow stores that state and carries it across runs. No
clock, no randomness, no I/O: ties are always broken by roster order.

The roster may change between ticks (agents join or leave mid-run); every manager copes with
that from the state alone, as documented on each class. A *round* is ``len(roster)`` ticks
(:func:`agents_per_round`); with round-robin and priority managers and a fixed roster, every
agent speaks exactly once per round. An empty roster yields ``None`` and leaves the state as is.

Implementations:

* :class:`RoundRobinTurnManager` (``kind="round_robin"``): roster order, cycling.
* :class:`PriorityTurnManager` (``kind="priority"``): each round in descending priority.
* :class:`TopicBasedTurnManager` (``kind="topic"``): the agent whose topics best match the
  latest turns, falling back to round-robin when nothing matches.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Self

from pydantic import BaseModel, ConfigDict, Field

from durable_sessions.models import SessionTurn

TopicScorer = Callable[[str, list[str]], list[float]]
"""``scorer(text, documents) -> one score per document``.

For :class:`TopicBasedTurnManager`, ``text`` is the content of one recent turn and each document
is one agent's topics joined with ``", "``. A score of zero or less means "no match". A scorer
used inside a workflow must be deterministic (same inputs, same floats)."""


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


def _roster_names(roster: list[AgentSlot]) -> list[str]:
    names = [slot.name for slot in roster]
    if len(set(names)) != len(names):
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(f"duplicate agent names in roster: {duplicates}")
    return names


def _round_base(state: TurnManagerState, names: list[str]) -> list[str]:
    """Who has spoken in the current round, starting a new round if everyone has."""
    present = set(names)
    spoken = [name for name in state.round_spoken if name in present]
    if present <= set(spoken):
        return []
    return spoken


def _advance(
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


def _check_kind(spec: TurnManagerSpec, kind: str, allowed: frozenset[str]) -> None:
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
        names = _roster_names(roster)
        if not names:
            return None, state
        base = _round_base(state, names)
        chosen = self._choose(roster, names, state, set(base))
        return chosen, _advance(state, names, chosen, base)

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
        _check_kind(spec, cls.kind, frozenset())
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


_WORDS = re.compile(r"\w+")


def _words(text: str) -> list[str]:
    return _WORDS.findall(text.casefold())


def lexical_topic_scorer(text: str, documents: list[str]) -> list[float]:
    """The default :data:`TopicScorer`: how many words of ``text`` are topic words.

    Both sides are split into Unicode word tokens (``\\w+``) after case folding. A document's
    score is the number of tokens of ``text`` (repeats included) that occur among the document's
    tokens. Deterministic and dependency-free.

    Args:
        text: The text to match (one turn's content).
        documents: One string per candidate (an agent's topics).

    Returns:
        One score per document, each a whole number as a float.
    """
    counts = Counter(_words(text))
    return [float(sum(counts[term] for term in set(_words(doc)))) for doc in documents]


_SCORERS: dict[str, TopicScorer] = {"lexical": lexical_topic_scorer}


def register_topic_scorer(name: str, scorer: TopicScorer) -> None:
    """Make a custom scorer available to :class:`TopicBasedTurnManager` specs by name.

    A spec carries the scorer's name, not its code, so register it at import time in both the
    client and the worker process (the workflow rebuilds the manager from the spec).

    Args:
        name: The name to put in specs.
        scorer: The scorer; it must be deterministic.

    Raises:
        ValueError: If ``name`` is already registered to a different scorer.
    """
    existing = _SCORERS.get(name)
    if existing is not None and existing is not scorer:
        raise ValueError(f"topic scorer {name!r} is already registered")
    _SCORERS[name] = scorer


@dataclass(frozen=True)
class TopicBasedTurnManager:
    """The agent whose topics best match the latest turns.

    Each of the last ``window`` turns is scored against every agent's topics with ``scorer``;
    the newest turn counts fully and each older one ``decay`` times less. Agents without topics
    score zero. The highest total wins and ties go to the earlier agent in the roster, except
    that the previous speaker is passed over when another agent has a positive score (no agent
    speaks twice in a row unless it is the only match). When no agent scores above zero the
    manager falls back to :class:`RoundRobinTurnManager` with the same state.

    Options (all JSON values): ``window`` (int >= 1, default 3), ``decay`` (float in (0, 1],
    default 0.5), ``scorer`` (a name given to :func:`register_topic_scorer`, default
    ``"lexical"``, i.e. :func:`lexical_topic_scorer`).

    Args:
        window: How many of the latest turns to score.
        decay: The weight of each turn relative to the next newer one.
        scorer: A registered scorer's name, or a scorer. A scorer passed as a function works
            directly, but :meth:`to_spec` needs it to be registered.

    Raises:
        ValueError: For a window below 1, a decay outside (0, 1] or an unknown scorer name.
    """

    kind: ClassVar[str] = "topic"
    _OPTIONS: ClassVar[frozenset[str]] = frozenset({"window", "decay", "scorer"})

    window: int = 3
    decay: float = 0.5
    scorer: TopicScorer | str = "lexical"

    def __post_init__(self) -> None:
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise ValueError("window must be an integer of at least 1")
        if not (0.0 < self.decay <= 1.0):
            raise ValueError("decay must be in (0, 1]")
        if isinstance(self.scorer, str) and self.scorer not in _SCORERS:
            raise ValueError(f"unknown topic scorer {self.scorer!r}")

    def _scorer(self) -> TopicScorer:
        return _SCORERS[self.scorer] if isinstance(self.scorer, str) else self.scorer

    def scores(self, roster: list[AgentSlot], recent_turns: list[SessionTurn]) -> list[float]:
        """Each agent's recency-weighted topic score, in roster order.

        Args:
            roster: The agents.
            recent_turns: The latest turns, oldest first; only the last ``window`` count.

        Returns:
            One score per roster entry.

        Raises:
            ValueError: If the scorer returns the wrong number of scores or a non-finite one.
        """
        totals = [0.0] * len(roster)
        topical = [index for index, slot in enumerate(roster) if slot.topics]
        turns = recent_turns[-self.window :]
        if not topical or not turns:
            return totals
        documents = [", ".join(roster[index].topics) for index in topical]
        scorer = self._scorer()
        weight = 1.0
        for turn in reversed(turns):
            raw = scorer(turn.content, documents)
            if len(raw) != len(documents):
                raise ValueError(
                    f"topic scorer returned {len(raw)} scores for {len(documents)} documents"
                )
            for index, score in zip(topical, raw, strict=True):
                if not math.isfinite(score):
                    raise ValueError("topic scorer returned a non-finite score")
                totals[index] += weight * score
            weight *= self.decay
        return totals

    def next_agent(
        self,
        roster: list[AgentSlot],
        recent_turns: list[SessionTurn],
        state: TurnManagerState,
    ) -> tuple[str | None, TurnManagerState]:
        """Choose the best-matching agent (see the class docstring for the rules).

        Args:
            roster: The agents, in roster order. Names must be unique.
            recent_turns: The latest turns of the session, oldest first.
            state: The state returned by the previous call.

        Returns:
            The chosen agent's name and the new state; ``(None, state)`` for an empty roster.

        Raises:
            ValueError: If two roster entries share a name, or the scorer misbehaves.
        """
        names = _roster_names(roster)
        if not names:
            return None, state
        totals = self.scores(roster, recent_turns)
        if max(totals) <= 0.0:
            return RoundRobinTurnManager().next_agent(roster, recent_turns, state)
        # sorted() is stable, so equal scores keep roster order.
        ranked = sorted(range(len(names)), key=lambda index: -totals[index])
        chosen_index = ranked[0]
        if names[chosen_index] == state.last_agent:
            chosen_index = next(
                (index for index in ranked[1:] if totals[index] > 0.0), chosen_index
            )
        chosen = names[chosen_index]
        return chosen, _advance(state, names, chosen, _round_base(state, names))

    def to_spec(self) -> TurnManagerSpec:
        """Return the spec with ``window``, ``decay`` and the scorer's registered name.

        Raises:
            ValueError: If the scorer is a function that was never registered.
        """
        if isinstance(self.scorer, str):
            name = self.scorer
        else:
            found = [key for key, value in _SCORERS.items() if value is self.scorer]
            if not found:
                raise ValueError(
                    "register the topic scorer with register_topic_scorer() so the workflow "
                    "can rebuild the manager from its spec"
                )
            name = found[0]
        return TurnManagerSpec(
            kind=self.kind,
            options={"window": self.window, "decay": self.decay, "scorer": name},
        )

    @classmethod
    def from_spec(cls, spec: TurnManagerSpec) -> Self:
        """Rebuild the manager from :meth:`to_spec`'s output.

        Args:
            spec: A spec of kind ``"topic"``; missing options take their defaults.

        Returns:
            The manager.

        Raises:
            ValueError: For another kind, an unknown option or an invalid value.
        """
        _check_kind(spec, cls.kind, cls._OPTIONS)
        options = spec.options
        window = options.get("window", 3)
        decay = options.get("decay", 0.5)
        scorer = options.get("scorer", "lexical")
        if not isinstance(decay, int | float) or isinstance(decay, bool):
            raise ValueError("decay must be a number")
        if not isinstance(scorer, str):
            raise ValueError("scorer must be a registered scorer's name")
        return cls(window=window, decay=float(decay), scorer=scorer)


_MANAGERS: dict[str, type[RoundRobinTurnManager | PriorityTurnManager | TopicBasedTurnManager]] = {
    RoundRobinTurnManager.kind: RoundRobinTurnManager,
    PriorityTurnManager.kind: PriorityTurnManager,
    TopicBasedTurnManager.kind: TopicBasedTurnManager,
}


def manager_from_spec(spec: TurnManagerSpec) -> TurnManager:
    """Rebuild any built-in manager from its spec (what the workflow does with its input).

    Args:
        spec: The output of a manager's ``to_spec()``.

    Returns:
        The manager.

    Raises:
        ValueError: For an unknown kind or invalid options.
    """
    manager_type = _MANAGERS.get(spec.kind)
    if manager_type is None:
        raise ValueError(f"unknown turn manager kind {spec.kind!r}; known: {sorted(_MANAGERS)}")
    return manager_type.from_spec(spec)

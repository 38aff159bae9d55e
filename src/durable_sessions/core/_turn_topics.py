"""Turn managers, part 2: the topic-based manager and its scorers.

Private; everything is re-exported by :mod:`durable_sessions.core.turn_managers`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Self

from durable_sessions.core._turn_rounds import (
    AgentSlot,
    RoundRobinTurnManager,
    TurnManagerSpec,
    TurnManagerState,
    advance_state,
    check_kind,
    roster_names,
    round_base,
)
from durable_sessions.models import SessionTurn

__all__ = [
    "TopicBasedTurnManager",
    "TopicScorer",
    "lexical_topic_scorer",
    "register_topic_scorer",
]

TopicScorer = Callable[[str, list[str]], list[float]]
"""``scorer(text, documents) -> one score per document``.

For :class:`TopicBasedTurnManager`, ``text`` is the content of one recent turn and each document
is one agent's topics joined with ``", "``. A score of zero or less means "no match". A scorer
used inside a workflow must be deterministic (same inputs, same floats)."""


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
        names = roster_names(roster)
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
        return chosen, advance_state(state, names, chosen, round_base(state, names))

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
        check_kind(spec, cls.kind, cls._OPTIONS)
        options = spec.options
        window = options.get("window", 3)
        decay = options.get("decay", 0.5)
        scorer = options.get("scorer", "lexical")
        if not isinstance(decay, int | float) or isinstance(decay, bool):
            raise ValueError("decay must be a number")
        if not isinstance(scorer, str):
            raise ValueError("scorer must be a registered scorer's name")
        return cls(window=window, decay=float(decay), scorer=scorer)

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

from durable_sessions.core._turn_rounds import (
    AgentSlot,
    PriorityTurnManager,
    RoundRobinTurnManager,
    TurnManager,
    TurnManagerSpec,
    TurnManagerState,
    agents_per_round,
)
from durable_sessions.core._turn_topics import (
    TopicBasedTurnManager,
    TopicScorer,
    lexical_topic_scorer,
    register_topic_scorer,
)

__all__ = [
    "AgentSlot",
    "PriorityTurnManager",
    "RoundRobinTurnManager",
    "TopicBasedTurnManager",
    "TopicScorer",
    "TurnManager",
    "TurnManagerSpec",
    "TurnManagerState",
    "agents_per_round",
    "lexical_topic_scorer",
    "manager_from_spec",
    "register_topic_scorer",
]


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

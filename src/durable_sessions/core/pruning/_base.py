"""The pruner interface and the recency pruners."""

from __future__ import annotations

import abc
from typing import ClassVar

from durable_sessions.core.pruning._groups import _Budget, _check_budget, _group_starts, _Groups
from durable_sessions.models import SessionTurn

__all__ = ["ContextPruner", "SlidingWindowPruner", "TokenBudgetPruner"]


class ContextPruner(abc.ABC):
    """Chooses the turns of a history to send to a model within a turn and token budget.

    Implementations share the invariants in the module docstring: chronological subset of the
    input, system turns kept, tool calls kept with their results, exact budgets.
    """

    async def prune(
        self,
        history: list[SessionTurn],
        query: str = "",
        max_turns: int | None = None,
        max_tokens: int | None = None,
    ) -> list[SessionTurn]:
        """Return the turns to keep. Pure CPU work; see :meth:`prune_sync`.

        Args:
            history: The full transcript, oldest first.
            query: The text the context is for (usually the new user message). Recency pruners
                ignore it.
            max_turns: Most turns to return, or ``None`` for no limit.
            max_tokens: Most tokens to return, or ``None`` for no limit.

        Returns:
            A chronological subset of ``history`` (the same objects).
        """
        return self.prune_sync(history, query, max_turns, max_tokens)

    @abc.abstractmethod
    def prune_sync(
        self,
        history: list[SessionTurn],
        query: str = "",
        max_turns: int | None = None,
        max_tokens: int | None = None,
    ) -> list[SessionTurn]:
        """Synchronous form of :meth:`prune`, with the same arguments and result.

        Raises:
            ValueError: If a budget is negative.
        """


class _RecencyPruner(ContextPruner):
    """What the recency pruners share: system groups first, then the other groups newest first.

    ``_contiguous`` says what happens at the first group that does not fit: stop there (a
    window without holes), or skip it and go on with older groups.
    """

    _contiguous: ClassVar[bool]

    def prune_sync(
        self,
        history: list[SessionTurn],
        query: str = "",
        max_turns: int | None = None,
        max_tokens: int | None = None,
    ) -> list[SessionTurn]:
        """See :meth:`ContextPruner.prune_sync`; ``query`` is ignored."""
        _check_budget("max_turns", max_turns)
        _check_budget("max_tokens", max_tokens)
        if max_turns is None and max_tokens is None:
            return list(history)
        groups = _Groups(history, _group_starts(history))
        budget = _Budget(max_turns, max_tokens)
        selected = groups.select_pinned(budget)
        newest_first = range(len(groups) - 1, -1, -1)
        groups.take_recent(budget, newest_first, selected, contiguous=self._contiguous)
        return groups.turns_of(selected)


class SlidingWindowPruner(_RecencyPruner):
    """Keeps the longest run of most recent turns that fits, plus the system turns.

    The window is contiguous: it grows backwards one group at a time and stops at the first
    group that would overflow a budget, so the model never sees a hole in the recent
    conversation. When the newest group alone is too large, only system turns are returned;
    use :class:`TokenBudgetPruner` to skip such a group and fill the budget with older turns.
    """

    _contiguous = True


class TokenBudgetPruner(_RecencyPruner):
    """Keeps the most recent turns that fit the token budget (and the turn budget).

    Groups are visited newest first; one that does not fit is skipped and older, smaller groups
    are still considered, so the budget is filled greedily as far as it goes.
    """

    _contiguous = False

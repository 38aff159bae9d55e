"""Grouping a history into atomic units (a tool call with its results) and spending budgets."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from durable_sessions.core.tokens import count_tokens
from durable_sessions.models import SessionTurn

__all__ = ["group_turns", "turn_tokens"]


def _is_result(turn: SessionTurn) -> bool:
    """A turn that answers a tool call: a ``tool`` turn, or a non-system turn that names the
    call it answers in ``metadata["tool_call_id"]``."""
    return turn.role == "tool" or (turn.role != "system" and "tool_call_id" in turn.metadata)


def _group_starts(history: Sequence[SessionTurn]) -> list[int]:
    starts: list[int] = []
    for i, turn in enumerate(history):
        if not starts or not _is_result(turn):
            starts.append(i)
    return starts


def group_turns(history: Sequence[SessionTurn]) -> list[range]:
    """Split a history into the atomic groups that pruners keep or drop as a whole.

    The rule: every turn that is not a tool *result* starts a new group; a result turn (role
    ``tool``, or any non-system turn with ``metadata["tool_call_id"]``) joins the group of the
    nearest preceding non-result turn, so consecutive results join the same group. An assistant
    turn carrying ``metadata["tool_calls"]`` therefore forms one group with all the results that
    follow it. Result turns at the very start of a history (their call was pruned or never
    stored) form a group of their own. A group whose first turn is a system turn is *pinned*:
    always kept, budget permitting.

    Args:
        history: The turns in chronological order.

    Returns:
        Consecutive, non-overlapping index ranges that cover the history.
    """
    starts = _group_starts(history)
    bounds = [*starts, len(history)]
    return [range(bounds[k], bounds[k + 1]) for k in range(len(starts))]


def turn_tokens(turn: SessionTurn) -> int:
    """The token cost of a turn: ``turn.tokens`` when set, else ``count_tokens(turn.content)``.

    Args:
        turn: The turn.

    Returns:
        A non-negative token count.
    """
    return turn.tokens if turn.tokens is not None else count_tokens(turn.content)


def _check_budget(name: str, value: int | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{name} must be >= 0 or None, got {value}")


class _Budget:
    """What is left of the two budgets; ``None`` is unbounded."""

    __slots__ = ("tokens", "turns")

    def __init__(self, max_turns: int | None, max_tokens: int | None) -> None:
        self.turns = max_turns
        self.tokens = max_tokens

    @property
    def full(self) -> bool:
        return self.turns is not None and self.turns <= 0

    def take(self, n_turns: int, cost: Callable[[], int]) -> bool:
        """Spend ``n_turns`` turns and ``cost()`` tokens if both fit; ``cost`` is only called when
        a token budget is set and the turn count fits."""
        if self.turns is not None and n_turns > self.turns:
            return False
        if self.tokens is not None:
            tokens = cost()
            if tokens > self.tokens:
                return False
            self.tokens -= tokens
        if self.turns is not None:
            self.turns -= n_turns
        return True


class _Groups:
    """Group boundaries over a history plus lazily computed token costs."""

    __slots__ = ("_cost", "history", "starts", "turn_cost")

    def __init__(
        self,
        history: Sequence[SessionTurn],
        starts: list[int],
        turn_cost: Callable[[int], int] | None = None,
    ) -> None:
        self.history = history
        self.starts = starts
        self.turn_cost = turn_cost or (lambda i: turn_tokens(history[i]))
        self._cost: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.starts)

    def end(self, g: int) -> int:
        return self.starts[g + 1] if g + 1 < len(self.starts) else len(self.history)

    def size(self, g: int) -> int:
        return self.end(g) - self.starts[g]

    def pinned(self, g: int) -> bool:
        return self.history[self.starts[g]].role == "system"

    def cost(self, g: int) -> int:
        cached = self._cost.get(g)
        if cached is None:
            cached = sum(self.turn_cost(i) for i in range(self.starts[g], self.end(g)))
            self._cost[g] = cached
        return cached

    def take(self, budget: _Budget, g: int) -> bool:
        return budget.take(self.size(g), lambda: self.cost(g))

    def select_pinned(self, budget: _Budget, pinned: Iterable[int] | None = None) -> list[int]:
        """Keep system groups newest first while they fit (all of them, normally).

        ``pinned`` lists the system groups in ascending order when the caller knows them
        (the relevance index does), which saves a pass over every group."""
        if pinned is None:
            pinned = [g for g in range(len(self.starts)) if self.pinned(g)]
        kept: list[int] = []
        for g in reversed(list(pinned)):
            if self.take(budget, g):
                kept.append(g)
        return kept

    def take_recent(
        self, budget: _Budget, candidates: Iterable[int], selected: list[int], *, contiguous: bool
    ) -> None:
        """Take the unpinned ``candidates`` in the order given while they fit, appending them
        to ``selected``; at the first that does not fit, stop if ``contiguous``, else skip it.
        Stops once the turn budget is full."""
        for g in candidates:
            if budget.full:
                break
            if self.pinned(g):
                continue
            if self.take(budget, g):
                selected.append(g)
            elif contiguous:
                break

    def turns_of(self, selected: list[int]) -> list[SessionTurn]:
        """The turns of the selected groups, in chronological order."""
        out: list[SessionTurn] = []
        for g in sorted(selected):
            out.extend(self.history[self.starts[g] : self.end(g)])
        return out

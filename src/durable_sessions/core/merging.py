"""Merge strategies: which turns of a branch are copied back into a target session, and how.

Why this is a pure module: the target's workflow computes the merge itself, so the computation
must be replay-safe (no clock, no randomness, no I/O) and must give the same answer every time it
runs. Two decisions follow from that:

* Only a :class:`MergeSpec` crosses the wire. A strategy that holds client code (a predicate in
  :class:`SelectiveMerge`) is *resolved* on the client into the ids it chose; the workflow never
  runs user code and never needs it to replay.
* A merged copy gets a turn id derived from ``(source_session_id, source turn_id)`` by
  :func:`merge_key`. Merging the same branch twice therefore produces the same ids, and the
  second :func:`plan_merge` sees them in ``already_merged`` and adds nothing: merges are
  idempotent without any extra bookkeeping in the target.

Provenance is one hop: a copy records the session and turn it was copied from in
``metadata["merged_from"]``. Errors name turn ids only, never turn content.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, model_validator

from durable_sessions.models import SessionTurn

__all__ = [
    "MERGED_FROM_KEY",
    "MERGE_KEY_PREFIX",
    "AppendMerge",
    "MergeSpec",
    "MergeStrategy",
    "SelectiveMerge",
    "TurnPredicate",
    "merge_key",
    "plan_merge",
    "strategy_from_spec",
]

MERGED_FROM_KEY = "merged_from"
"""The metadata key under which a merged copy records where it came from."""

MERGE_KEY_PREFIX = "m-"
"""Prefix of every id produced by :func:`merge_key`."""

TurnPredicate = Callable[[SessionTurn], bool]
"""Client-side choice of turns for :class:`SelectiveMerge`."""


def merge_key(source_session_id: str, turn_id: str) -> str:
    """The deterministic turn id of the copy of ``turn_id`` from ``source_session_id``.

    Args:
        source_session_id: The session the turn is merged from.
        turn_id: The turn's id in that session.

    Returns:
        ``"m-"`` followed by 30 hex digits of the SHA-256 of both ids (32 characters, well within
        the 128-character limit of a turn id). A NUL separator keeps ``("ab", "c")`` and
        ``("a", "bc")`` apart.
    """
    digest = hashlib.sha256(f"{source_session_id}\x00{turn_id}".encode()).hexdigest()
    return MERGE_KEY_PREFIX + digest[:30]


class MergeSpec(BaseModel):
    """The serialisable description of a merge: what travels to the target's workflow.

    Attributes:
        strategy: ``"append"`` copies every turn after the fork point; ``"selective"`` copies only
            the turns listed in ``turn_ids``.
        turn_ids: Source turn ids to copy; required for ``"selective"``, must be ``None`` for
            ``"append"``. Their order does not matter: copies keep the source order.
    """

    model_config = ConfigDict(extra="forbid")

    strategy: Literal["append", "selective"]
    turn_ids: list[str] | None = None

    @model_validator(mode="after")
    def _check_turn_ids(self) -> MergeSpec:
        if self.strategy == "selective" and self.turn_ids is None:
            raise ValueError("a selective merge needs turn_ids")
        if self.strategy == "append" and self.turn_ids is not None:
            raise ValueError("an append merge takes no turn_ids")
        return self


class MergeStrategy(Protocol):
    """What :class:`AppendMerge` and :class:`SelectiveMerge` have in common."""

    def select(self, source_turns: list[SessionTurn]) -> list[SessionTurn]:
        """The source turns this strategy merges, in source order."""
        ...

    def resolve(self, source_turns: list[SessionTurn]) -> MergeSpec:
        """The wire form of this strategy, with any client-side choice already made."""
        ...


@dataclass(frozen=True)
class AppendMerge:
    """Copy every turn of the branch after the fork point, in order."""

    strategy: ClassVar[Literal["append"]] = "append"

    def select(self, source_turns: list[SessionTurn]) -> list[SessionTurn]:
        """Return every source turn.

        Args:
            source_turns: The source's turns after the fork point.

        Returns:
            A new list holding the same turns in the same order.
        """
        return list(source_turns)

    def to_spec(self) -> MergeSpec:
        """Return ``MergeSpec(strategy="append")``."""
        return MergeSpec(strategy="append")

    def resolve(self, source_turns: list[SessionTurn]) -> MergeSpec:
        """Same as :meth:`to_spec`; an append merge needs no client-side choice.

        Args:
            source_turns: Ignored.

        Returns:
            ``MergeSpec(strategy="append")``.
        """
        del source_turns
        return self.to_spec()


class SelectiveMerge:
    """Copy only some turns of the branch: listed by id, or chosen by a predicate.

    Exactly one of ``turn_ids`` and ``predicate`` must be given. A predicate is client code: it is
    evaluated by :meth:`resolve` (on the client) and only the chosen ids are sent to the workflow.

    Args:
        turn_ids: Source turn ids to copy. Every id must name a turn after the fork point.
        predicate: A function that returns ``True`` for each source turn to copy.

    Raises:
        ValueError: If neither or both of ``turn_ids`` and ``predicate`` are given.
    """

    strategy: ClassVar[Literal["selective"]] = "selective"

    def __init__(
        self,
        turn_ids: Iterable[str] | None = None,
        *,
        predicate: TurnPredicate | None = None,
    ) -> None:
        if (turn_ids is None) == (predicate is None):
            raise ValueError("SelectiveMerge needs exactly one of turn_ids and predicate")
        if isinstance(turn_ids, str):
            raise ValueError("turn_ids must be a collection of ids, not a single string")
        self.turn_ids: tuple[str, ...] | None = None if turn_ids is None else tuple(turn_ids)
        self.predicate: TurnPredicate | None = predicate

    def __repr__(self) -> str:
        if self.turn_ids is not None:
            return f"SelectiveMerge(turn_ids={list(self.turn_ids)!r})"
        return f"SelectiveMerge(predicate={self.predicate!r})"

    def select(self, source_turns: list[SessionTurn]) -> list[SessionTurn]:
        """Return the chosen source turns, in source order.

        Args:
            source_turns: The source's turns after the fork point.

        Returns:
            The turns whose id is listed, or for which the predicate is true.

        Raises:
            ValueError: If a listed id names no turn in ``source_turns`` (the message lists the
                unknown ids).
        """
        if self.predicate is not None:
            predicate = self.predicate
            return [turn for turn in source_turns if predicate(turn)]
        assert self.turn_ids is not None
        return _select_by_ids(source_turns, self.turn_ids)

    def to_spec(self) -> MergeSpec:
        """Return the wire form of a merge by ids.

        Returns:
            ``MergeSpec(strategy="selective", turn_ids=[...])``.

        Raises:
            ValueError: For a predicate-based merge, which has no ids until it sees the turns;
                use :meth:`resolve` instead.
        """
        if self.turn_ids is None:
            raise ValueError(
                "a predicate-based SelectiveMerge has no spec of its own; call resolve(turns)"
            )
        return MergeSpec(strategy="selective", turn_ids=list(self.turn_ids))

    def resolve(self, source_turns: list[SessionTurn]) -> MergeSpec:
        """Make the choice on the client and return it as ids.

        Args:
            source_turns: The source's turns after the fork point.

        Returns:
            ``MergeSpec(strategy="selective", turn_ids=[...])`` with the ids of the chosen turns
            in source order. For a merge by ids, the ids are checked against ``source_turns``.

        Raises:
            ValueError: If a listed id names no turn in ``source_turns``.
        """
        chosen = self.select(source_turns)
        return MergeSpec(strategy="selective", turn_ids=[turn.turn_id for turn in chosen])


def strategy_from_spec(spec: MergeSpec) -> AppendMerge | SelectiveMerge:
    """Rebuild the strategy a spec describes (a :class:`SelectiveMerge` by ids, never a predicate).

    Args:
        spec: The wire form.

    Returns:
        ``AppendMerge()`` or ``SelectiveMerge(turn_ids=spec.turn_ids)``.
    """
    if spec.strategy == "append":
        return AppendMerge()
    return SelectiveMerge(turn_ids=spec.turn_ids or [])


def plan_merge(
    source_session_id: str,
    source_turns: list[SessionTurn],
    spec: MergeSpec,
    already_merged: set[str],
) -> list[SessionTurn]:
    """The new turns to append to the target for merging ``source_turns`` under ``spec``.

    Each chosen source turn becomes a copy with:

    * ``turn_id = merge_key(source_session_id, turn.turn_id)``;
    * ``seq = None`` (the target assigns it when the turn is stored);
    * ``metadata`` = the original metadata plus ``"merged_from": {"session_id", "turn_id",
      "seq"}`` naming the source turn (an existing ``"merged_from"`` entry is replaced).

    Everything else (role, content, timestamp, tokens, cost, agent) is kept. A turn is skipped
    when its merge key, or its own turn id, is in ``already_merged`` (the target already holds
    it), and when it repeats an earlier turn id in ``source_turns``. Order is the source order.

    Args:
        source_session_id: The branch being merged.
        source_turns: The branch's turns after the fork point, each with ``seq`` set.
        spec: Which turns to merge.
        already_merged: Turn ids present in the target, which includes the ids of earlier merged
            copies (they *are* merge keys). Not modified.

    Returns:
        The copies to append; empty when everything chosen is already in the target.

    Raises:
        ValueError: If a selective spec lists ids that name no source turn (the message lists
            those ids), or if a chosen source turn has no ``seq``.
    """
    chosen = strategy_from_spec(spec).select(source_turns)
    planned: list[SessionTurn] = []
    seen: set[str] = set()
    for turn in chosen:
        if turn.turn_id in seen:
            continue
        seen.add(turn.turn_id)
        key = merge_key(source_session_id, turn.turn_id)
        if key in already_merged or turn.turn_id in already_merged:
            continue
        if turn.seq is None:
            raise ValueError(f"source turn {turn.turn_id!r} has no seq")
        planned.append(_copy_for_merge(source_session_id, turn, key))
    return planned


def _select_by_ids(source_turns: list[SessionTurn], turn_ids: Iterable[str]) -> list[SessionTurn]:
    wanted = set(turn_ids)
    known = {turn.turn_id for turn in source_turns}
    unknown = wanted - known
    if unknown:
        raise ValueError(f"unknown turn ids for a selective merge: {sorted(unknown)}")
    return [turn for turn in source_turns if turn.turn_id in wanted]


def _copy_for_merge(source_session_id: str, turn: SessionTurn, key: str) -> SessionTurn:
    metadata: dict[str, Any] = copy.deepcopy(turn.metadata)
    metadata[MERGED_FROM_KEY] = {
        "session_id": source_session_id,
        "turn_id": turn.turn_id,
        "seq": turn.seq,
    }
    return turn.model_copy(update={"turn_id": key, "seq": None, "metadata": metadata})

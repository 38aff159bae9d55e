"""Accepting a turn into a session: its ``seq``, the counters, the recent window, the dedup keys
and the auto-checkpoint rule.

Pure: the workflow passes in what it knows (a source of fresh ids and the time, from
``workflow.*``) and applies what comes back; nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from durable_sessions.core.tokens import approx_token_count
from durable_sessions.models import SessionConfig, SessionState, SessionTurn

__all__ = [
    "RECENT_WINDOW_BYTES",
    "Accepted",
    "accept_turn",
    "forget_after",
    "push_recent",
    "remember",
]

RECENT_WINDOW_BYTES = 64_000
"""Most turn text the recent window holds, whatever ``recent_window`` says."""


@dataclass(frozen=True)
class Accepted:
    """The outcome of accepting one turn."""

    turn: SessionTurn
    """The turn as stored (with its ``seq``)."""
    new: bool
    """False when its ``turn_id`` was already applied (a retry): nothing changed."""
    auto_checkpoint: bool
    """Whether this turn completes an ``auto_checkpoint_interval``."""


def accept_turn(
    state: SessionState,
    config: SessionConfig,
    dedup: dict[str, int],
    data: dict[str, Any],
    *,
    new_id: Callable[[], str],
    now: datetime,
) -> Accepted:
    """Give a turn (``TurnInput`` fields as a dict) its id, time, tokens and ``seq``.

    A ``turn_id`` already in ``dedup`` answers with the stored ``seq`` and changes nothing.
    Otherwise the header's counters move (``state`` is updated in place); the caller adds the
    turn to its pending turns, the window and the dedup keys.
    """
    turn_id = data.get("turn_id") or new_id()  # called only when needed: it draws randomness
    fields = {**data, "turn_id": turn_id, "timestamp": data.get("timestamp") or now}
    seen = dedup.get(turn_id)
    if seen is not None:
        return Accepted(SessionTurn.model_validate({**fields, "seq": seen}), False, False)
    if fields.get("tokens") is None:
        fields["tokens"] = approx_token_count(fields["content"])
    stored = SessionTurn.model_validate({**fields, "seq": state.turn_count})
    state.turn_count += 1
    state.total_tokens += stored.tokens or 0
    state.total_cost += stored.cost
    interval = config.auto_checkpoint_interval
    auto = interval is not None and state.turn_count % interval == 0
    return Accepted(stored, True, auto)


def push_recent(
    recent: list[SessionTurn], turn: SessionTurn, window: int, max_bytes: int = RECENT_WINDOW_BYTES
) -> None:
    """Append ``turn`` to the recent window, keeping at most ``window`` turns and ``max_bytes``
    of text (always the newest turn)."""
    recent.append(turn)
    del recent[: max(0, len(recent) - window)]
    while len(recent) > 1 and sum(len(t.content) for t in recent) > max_bytes:
        del recent[0]


def remember(dedup: dict[str, int], turn_id: str, seq: int, window: int) -> None:
    """Record an applied ``turn_id``; only the latest ``window`` ids are kept (oldest first)."""
    dedup[turn_id] = seq
    while len(dedup) > window:  # one step per turn, not a copy of the window
        del dedup[next(iter(dedup))]


def forget_after(dedup: dict[str, int], turn_count: int) -> dict[str, int]:
    """The dedup keys of turns still in a transcript cut to ``turn_count`` turns: ids of turns
    the head no longer holds may be sent again (and land at their new place)."""
    return {k: v for k, v in dedup.items() if v < turn_count}

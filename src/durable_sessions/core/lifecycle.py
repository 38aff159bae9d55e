"""The session state machine and the rules a turn must pass, as pure functions.

Transitions::

    ACTIVE ──suspend──▶ SUSPENDED ──resume──▶ ACTIVE
    ACTIVE | SUSPENDED ──close──▶ CLOSED        (terminal)
    ACTIVE | SUSPENDED ──idle TTL──▶ EXPIRED    (terminal)

Turns are accepted only while ACTIVE. Errors name fields and numbers, never content.
"""

from __future__ import annotations

from typing import Literal

from durable_sessions.errors import (
    InvalidTransitionError,
    InvalidTurnError,
    SessionCapacityError,
    SessionClosedError,
)
from durable_sessions.models import SessionConfig, SessionState, SessionStatus

__all__ = [
    "VALID_ROLES",
    "Action",
    "check_turn",
    "next_status",
]

Action = Literal["suspend", "resume", "close", "expire"]

_TRANSITIONS: dict[tuple[SessionStatus, Action], SessionStatus] = {
    (SessionStatus.ACTIVE, "suspend"): SessionStatus.SUSPENDED,
    (SessionStatus.SUSPENDED, "resume"): SessionStatus.ACTIVE,
    (SessionStatus.ACTIVE, "close"): SessionStatus.CLOSED,
    (SessionStatus.SUSPENDED, "close"): SessionStatus.CLOSED,
    (SessionStatus.ACTIVE, "expire"): SessionStatus.EXPIRED,
    (SessionStatus.SUSPENDED, "expire"): SessionStatus.EXPIRED,
}

VALID_ROLES = frozenset({"system", "user", "assistant", "tool"})


def next_status(session_id: str, status: SessionStatus, action: Action) -> SessionStatus:
    """The status after ``action``, or a typed error if the transition is not allowed."""
    target = _TRANSITIONS.get((status, action))
    if target is not None:
        return target
    if status.is_terminal:
        raise SessionClosedError(
            f"session is {status.value}; cannot {action}", session_id=session_id, field="status"
        )
    raise InvalidTransitionError(
        f"cannot {action} a session that is {status.value}", session_id=session_id, field="status"
    )


def check_turn(state: SessionState, config: SessionConfig, role: str, content: str) -> None:
    """Raise the typed error a turn deserves, or return if the session can take it."""
    sid = state.session_id
    if state.status.is_terminal:
        raise SessionClosedError(f"session is {state.status.value}", session_id=sid, field="status")
    if state.status is not SessionStatus.ACTIVE:
        raise InvalidTransitionError(
            f"session is {state.status.value}; resume it before adding turns",
            session_id=sid,
            field="status",
        )
    if role not in VALID_ROLES:
        raise InvalidTurnError(
            f"role must be one of {sorted(VALID_ROLES)}", session_id=sid, field="role"
        )
    if not content:
        raise InvalidTurnError("content must not be empty", session_id=sid, field="content")
    size = len(content.encode("utf-8", "surrogatepass"))
    if size > config.max_turn_bytes:
        raise InvalidTurnError(
            f"content is {size} bytes; the limit is {config.max_turn_bytes}",
            session_id=sid,
            field="content",
        )
    if config.max_turns is not None and state.turn_count >= config.max_turns:
        raise SessionCapacityError(
            f"session holds its maximum of {config.max_turns} turns",
            session_id=sid,
            field="max_turns",
        )

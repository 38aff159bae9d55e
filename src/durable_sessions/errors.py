"""Typed errors of durable-sessions.

The whole tree::

    SessionError
    ├── SessionNotFoundError        unknown session id (or not yours, over HTTP)
    ├── SessionClosedError          the session is CLOSED or EXPIRED
    ├── SessionCapacityError        max_turns / max_sessions_per_user reached
    ├── InvalidTransitionError      e.g. resume an ACTIVE session
    ├── CheckpointNotFoundError     unknown checkpoint id
    ├── BranchExistsError           a branch name reused under one parent
    ├── InvalidTurnError            a turn the session refuses (role, size, ...); names the field
    ├── AgentFailedError            an agent asked for a turn (regenerate) failed after its retries
    ├── RecallUnavailableError      the store cannot search transcripts (``manager.recall``)
    ├── WorkerUnavailableError      no worker answered on the task queue in time
    │   └── TemporalUnavailableError    the Temporal service itself did not complete the call
    ├── StoreUnavailableError       the session store's database could not be reached (also a
    │                               ``ConnectionError``)
    └── SessionBusyError            transient: the session is moving to a new run (retried by
                                    SessionManager; other clients should retry it too)

Inside workflows the same errors travel as ``ApplicationError`` whose ``type`` is the class name;
``from_application_error`` turns them back into these classes on the client. Messages never
contain conversation text: only ids, fields, statuses and numbers.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ERROR_TYPES",
    "AgentFailedError",
    "BranchExistsError",
    "CheckpointNotFoundError",
    "InvalidTransitionError",
    "InvalidTurnError",
    "RecallUnavailableError",
    "SessionBusyError",
    "SessionCapacityError",
    "SessionClosedError",
    "SessionError",
    "SessionNotFoundError",
    "StoreUnavailableError",
    "TemporalUnavailableError",
    "WorkerUnavailableError",
    "error_from_type",
]


class SessionError(Exception):
    """Base class of every durable-sessions error."""

    code: str = "session_error"

    def __init__(self, message: str, *, session_id: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.session_id = session_id
        self.field = field

    def details(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "field": self.field}


class SessionNotFoundError(SessionError):
    code = "session_not_found"


class SessionClosedError(SessionError):
    code = "session_closed"


class SessionCapacityError(SessionError):
    code = "session_capacity"


class InvalidTransitionError(SessionError):
    code = "invalid_transition"


class CheckpointNotFoundError(SessionError):
    code = "checkpoint_not_found"


class BranchExistsError(SessionError):
    code = "branch_exists"


class InvalidTurnError(SessionError, ValueError):
    code = "invalid_turn"


class AgentFailedError(SessionError):
    code = "agent_failed"


class RecallUnavailableError(SessionError):
    code = "recall_unavailable"


class WorkerUnavailableError(SessionError):
    code = "worker_unavailable"


class TemporalUnavailableError(WorkerUnavailableError):
    code = "temporal_unavailable"


class SessionBusyError(SessionError):
    code = "session_busy"


class StoreUnavailableError(SessionError, ConnectionError):
    """The store's database refused or did not answer a connection (down, wrong address,
    unknown database, bad credentials); the driver's own error is its ``__cause__``."""

    code = "store_unavailable"


ERROR_TYPES: dict[str, type[SessionError]] = {
    cls.__name__: cls
    for cls in (
        SessionError,
        SessionNotFoundError,
        SessionClosedError,
        SessionCapacityError,
        InvalidTransitionError,
        CheckpointNotFoundError,
        BranchExistsError,
        InvalidTurnError,
        AgentFailedError,
        RecallUnavailableError,
        WorkerUnavailableError,
        TemporalUnavailableError,
        SessionBusyError,
        StoreUnavailableError,
    )
}


def error_from_type(
    type_name: str | None, message: str, details: dict[str, Any] | None = None
) -> SessionError | None:
    """Rebuild one of our errors from an ``ApplicationError`` type name, or None if not ours."""
    cls = ERROR_TYPES.get(type_name or "")
    if cls is None:
        return None
    details = details or {}
    return cls(message, session_id=details.get("session_id"), field=details.get("field"))

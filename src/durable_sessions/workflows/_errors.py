"""The one place the ``Session`` workflow turns our typed errors into Temporal failures.

A failure raised from a validator or an update handler fails that update only (never the
workflow task); the client maps its ``type`` back to the error class (``errors.error_from_type``).
Messages never carry conversation text.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from durable_sessions.errors import (
        InvalidTurnError,
        SessionBusyError,
        SessionClosedError,
        SessionError,
    )
    from durable_sessions.models import SessionState

__all__ = ["busy", "closed", "invalid", "to_application_error"]


def to_application_error(exc: SessionError) -> ApplicationError:
    """A typed, non-retryable failure the client maps back to ``exc``'s class."""
    return ApplicationError(
        exc.message,
        {"session_id": exc.session_id, "field": exc.field},
        type=type(exc).__name__,
        non_retryable=True,
    )


def busy(
    session_id: str, message: str = "session is moving to a new run; retry in a moment"
) -> ApplicationError:
    """Retryable: the client waits a moment and sends the same call again."""
    return ApplicationError(
        message, {"session_id": session_id, "field": None}, type=SessionBusyError.__name__
    )


def closed(state: SessionState) -> ApplicationError:
    return to_application_error(
        SessionClosedError(
            f"session is {state.status.value}", session_id=state.session_id, field="status"
        )
    )


def invalid(session_id: str, message: str, field: str) -> ApplicationError:
    return to_application_error(InvalidTurnError(message, session_id=session_id, field=field))

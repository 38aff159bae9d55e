"""Deleting a session, client side (``SessionManager.delete`` delegates here)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio.service import RPCError, RPCStatusCode

from durable_sessions.encryption import destroy_session_key
from durable_sessions.errors import SessionNotFoundError, TemporalUnavailableError

if TYPE_CHECKING:
    from durable_sessions.client import SessionManager

__all__ = ["delete_session"]


async def delete_session(manager: SessionManager, session_id: str) -> None:
    """Terminate the session's workflow, crypto-erase it and remove its rows from the store.

    Raises:
        SessionNotFoundError: neither Temporal nor the store knows the session.
        TemporalUnavailableError: Temporal did not answer the terminate call.
    """
    handle = manager.client.get_workflow_handle(session_id)
    terminated = True
    try:
        await handle.terminate(reason="deleted", rpc_timeout=manager.call_timeout)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise TemporalUnavailableError(
                f"the Temporal service did not complete the call ({exc.status.name})",
                session_id=session_id,
            ) from None
        terminated = False
    # Crypto-erase before removing rows: the session's history (kept by Temporal until
    # retention ends) and any row a failed delete leaves behind are unreadable from here
    # on, and a retried delete finishes the job. A no-op without per-session keys.
    await destroy_session_key(manager.client, session_id)
    deleted = await manager.store.delete_session(session_id)
    if not (terminated or deleted):
        raise SessionNotFoundError("no such session", session_id=session_id)

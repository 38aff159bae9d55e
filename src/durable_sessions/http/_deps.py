"""What the route modules share: the caller's user id, ownership checks and size checks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from durable_sessions.context import plausible_session_id
from durable_sessions.errors import CheckpointNotFoundError, SessionNotFoundError
from durable_sessions.http._asgi import unauthorized
from durable_sessions.http.errors import too_large
from durable_sessions.http.schemas import MAX_CONTENT_BYTES, MAX_METADATA_BYTES
from durable_sessions.models import Checkpoint, SessionState
from durable_sessions.stores.base import SessionStore

__all__ = ["Ownership", "UserId", "check_content", "check_metadata", "current_user"]

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`.")


def current_user(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The caller's user id, set by the authentication layer from the bearer key."""
    user_id = getattr(request.state, "user_id", None)
    if not isinstance(user_id, str):
        raise unauthorized()
    return user_id


UserId = Annotated[str, Depends(current_user)]


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def check_metadata(metadata: Mapping[str, Any] | None, what: str) -> None:
    if metadata and (size := _json_bytes(metadata)) > MAX_METADATA_BYTES:
        raise too_large(f"{what} is {size} bytes as JSON; the limit is {MAX_METADATA_BYTES}")


def check_content(content: str) -> None:
    size = len(content.encode("utf-8"))
    if size > MAX_CONTENT_BYTES:
        raise too_large(f"content is {size} bytes; the limit is {MAX_CONTENT_BYTES}")


class Ownership:
    """404 for unknown and not-yours alike, checked against the stored header."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    async def session(self, user_id: str, session_id: str) -> SessionState:
        """The stored header of the caller's session."""
        if plausible_session_id(session_id):
            header = await self.store.get_session(session_id)
            if header is not None and header.user_id == user_id:
                return header
        raise SessionNotFoundError("no such session", session_id=session_id)

    async def checkpoint(self, user_id: str, checkpoint_id: str) -> Checkpoint:
        if plausible_session_id(checkpoint_id):
            cp = await self.store.get_checkpoint(checkpoint_id)
            if cp is not None:
                header = await self.store.get_session(cp.session_id)
                if header is not None and header.user_id == user_id:
                    return cp
        raise CheckpointNotFoundError("no such checkpoint", field="checkpoint_id")

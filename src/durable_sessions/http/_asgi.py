"""ASGI layers in front of the routes: bearer-key authentication and the request body limit.

Both answer before any body is read (no body is read for a request without a valid key), in the
same JSON error shape as the routes (see ``errors``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from durable_sessions.http.auth import ApiKeyAuth
from durable_sessions.http.errors import ApiError, error_response

__all__ = ["AuthenticationMiddleware", "BodyLimitMiddleware", "unauthorized"]

_DIGITS = re.compile(r"[0-9]{1,20}")


def unauthorized() -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        "a valid API key is required: Authorization: Bearer <key>",
        headers={"WWW-Authenticate": "Bearer"},
    )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class AuthenticationMiddleware:
    """Resolves the bearer key before anything else (no body is read for a request without a
    valid key) and puts the user in ``request.state.user_id``."""

    def __init__(self, app: ASGIApp, *, auth: ApiKeyAuth, is_public: Callable[[str], bool]) -> None:
        self.app = app
        self.auth = auth
        self.is_public = is_public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]  # mounted under a prefix
        if scope["type"] != "http" or self.is_public(path):
            await self.app(scope, receive, send)
            return
        user_id = self.auth.user_for_header(_header(scope, b"authorization"))
        if user_id is None:
            err = unauthorized()
            response = error_response(err.status, err.code, err.message, headers=err.headers)
            await response(scope, receive, send)
            return
        state = dict(scope.get("state") or {})
        state["user_id"] = user_id
        await self.app({**scope, "state": state}, receive, send)


class BodyLimitMiddleware:
    """413 for a request body over ``max_bytes``, declared or streamed."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"the request body is over the limit of {self.max_bytes} bytes"
        declared = _header(scope, b"content-length")
        if (
            declared is not None
            and _DIGITS.fullmatch(declared.strip())
            and int(declared) > self.max_bytes
        ):
            response = error_response(413, "payload_too_large", message)
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI re-raises HTTPException from body reading: answered as 413.
                    raise StarletteHTTPException(413, message)
            return msg

        await self.app(scope, limited_receive, send)

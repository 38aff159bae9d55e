"""``SessionMiddleware``: bind the request's session to ``SessionContext`` (pure ASGI).

The session id comes from the header ``SessionConfig.header_name`` (``X-Session-Id``) or, when
that is absent, the cookie ``SessionConfig.cookie_name`` (``durable_session_id``). It is bound
for the whole request, so handlers read it with ``SessionContext().session_id``. An id that
names no session (with a manager to check) is ignored: the request runs unbound, and a stale
cookie is cleared.

When a handler binds another session during the request (``POST /sessions`` binds the one it
created), the response sets the cookie to it; unbinding a session that came from the cookie
clears the cookie.

Binding is not authorization: the middleware does not know who the caller is. Check the
session's ``user_id`` before acting on a bound session.
"""

from __future__ import annotations

from collections.abc import Iterable
from http.cookies import SimpleCookie

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from durable_sessions.client import SessionManager
from durable_sessions.context import SessionContext, begin_request, end_request
from durable_sessions.errors import SessionNotFoundError
from durable_sessions.models import SessionConfig

__all__ = ["SessionMiddleware"]


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class SessionMiddleware:
    """Binds the session of each HTTP request to ``SessionContext``.

    Args:
        app: the ASGI application to wrap.
        manager: checks that a presented session exists (one read of the store's header);
            without it any id is bound as given.
        config: where the names of the cookie and header come from (default: the manager's
            config, else ``SessionConfig()``).
        secure_cookie: mark the cookie ``Secure``; by default it is when the request came over
            HTTPS.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        manager: SessionManager | None = None,
        config: SessionConfig | None = None,
        secure_cookie: bool | None = None,
    ) -> None:
        self.app = app
        self.manager = manager
        cfg = config or (manager.config if manager is not None else SessionConfig())
        self.cookie_name = cfg.cookie_name
        self.header_name = cfg.header_name.lower().encode("latin-1")
        self.secure_cookie = secure_cookie

    def _presented(self, scope: Scope) -> tuple[str | None, bool]:
        """The session id the request names, and whether it came from the cookie."""
        headers = scope.get("headers", [])
        from_header = _header(headers, self.header_name)
        if from_header:
            return from_header.strip(), False
        cookie = _header(headers, b"cookie")
        if cookie:
            value = cookie_parser(cookie).get(self.cookie_name)
            if value:
                return value, True
        return None, False

    def _cookie(self, scope: Scope, session_id: str | None) -> bytes:
        jar: SimpleCookie = SimpleCookie()
        jar[self.cookie_name] = session_id or ""
        morsel = jar[self.cookie_name]
        morsel["path"] = "/"
        morsel["httponly"] = True
        morsel["samesite"] = "Lax"
        secure = self.secure_cookie
        if secure is None:
            secure = scope.get("scheme") in ("https", "wss")
        if secure:
            morsel["secure"] = True
        if session_id is None:
            morsel["max-age"] = 0
        return morsel.OutputString().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        presented, from_cookie = self._presented(scope)
        ctx = SessionContext(self.manager)
        ctx_token = None
        stale_cookie = False
        if presented is not None:
            try:
                ctx_token = await ctx.bind(presented)
            except SessionNotFoundError:
                stale_cookie = from_cookie
        if ctx_token is None:
            ctx_token = ctx.unbind()  # never inherit a binding from outside the request
        record, record_token = begin_request(ctx.session_id)

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                if record.changed and record.current is not None:
                    message = self._with_cookie(message, scope, record.current)
                elif (record.changed and from_cookie) or (stale_cookie and not record.changed):
                    message = self._with_cookie(message, scope, None)
            await send(message)

        try:
            await self.app(scope, receive, send_with_cookie)
        finally:
            end_request(record_token)
            # Restores the value from before the request, whatever handlers bound since.
            ctx.reset(ctx_token)

    def _with_cookie(self, message: Message, scope: Scope, session_id: str | None) -> Message:
        headers = list(message.get("headers", []))
        headers.append((b"set-cookie", self._cookie(scope, session_id)))
        return {**message, "headers": headers}

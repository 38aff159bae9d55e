"""``SessionContext``: the session the current request (or task) works on, as a ContextVar.

A ``ContextVar`` follows the async call chain: bound in an ASGI middleware, it is visible in the
handler that middleware calls and in every task the handler starts (each task gets a copy of the
context), and never in another request. Every ``SessionContext`` reads the same variable, so a
handler can make its own ``SessionContext()`` to read what ``SessionMiddleware`` bound::

    ctx = SessionContext(manager)           # the manager is optional: it validates bind()
    await ctx.bind(session_id)              # SessionNotFoundError if the session does not exist
    ctx.session_id                          # the bound id, or None when nothing is bound

Binding is not authorization: it says which session a request is about, not that the caller
may touch it. Check ownership (``SessionState.user_id``) before acting on a bound session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import TYPE_CHECKING

from durable_sessions.errors import SessionNotFoundError

if TYPE_CHECKING:
    from durable_sessions.client import SessionManager

__all__ = [
    "MAX_SESSION_ID_LENGTH",
    "RequestBinding",
    "SessionContext",
    "begin_request",
    "end_request",
    "plausible_session_id",
]

MAX_SESSION_ID_LENGTH = 256
"""Longest session id ``bind`` looks up; longer ones cannot name a session."""

_current_session: ContextVar[str | None] = ContextVar("durable_session_id", default=None)


@dataclass
class RequestBinding:
    """What ``SessionMiddleware`` watches during one request: the session bound at its start
    and the one bound now (changed by ``bind`` / ``unbind`` anywhere in the request)."""

    initial: str | None = None
    current: str | None = None

    @property
    def changed(self) -> bool:
        return self.current != self.initial


_request_binding: ContextVar[RequestBinding | None] = ContextVar(
    "durable_session_request_binding", default=None
)


def plausible_session_id(session_id: str) -> bool:
    """False for strings that cannot be a session id (empty, too long, or holding a NUL), so
    they are answered as unknown without reaching the store."""
    return 0 < len(session_id) <= MAX_SESSION_ID_LENGTH and "\x00" not in session_id


class SessionContext:
    """The session bound to the current context (see the module docstring).

    Args:
        manager: when given, ``bind`` checks that the session exists (a read of the store's
            header, no Temporal call).
    """

    def __init__(self, manager: SessionManager | None = None) -> None:
        self.manager = manager

    @property
    def session_id(self) -> str | None:
        """The bound session id, or None when nothing is bound."""
        return _current_session.get()

    async def bind(self, session_id: str) -> Token[str | None]:
        """Bind ``session_id`` to the current context; returns a token for ``reset``.

        Raises:
            SessionNotFoundError: the id cannot name a session, or (with a manager) no
                session has it.
        """
        if not plausible_session_id(session_id):
            raise SessionNotFoundError("no such session", field="session_id")
        if self.manager is not None:
            header = await self.manager.store.get_session(session_id)
            if header is None:
                raise SessionNotFoundError("no such session", session_id=session_id)
        return self._set(session_id)

    def unbind(self) -> Token[str | None]:
        """Bind nothing (``session_id`` becomes None); returns a token for ``reset``."""
        return self._set(None)

    def reset(self, token: Token[str | None]) -> None:
        """Undo the ``bind`` / ``unbind`` that returned ``token``."""
        _current_session.reset(token)
        record = _request_binding.get()
        if record is not None:
            record.current = _current_session.get()

    @asynccontextmanager
    async def bound(self, session_id: str) -> AsyncIterator[SessionContext]:
        """``async with ctx.bound(session_id):`` binds for the block, then restores."""
        token = await self.bind(session_id)
        try:
            yield self
        finally:
            self.reset(token)

    @staticmethod
    def _set(session_id: str | None) -> Token[str | None]:
        token = _current_session.set(session_id)
        record = _request_binding.get()
        if record is not None:
            record.current = session_id
        return token


def begin_request(initial: str | None) -> tuple[RequestBinding, Token[RequestBinding | None]]:
    """For ``SessionMiddleware``: start watching the bindings of one request."""
    record = RequestBinding(initial=initial, current=initial)
    return record, _request_binding.set(record)


def end_request(token: Token[RequestBinding | None]) -> None:
    _request_binding.reset(token)

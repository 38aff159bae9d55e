"""How ``SessionManager`` sends its calls to a session's workflow (private).

Updates, signals and queries, each through ``_calls``: typed errors, retries while the session
is busy, the per-session limiter, and writes shielded from their caller's cancellation.
``SessionReads`` and ``SessionManager`` build on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.client import Client

from durable_sessions._calls import (
    SessionLimiter,
    WriteProgress,
    retry_busy,
    shielded_write,
    translate,
)
from durable_sessions.errors import SessionError, WorkerUnavailableError
from durable_sessions.models import new_id
from durable_sessions.stores.base import SessionStore

__all__ = ["SessionTransport"]

T = TypeVar("T")


class SessionTransport:
    """Sends updates, signals and queries to sessions (see the module docstring)."""

    client: Client
    store: SessionStore
    task_queue: str
    call_timeout: timedelta
    _limiter: SessionLimiter

    async def _missing(self, session_id: str, message: str) -> SessionError:
        """What a NOT_FOUND from Temporal means for this session (``SessionReads``)."""
        raise NotImplementedError

    async def _translate(self, session_id: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run a Temporal call; map its failures to our typed errors (``_calls.translate``)."""
        return await translate(
            session_id,
            call,
            unavailable=lambda: self._unavailable(session_id),
            missing=lambda message: self._missing(session_id, message),
        )

    def _unavailable(self, session_id: str) -> WorkerUnavailableError:
        return WorkerUnavailableError(
            f"no worker answered within {self.call_timeout.total_seconds():g} s on task queue "
            f"'{self.task_queue}'; start one with `durable-sessions worker` (or `durable-sessions "
            "dev`) and check the task queue and namespace match. If workers run, the call may "
            "wait on the session store (checkpoint, restore, branch, context): check the "
            "database; the call is not lost and completes when the store is back",
            session_id=session_id,
        )

    async def _update(
        self, session_id: str, name: str, arg: Any = None, result_type: type[T] | None = None
    ) -> T:
        """An update: queued behind this manager's other updates to the session (at most
        ``MAX_IN_FLIGHT`` at once), retried while the session is busy, and never reported as
        failed while its outcome is unknown (``_calls.shielded_write``)."""
        return await shielded_write(
            lambda progress: self._send_update(session_id, name, arg, result_type, progress),
            settle_timeout=self.call_timeout.total_seconds(),
        )

    async def _send_update(
        self,
        session_id: str,
        name: str,
        arg: Any,
        result_type: type[T] | None,
        progress: WriteProgress,
    ) -> T:
        handle = self.client.get_workflow_handle(session_id)
        args = [] if arg is None else [arg]
        loop = asyncio.get_running_loop()
        timeout = self.call_timeout.total_seconds()
        # One id for every attempt: the server answers a resent update it has already
        # completed (in this run) with its outcome instead of applying it twice.
        update_id = new_id()

        async def attempt() -> T:
            async with progress.sending():
                result: T = await self._translate(
                    session_id,
                    lambda: handle.execute_update(
                        name,
                        args=args,
                        id=update_id,
                        result_type=result_type,
                        rpc_timeout=self.call_timeout,
                    ),
                )
            progress.applied += 1
            return result

        async with self._limiter.slot(session_id):
            return await retry_busy(attempt, timeout=timeout, loop=loop)

    async def _signal(self, session_id: str, name: str, arg: Any = None) -> None:
        """A signal, resent while the server refuses it as busy (the run closing, a limit):
        a refused signal was not delivered, and what signals carry is deduplicated by id."""
        handle = self.client.get_workflow_handle(session_id)
        args = [] if arg is None else [arg]
        await retry_busy(
            lambda: self._translate(
                session_id, lambda: handle.signal(name, args=args, rpc_timeout=self.call_timeout)
            ),
            timeout=self.call_timeout.total_seconds(),
            loop=asyncio.get_running_loop(),
        )

    async def _query(self, session_id: str, name: str, result_type: type[T]) -> T:
        handle = self.client.get_workflow_handle(session_id)
        result: T = await self._translate(
            session_id,
            lambda: handle.query(name, result_type=result_type, rpc_timeout=self.call_timeout),
        )
        return result

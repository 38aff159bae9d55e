"""The asyncpg pool behind the PostgreSQL stores (sessions and encryption keys).

Both confine themselves to one schema named by the caller and open their pool lazily, on first
use, so constructing a store never touches the network.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg

from durable_sessions.errors import StoreUnavailableError

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


async def _keep_session_state(conn: asyncpg.Connection) -> None:
    """The pool's reset on release: nothing past what asyncpg always does (roll back an open
    transaction). The default runs ``RESET ALL``, ``UNLISTEN`` and more on every release, one
    more round trip per store call; the stores set no session state (only transaction-scoped
    advisory locks), so there is nothing to reset."""


_UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, unreachable, unknown host, reset; TimeoutError (no answer) is one too
    asyncpg.PostgresConnectionError,  # class 08: the connection failed or was lost mid-call
    asyncpg.exceptions.AdminShutdownError,  # the server is shutting down
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,  # the server is starting up
    asyncpg.InvalidAuthorizationSpecificationError,  # unknown role, wrong password
    asyncpg.InvalidCatalogNameError,  # no such database
)
"""What a call fails with when the database cannot be reached, refuses us or goes away; every
other error (refused data, a bug) is raised as it is."""

T = TypeVar("T")


def _outage_is_typed(
    method: Callable[..., Coroutine[Any, Any, T]],
) -> Callable[..., Coroutine[Any, Any, T]]:
    @functools.wraps(method)
    async def call(self: PgPoolOwner, *args: Any, **kwargs: Any) -> T:
        try:
            return await method(self, *args, **kwargs)
        except StoreUnavailableError:
            raise  # from a wrapped method it called
        except _UNREACHABLE as exc:
            raise StoreUnavailableError(
                f"cannot reach PostgreSQL at {where(self.dsn)}: {type(exc).__name__}: "
                f"{str(exc)[:200]}. Is it running, and are the address, database and "
                "credentials right? Set DURABLE_SESSIONS_DATABASE_URL (or the store's dsn); "
                "calls that need the store fail until it answers."
            ) from exc

    return call


def where(dsn: str) -> str:
    """A DSN without its password, for messages: ``user@host:port/database``."""
    url = urlsplit(dsn)
    try:
        port = f":{url.port}" if url.port else ""
    except ValueError:  # a malformed port: the driver's own error says what is wrong
        port = ""
    if not url.scheme:
        return "the configured database"  # a keyword DSN: nothing safe to quote
    host = url.hostname or "localhost"
    user = f"{url.username}@" if url.username else ""
    return f"{user}{host}{port}{url.path or '/'}"


class PgPoolOwner:
    """Holds ``dsn``, ``schema`` and an asyncpg pool created on first use.

    Every public coroutine method of a subclass raises ``StoreUnavailableError`` (with the
    driver's error as its cause) when the database cannot be reached or goes away mid-call, so
    callers meet one typed error, whatever the driver said.

    Args:
        dsn: A libpq connection URL.
        schema: The schema the owner confines itself to.
        min_size: Minimum number of pooled connections.
        max_size: Maximum number of pooled connections.
        init: Run on every new connection (e.g. to register type codecs).

    Raises:
        ValueError: If ``schema`` is not a plain SQL identifier.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in list(vars(cls).items()):
            if not name.startswith("_") and inspect.iscoroutinefunction(value):
                setattr(cls, name, _outage_is_typed(value))

    def __init__(
        self,
        dsn: str,
        *,
        schema: str,
        min_size: int,
        max_size: int,
        init: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
    ) -> None:
        if not _IDENT.match(schema):
            raise ValueError(f"schema must be a plain SQL identifier, got {schema!r}")
        self.dsn = dsn
        self.schema = schema
        self._min_size = min_size
        self._max_size = max_size
        self._init = init
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        # Pools of other event loops than the first (an asyncpg pool belongs to the loop that
        # made it): a store used from a second loop, e.g. a framework's sync API run on a
        # private loop thread, gets its own pool there instead of corrupting the first.
        self._other_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncpg.Pool]
        self._other_pools = weakref.WeakKeyDictionary()
        self._pool_loop: asyncio.AbstractEventLoop | None = None

    async def _get_pool(self) -> asyncpg.Pool:
        loop = asyncio.get_running_loop()
        if self._pool is not None and self._pool_loop is not loop:
            pool = self._other_pools.get(loop)
            if pool is None:
                pool = self._other_pools[loop] = await self._new_pool()
            return pool
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    self._pool = await self._new_pool()
                    self._pool_loop = loop
        return self._pool

    async def _new_pool(self) -> asyncpg.Pool:
        return await asyncpg.create_pool(
            self.dsn,
            min_size=self._min_size,
            max_size=self._max_size,
            init=self._init,
            reset=_keep_session_state,
        )

    @asynccontextmanager
    async def _locked(self, name: str) -> AsyncIterator[asyncpg.Connection]:
        """A connection in a transaction holding the advisory lock
        ``durable_sessions.<name>:<schema>``: DDL from several processes at once is serialised
        (concurrent ``CREATE ... IF NOT EXISTS`` can still collide in the catalog)."""
        pool = await self._get_pool()
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))",
                f"durable_sessions.{name}:{self.schema}",
            )
            yield conn

    async def close(self) -> None:
        """Close the pool. The store may be used again: a new pool is made on demand."""
        pool, self._pool = self._pool, None
        others = list(self._other_pools.items())
        self._other_pools.clear()
        for loop, other in others:
            if loop is asyncio.get_running_loop():
                await other.close()
            else:
                other.terminate()  # its loop may be gone or busy: drop its connections
        if pool is not None:
            await pool.close()

"""The connection plumbing of ``RedisSessionStore``: its client, scripts and error fallback."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from durable_sessions.stores._redis_codec import RedisKeys
from durable_sessions.stores.base import SessionStore

__all__ = ["CACHE_ERRORS", "RedisPlumbing"]

log = logging.getLogger("durable_sessions.stores.redis")

T = TypeVar("T")

CACHE_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)


class RedisPlumbing(RedisKeys):
    """The client (connected on first use), its registered scripts, the lifecycle passed on to
    the wrapped store, and reads that fall back on a Redis error. ``RedisSessionStore``'s
    docstring describes the arguments."""

    def __init__(
        self,
        url: str,
        inner: SessionStore,
        *,
        ttl: float = 3600.0,
        recent: int = 50,
        prefix: str = "durable-sessions:",
        strict: bool = True,
        client: Redis | None = None,
    ) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        if recent < 1:
            raise ValueError("recent must be at least 1")
        self.url = url
        self.inner = inner
        self.ttl = ttl
        self.recent = recent
        self.prefix = prefix
        self.strict = strict
        self._own_client = client is None
        self._client: Redis | None = client
        self._scripts: dict[str, AsyncScript] = {}

    # --- plumbing -----------------------------------------------------------------------------

    @property
    def redis(self) -> Redis:
        """The Redis client (connected on first use)."""
        if self._client is None:
            self._client = Redis.from_url(self.url, decode_responses=False)
            self._own_client = True
        return self._client

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    async def _script(self, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self.redis.register_script(source)
        return await script(keys=list(keys), args=list(args))

    async def _try(self, what: str, call: Callable[[], Awaitable[T]]) -> T | None:
        """Run a cache operation; on a Redis error log it and return None (read fallback)."""
        try:
            return await call()
        except CACHE_ERRORS as exc:
            log.warning("redis cache %s failed, using the store: %r", what, exc)
            return None

    # --- lifecycle ----------------------------------------------------------------------------

    async def setup(self) -> None:
        await self.inner.setup()
        await self.redis.ping()

    async def close(self) -> None:
        try:
            await self.inner.close()
        finally:
            client, self._client = self._client, None
            self._scripts.clear()
            if client is not None and self._own_client:
                await client.aclose()

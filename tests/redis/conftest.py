"""Redis for tests: find a server (skip, or fail with CI=true), isolate each test by key prefix.

* ``TEST_REDIS_URL`` when set, else ``redis://127.0.0.1:6379/0``.
* Every test gets a unique key prefix; its keys are deleted afterwards.
* ``store_factory`` / ``store`` have the names the store contract suite expects, so its tests
  run here against ``RedisSessionStore`` in front of a memory store and a SQLite store.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from durable_sessions.stores.base import SessionStore
from durable_sessions.stores.memory import InMemorySessionStore
from durable_sessions.stores.redis import RedisSessionStore
from durable_sessions.stores.sqlite import SQLiteSessionStore

DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/0"
INNER_BACKENDS = ["memory", "sqlite"]

StoreFactory = Callable[[], SessionStore]

_probe: tuple[str, str | None] | None = None


def redis_url() -> str:
    return os.environ.get("TEST_REDIS_URL") or DEFAULT_TEST_REDIS_URL


def _on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


async def _probe_url(url: str) -> str | None:
    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        return f"Redis at {url} is not reachable ({type(exc).__name__}: {exc})"
    finally:
        await client.aclose()
    return None


async def redis_url_or_skip() -> str:
    """The URL of a reachable Redis, or skip the calling test (fail it when CI=true)."""
    global _probe
    url = redis_url()
    if _probe is None or _probe[0] != url:
        _probe = (url, await _probe_url(url))
    reason = _probe[1]
    if reason is not None:
        hint = "set TEST_REDIS_URL to a reachable server"
        if _on_ci():
            pytest.fail(f"{reason}; CI=true requires a real Redis ({hint})")
        pytest.skip(f"{reason}; {hint}")
    return url


@pytest.fixture
async def redis_test_url() -> str:
    return await redis_url_or_skip()


@pytest.fixture
async def key_prefix(redis_test_url: str) -> AsyncIterator[str]:
    """A fresh key prefix; every key under it is deleted after the test."""
    prefix = f"ds-test:{uuid.uuid4().hex}:"
    yield prefix
    client = Redis.from_url(redis_test_url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(params=INNER_BACKENDS)
async def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path, redis_test_url: str, key_prefix: str
) -> AsyncIterator[StoreFactory]:
    """Makes ``RedisSessionStore``s sharing one Redis prefix and one backing location.

    Like the contract suite's factory: stores are not set up; the memory backend's inner store
    is the same object every time (a second "process" sees the same rows).
    """
    kind: str = request.param
    memory = InMemorySessionStore()
    made: list[SessionStore] = []

    def make() -> SessionStore:
        inner: SessionStore = (
            memory if kind == "memory" else SQLiteSessionStore(tmp_path / "sessions.db")
        )
        s = RedisSessionStore(redis_test_url, inner, prefix=key_prefix, ttl=300)
        made.append(s)
        return s

    try:
        yield make
    finally:
        for s in made:
            await s.close()


@pytest.fixture
async def store(store_factory: StoreFactory) -> SessionStore:
    s = store_factory()
    await s.setup()
    return s

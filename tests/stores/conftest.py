"""Fixtures for the store contract suite: one fresh, set-up store per test and backend.

Each backend gets its own isolation: a new in-memory store, a new SQLite file in ``tmp_path``,
a new PostgreSQL schema (dropped afterwards).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from durable_sessions.stores.base import SessionStore
from durable_sessions.stores.memory import InMemorySessionStore
from durable_sessions.stores.postgres import PostgresSessionStore
from durable_sessions.stores.sqlite import SQLiteSessionStore
from tests.pg import postgres_dsn_or_skip, temporary_schema

BACKENDS = ["memory", "sqlite", "postgres"]
PERSISTENT_BACKENDS = ["sqlite", "postgres"]

StoreFactory = Callable[[], SessionStore]


@pytest.fixture(params=BACKENDS)
async def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StoreFactory]:
    """Makes stores over one backend location (file, schema); all are closed at the end.

    Stores are NOT set up: tests call ``setup()`` themselves. The memory backend has no
    location beyond the object, so its factory always returns the same store.
    """
    kind: str = request.param
    made: list[SessionStore] = []
    memory = InMemorySessionStore()
    async with AsyncExitStack() as stack:
        dsn = schema = ""
        if kind == "postgres":
            dsn = await postgres_dsn_or_skip()
            schema = await stack.enter_async_context(temporary_schema(dsn))

        def make() -> SessionStore:
            if kind == "memory":
                return memory
            s: SessionStore
            if kind == "sqlite":
                s = SQLiteSessionStore(tmp_path / "sessions.db")
            else:
                s = PostgresSessionStore(dsn, schema=schema, min_size=1, max_size=4)
            made.append(s)
            return s

        try:
            yield make
        finally:  # close pools before the schema is dropped
            for s in made:
                await s.close()


@pytest.fixture
async def store(store_factory: StoreFactory) -> SessionStore:
    """A set-up store of each backend, empty."""
    s = store_factory()
    await s.setup()
    return s


@pytest.fixture(params=PERSISTENT_BACKENDS)
async def fresh_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[PostgresSessionStore | SQLiteSessionStore]:
    """A store over an empty database (SQLite file) or empty schema (PostgreSQL), NOT set up."""
    if request.param == "sqlite":
        lite = SQLiteSessionStore(tmp_path / "fresh.db")
        try:
            yield lite
        finally:
            await lite.close()
        return
    dsn = await postgres_dsn_or_skip()
    async with temporary_schema(dsn) as schema:
        pgs = PostgresSessionStore(dsn, schema=schema, min_size=1, max_size=2)
        try:
            yield pgs
        finally:
            await pgs.close()

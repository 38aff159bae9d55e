"""``make_store(kind)``: a fresh, set-up store for one test (a new schema on PostgreSQL)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from durable_sessions.stores.base import SessionStore
from durable_sessions.stores.memory import InMemorySessionStore


@contextlib.asynccontextmanager
async def make_store(kind: str, *, recall: bool = False) -> AsyncIterator[SessionStore]:
    kind = os.environ.get("DURABLE_SESSIONS_TEST_STORE", kind)
    if kind == "memory":
        yield InMemorySessionStore()
        return
    if kind == "sqlite":
        from durable_sessions.stores.sqlite import SQLiteSessionStore

        with tempfile.TemporaryDirectory() as tmp:
            store = SQLiteSessionStore(Path(tmp) / "sessions.db")
            await store.setup()
            try:
                yield store
            finally:
                await store.close()
        return
    from durable_sessions.stores.postgres import PostgresSessionStore
    from tests.pg import postgres_dsn_or_skip, temporary_schema

    dsn = await postgres_dsn_or_skip()
    async with temporary_schema(dsn) as schema:
        pg = PostgresSessionStore(dsn, schema=schema, recall=recall)
        await pg.setup()
        try:
            yield pg
        finally:
            await pg.close()

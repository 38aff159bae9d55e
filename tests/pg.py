"""PostgreSQL for tests: find a server (or skip, or fail on CI) and isolate each test in a schema.

Shared by the store contract tests and the Temporal integration tests, so every suite finds the
database the same way:

* ``TEST_DATABASE_URL`` when set, else ``postgresql://postgres@127.0.0.1:5432/test``.
* When that server does not answer, tests that need it are skipped with the reason, except
  with ``CI=true``: there they fail, so CI can never silently stop exercising the real database.
* ``temporary_schema`` creates an empty, uniquely named schema and drops it afterwards, so runs
  (and tests) never see each other's rows and leave nothing behind.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

DEFAULT_TEST_DSN = "postgresql://postgres@127.0.0.1:5432/test"
CONNECT_TIMEOUT = 3.0

_probe: tuple[str, str | None] | None = None
"""Cached ``(dsn, reason it is unusable or None)``: the server is probed once per process."""


def database_url() -> str:
    """The DSN tests use: ``TEST_DATABASE_URL`` or the local default (reachable or not)."""
    return os.environ.get("TEST_DATABASE_URL") or DEFAULT_TEST_DSN


def _on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


async def _probe_dsn(dsn: str) -> str | None:
    try:
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return f"PostgreSQL at {_redact(dsn)} is not reachable ({type(exc).__name__}: {exc})"
    await conn.close()
    return None


def _redact(dsn: str) -> str:
    """The DSN without its password, for messages."""
    scheme, sep, rest = dsn.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return dsn
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"


async def postgres_dsn_or_skip() -> str:
    """The DSN of a reachable test database, or skip the calling test (fail it when CI=true)."""
    global _probe
    dsn = database_url()
    if _probe is None or _probe[0] != dsn:
        _probe = (dsn, await _probe_dsn(dsn))
    reason = _probe[1]
    if reason is not None:
        hint = "set TEST_DATABASE_URL to a reachable server"
        if _on_ci():
            pytest.fail(f"{reason}; CI=true requires the real database ({hint})")
        pytest.skip(f"{reason}; {hint}")
    return dsn


def unique_schema_name(prefix: str = "ds_test") -> str:
    """A fresh schema name such as ``ds_test_3f2a9c01b4d7``."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@asynccontextmanager
async def temporary_schema(dsn: str, prefix: str = "ds_test") -> AsyncIterator[str]:
    """Create an empty schema with a unique name, yield the name, then drop it with its tables.

    Example::

        dsn = await postgres_dsn_or_skip()
        async with temporary_schema(dsn) as schema:
            store = PostgresSessionStore(dsn, schema=schema)
            await store.setup()
            ...
            await store.close()
    """
    name = unique_schema_name(prefix)
    conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT)
    try:
        await conn.execute(f'CREATE SCHEMA "{name}"')
        try:
            yield name
        finally:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()

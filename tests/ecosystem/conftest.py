"""Fixtures for the ecosystem tests: a PostgreSQL store per test (the production store)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from durable_sessions.stores.base import SessionStore
from tests.stores_fixtures import make_store


@pytest_asyncio.fixture(loop_scope="session")
async def store() -> AsyncIterator[SessionStore]:
    async with make_store("postgres") as s:
        yield s

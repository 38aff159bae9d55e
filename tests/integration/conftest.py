"""A running stack per test: real dev server, a worker on a fresh task queue, a store, a manager."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest_asyncio
from temporalio.client import Client
from temporalio.worker import Worker

from durable_sessions.client import SessionManager
from durable_sessions.models import SessionConfig
from durable_sessions.stores.base import SessionStore
from durable_sessions.worker import create_worker
from tests.stores_fixtures import make_store


@dataclass
class Stack:
    client: Client
    store: SessionStore
    manager: SessionManager
    worker: Worker
    task_queue: str

    def new_worker(self, **kwargs: object) -> Worker:
        return create_worker(self.client, self.store, task_queue=self.task_queue, **kwargs)  # type: ignore[arg-type]


@pytest_asyncio.fixture(loop_scope="session")
async def store() -> AsyncIterator[SessionStore]:
    async with make_store("postgres") as s:
        yield s


@pytest_asyncio.fixture(loop_scope="session")
async def stack(client: Client, store: SessionStore, task_queue: str) -> AsyncIterator[Stack]:
    manager = SessionManager(
        client, store, SessionConfig(flush_interval=0.2), task_queue, call_timeout=10
    )
    worker = create_worker(client, store, task_queue=task_queue)
    async with worker:
        yield Stack(client, store, manager, worker, task_queue)

"""Fixtures for the encryption suite: keys, key stores, and an encrypted stack on the dev server.

The stack is what a deployment with encryption runs: a client whose data converter carries the
codec, a worker built from that client (so it encrypts what it writes), an ``EncryptedStore``
over a real PostgreSQL store sharing the client's keyring, and a ``SessionManager``.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from durable_sessions.client import SessionManager
from durable_sessions.encryption import (
    EncryptedStore,
    EncryptionConfig,
    Keyring,
    KeyStore,
    PostgresKeyStore,
    SessionCipher,
    data_converter,
)
from durable_sessions.models import SessionConfig
from durable_sessions.stores.base import SessionStore
from durable_sessions.worker import create_worker
from tests.pg import postgres_dsn_or_skip, temporary_schema
from tests.stores_fixtures import make_store


def new_key() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def config() -> EncryptionConfig:
    return EncryptionConfig(keys={"k1": new_key()}, active="k1")


@pytest_asyncio.fixture(loop_scope="session")
async def pg_keystore() -> AsyncIterator[PostgresKeyStore]:
    """A PostgreSQL key store in a fresh schema (dropped afterwards)."""
    dsn = await postgres_dsn_or_skip()
    async with temporary_schema(dsn, prefix="ds_keys") as schema:
        keystore = PostgresKeyStore(dsn, schema=schema)
        await keystore.setup()
        try:
            yield keystore
        finally:
            await keystore.close()


def with_converter(client: Client, converter: DataConverter) -> Client:
    """The same connection and namespace with another data converter (what 1.35 allows)."""
    config = client.config()
    config["data_converter"] = converter
    return Client(**config)


def encrypted_client(
    env: WorkflowEnvironment, config: EncryptionConfig, keystore: KeyStore | None
) -> Client:
    """A client on the test server whose data converter encrypts (a fresh keyring and cache)."""
    return with_converter(env.client, data_converter(config, keystore))


@dataclass
class EncryptedStack:
    client: Client
    keyring: Keyring
    store: EncryptedStore
    manager: SessionManager
    task_queue: str

    def new_worker(self, **kwargs: object) -> Worker:
        return create_worker(self.client, self.store, task_queue=self.task_queue, **kwargs)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def encrypted_stack(
    env: WorkflowEnvironment,
    config: EncryptionConfig,
    keystore: KeyStore | None,
    task_queue: str,
    inner: SessionStore,
    *,
    run_worker: bool = True,
    worker_store: Callable[[SessionStore], SessionStore] | None = None,
    **worker_kwargs: object,
) -> AsyncIterator[EncryptedStack]:
    """An encrypted stack; ``worker_store`` wraps the store the worker's activities use."""
    client = encrypted_client(env, config, keystore)
    keyring = client.data_converter.payload_codec.keyring  # type: ignore[union-attr]
    store = EncryptedStore(inner, SessionCipher(keyring))
    manager = SessionManager(
        client, store, SessionConfig(flush_interval=0.1), task_queue, call_timeout=10
    )
    stack = EncryptedStack(client, keyring, store, manager, task_queue)
    if not run_worker:
        yield stack
        return
    activities_store = store if worker_store is None else worker_store(store)
    worker = create_worker(client, activities_store, task_queue=task_queue, **worker_kwargs)  # type: ignore[arg-type]
    async with worker:
        yield stack


@pytest_asyncio.fixture(loop_scope="session")
async def pg_store() -> AsyncIterator[SessionStore]:
    async with make_store("postgres") as s:
        yield s

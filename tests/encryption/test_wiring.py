"""Encryption through the public entry points: ``connect``, ``SessionManager``, ``create_worker``,
``Settings``. Skipped until ``connect`` takes ``encryption=`` (the integration edits)."""

from __future__ import annotations

import base64
import inspect
import secrets

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from durable_sessions.client import SessionManager, connect
from durable_sessions.config import Settings
from durable_sessions.encryption import (
    EncryptedStore,
    EncryptionConfig,
    PostgresKeyStore,
    keyring_of,
)
from durable_sessions.errors import SessionNotFoundError
from durable_sessions.models import SessionConfig, SessionTurn
from durable_sessions.stores.base import SessionStore
from durable_sessions.stores.postgres import PostgresSessionStore
from durable_sessions.worker import create_worker

pytestmark = pytest.mark.skipif(
    "encryption" not in inspect.signature(connect).parameters,
    reason="connect(..., encryption=...) is not wired in yet",
)


async def test_connect_encrypts_worker_store_and_delete_erases(
    temporal_env: WorkflowEnvironment,
    config: EncryptionConfig,
    pg_store: SessionStore,
    task_queue: str,
) -> None:
    assert isinstance(pg_store, PostgresSessionStore)
    keystore = PostgresKeyStore.for_store(pg_store)
    client = await connect(
        temporal_env.client.service_client.config.target_host,
        encryption=config,
        keystore=keystore,  # connect sets it up
    )
    try:
        manager = SessionManager(
            client, pg_store, SessionConfig(flush_interval=0.1), task_queue, call_timeout=10
        )
        assert isinstance(manager.store, EncryptedStore)  # wrapped because the client encrypts
        async with create_worker(client, pg_store, task_queue=task_queue):
            sid = (await manager.create("user-w", metadata={"m": "wired-meta"})).session_id
            await manager.add_turn(sid, SessionTurn(role="user", content="wired secret turn"))
            await manager.close(sid)
            assert [t.content for t in await manager.history(sid)] == ["wired secret turn"]

            conn = await asyncpg.connect(pg_store.dsn)
            try:
                rows = str(await conn.fetch(f'SELECT * FROM "{pg_store.schema}".turns'))
            finally:
                await conn.close()
            assert "wired secret" not in rows and "dsenc:1:s:" in rows

            await manager.delete(sid)
            stored = await keystore.get_wrapped(sid)
            assert stored is not None and stored.destroyed
            with pytest.raises(SessionNotFoundError):
                await manager.history(sid)
    finally:
        await keystore.close()


async def test_settings_give_every_process_the_same_keystore(
    temporal_env: WorkflowEnvironment, pg_store: SessionStore
) -> None:
    from durable_sessions import runtime

    assert isinstance(pg_store, PostgresSessionStore)
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    settings = Settings(
        temporal_address=temporal_env.client.service_client.config.target_host,
        database_url=f"{pg_store.dsn}?schema={pg_store.schema}",
        encryption_keys=f"k1:{key}",
    )
    keystore = runtime.keystore_from_settings(settings)
    assert isinstance(keystore, PostgresKeyStore) and keystore.schema == pg_store.schema
    client = await runtime.client_from_settings(settings, keystore=keystore)
    try:
        ring = keyring_of(client)
        assert ring is not None and ring.per_session and ring.active_id == "k1"
    finally:
        await keystore.close()
    off = Settings(temporal_address=settings.temporal_address, database_url=settings.database_url)
    assert runtime.keystore_from_settings(off) is None

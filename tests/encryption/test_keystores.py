"""The ``KeyStore`` contract on every backend, and ``EncryptedStore`` over real stores."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from temporalio.contrib.pydantic import pydantic_data_converter

from durable_sessions.encryption import (
    DecryptionError,
    EncryptedStore,
    EncryptionConfig,
    InMemoryKeyStore,
    Keyring,
    KeyStore,
    PostgresKeyStore,
    SessionCipher,
    SessionKeyDestroyedError,
    SQLiteKeyStore,
    WrappedKey,
    data_converter,
    encrypt_store,
    keyring_of,
    keystore_for,
)
from durable_sessions.models import Checkpoint, SessionState, SessionTurn
from durable_sessions.stores.base import PersistBatch, read_transcript
from durable_sessions.stores.memory import InMemorySessionStore
from durable_sessions.stores.postgres import PostgresSessionStore
from durable_sessions.stores.sqlite import SQLiteSessionStore
from tests.pg import postgres_dsn_or_skip, temporary_schema
from tests.stores_fixtures import make_store


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def keystore(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KeyStore]:
    async with AsyncExitStack() as stack:
        ks: KeyStore
        if request.param == "memory":
            ks = InMemoryKeyStore()
        elif request.param == "sqlite":
            ks = SQLiteKeyStore(tmp_path / "keys.db")
        else:
            dsn = await postgres_dsn_or_skip()
            schema = await stack.enter_async_context(temporary_schema(dsn, prefix="ds_keys"))
            ks = PostgresKeyStore(dsn, schema=schema)
        await ks.setup()
        await ks.setup()  # idempotent
        stack.push_async_callback(ks.close)
        yield ks


async def test_keystore_contract(keystore: KeyStore) -> None:
    assert isinstance(keystore, KeyStore)
    a1, a2 = WrappedKey("k1", b"\x01" * 60), WrappedKey("k1", b"\x02" * 60)
    assert await keystore.get_wrapped("a") is None
    assert await keystore.put_wrapped("a", a1) == a1
    assert await keystore.put_wrapped("a", a2) == a1  # create-if-absent: the first one wins
    assert await keystore.get_wrapped("a") == a1

    assert await keystore.list_wrapped_by_other("k2") == [("a", a1)]
    assert await keystore.list_wrapped_by_other("k1") == []
    b = WrappedKey("k2", b"\x03" * 60)
    assert await keystore.replace_wrapped("a", a2, b) is False  # not what is stored
    assert await keystore.replace_wrapped("a", a1, b) is True
    assert await keystore.get_wrapped("a") == b

    assert await keystore.destroy("a") is True
    assert await keystore.destroy("a") is False
    assert await keystore.get_wrapped("a") == WrappedKey.tombstone()
    assert await keystore.put_wrapped("a", a1) == WrappedKey.tombstone()  # never re-minted
    assert await keystore.replace_wrapped("a", b, a1) is False
    assert await keystore.list_wrapped_by_other("zz") == []

    assert await keystore.destroy("never-had-one") is False  # still leaves a tombstone
    assert (await keystore.get_wrapped("never-had-one")) == WrappedKey.tombstone()


async def test_concurrent_minting_agrees_on_one_key(keystore: KeyStore) -> None:
    config = EncryptionConfig(keys={"k1": b"k" * 32}, active="k1")
    rings = [Keyring(config, keystore) for _ in range(8)]
    keys = await asyncio.gather(*(r.session_key("s", create=True) for r in rings))
    nonce = b"\x00" * 12
    assert len({k.encrypt(nonce, b"probe", None) for k in keys}) == 1


# ---------------------------------------------------------------------- EncryptedStore


def _now() -> datetime:
    return datetime(2025, 1, 1, tzinfo=UTC)


def _batch(session_id: str, texts: list[str]) -> PersistBatch:
    state = SessionState(
        session_id=session_id,
        user_id="u",
        metadata={"topic": "secret topic"},
        created_at=_now(),
        updated_at=_now(),
        turn_count=len(texts),
    )
    turns = [
        SessionTurn(
            role="user",
            content=text,
            seq=i,
            metadata={"notekey": f"notevalue {text}", "inf": float("inf")},
            timestamp=_now(),
        )
        for i, text in enumerate(texts)
    ]
    cp = Checkpoint(
        checkpoint_id=f"cp-{session_id}",
        session_id=session_id,
        turn_count=len(texts),
        created_at=_now(),
        reason="manual",
        metadata={"topic": "secret topic"},
    )
    return PersistBatch(state=state, turns=turns, checkpoints=[cp])


async def test_encrypted_store_round_trips_and_hides_text() -> None:
    config = EncryptionConfig(keys={"k1": b"k" * 32}, active="k1")
    inner = InMemorySessionStore()
    store = EncryptedStore(inner, SessionCipher(Keyring(config, InMemoryKeyStore())))
    batch = _batch("s1", ["hello there", "a\x00nul and ünïcode"])
    await store.persist(batch)

    assert await read_transcript(store, "s1") == batch.turns
    header = await store.get_session("s1")
    assert header is not None and header.metadata == {"topic": "secret topic"}
    assert (await store.list_sessions("u"))[0].metadata == {"topic": "secret topic"}
    assert (await store.list_checkpoints("s1"))[0].metadata == {"topic": "secret topic"}
    cp = await store.get_checkpoint("cp-s1")
    assert cp is not None and cp.metadata == {"topic": "secret topic"}

    raw = json.dumps(
        [t.model_dump(mode="json") for t in await inner.get_own_turns("s1", 0, 0, 10)]
        + [(await inner.get_session("s1")).model_dump(mode="json")]  # type: ignore[union-attr]
    )
    for secret in ("hello there", "nul and", "notevalue", "notekey", "secret topic"):
        assert secret not in raw


async def test_encrypted_store_tokens_are_bound_to_the_session() -> None:
    config = EncryptionConfig(keys={"k1": b"k" * 32}, active="k1")
    cipher = SessionCipher(Keyring(config, InMemoryKeyStore()))
    token = await cipher.encrypt_text("a", "text of a")
    assert await cipher.decrypt_text("a", token) == "text of a"
    assert await cipher.decrypt_text("a", "plain old text") == "plain old text"
    await cipher.encrypt_text("b", "mint b")
    with pytest.raises(DecryptionError):
        await cipher.decrypt_text("b", token)


async def test_encrypted_store_delete_erases(tmp_path: Path) -> None:
    config = EncryptionConfig(keys={"k1": b"k" * 32}, active="k1")
    keystore = SQLiteKeyStore(tmp_path / "keys.db")
    await keystore.setup()
    try:
        ring = Keyring(config, keystore)
        inner = InMemorySessionStore()
        store = EncryptedStore(inner, SessionCipher(ring))
        await store.persist(_batch("gone", ["to be erased"]))
        await store.persist(_batch("kept", ["still here"]))
        # A delete that stopped after destroying the key: rows remain, but are unreadable.
        await ring.destroy("gone")
        with pytest.raises(SessionKeyDestroyedError):
            await read_transcript(store, "gone")
        listed = {s.session_id: s.metadata for s in await store.list_sessions("u")}
        assert listed == {"gone": {}, "kept": {"topic": "secret topic"}}
        assert await store.delete_session("gone") is True
        assert await store.get_session("gone") is None
        assert [t.content for t in await read_transcript(store, "kept")] == ["still here"]
    finally:
        await keystore.close()


async def test_encrypted_postgres_rows_hold_no_plaintext() -> None:
    config = EncryptionConfig(keys={"k1": b"k" * 32}, active="k1")
    async with make_store("postgres") as inner:
        assert isinstance(inner, PostgresSessionStore)
        keystore = PostgresKeyStore.for_store(inner)
        await keystore.setup()
        try:
            store = EncryptedStore(inner, SessionCipher(Keyring(config, keystore)))
            batch = _batch("pg1", ["postgres secret turn"])
            await store.persist(batch)
            assert await read_transcript(store, "pg1") == batch.turns
            conn = await asyncpg.connect(inner.dsn)
            try:
                dump = str(
                    await conn.fetch(
                        f'SELECT t.*, s.metadata AS smeta FROM "{inner.schema}".turns t'
                        f' JOIN "{inner.schema}".sessions s USING (sid)'
                    )
                )
                keys = await conn.fetch(f'SELECT * FROM "{inner.schema}".session_keys')
            finally:
                await conn.close()
            assert "postgres secret" not in dump and "secret topic" not in dump
            assert "dsenc:1:s:" in dump
            assert [(r["session_id"], r["key_id"]) for r in keys] == [("pg1", "k1")]
        finally:
            await keystore.close()


async def test_keystore_for_finds_the_system_of_record(tmp_path: Path) -> None:
    config = EncryptionConfig(keys={"k1": b"k" * 32}, active="k1")
    pg = PostgresSessionStore("postgresql://x@localhost/db", schema="tenant_a")
    wrapped = EncryptedStore(pg, SessionCipher(Keyring(config)))
    ks = keystore_for(wrapped)
    assert isinstance(ks, PostgresKeyStore) and ks.schema == "tenant_a" and ks.dsn == pg.dsn
    sq = keystore_for(SQLiteSessionStore(tmp_path / "sessions.db"))
    assert isinstance(sq, SQLiteKeyStore) and sq.path == str(tmp_path / "sessions.keys.db")
    assert isinstance(keystore_for(InMemorySessionStore()), InMemoryKeyStore)
    with pytest.raises(TypeError):
        keystore_for(object())


async def test_encrypt_store_follows_the_client(tmp_path: Path) -> None:
    config = EncryptionConfig(keys={"k1": b"k" * 32}, active="k1")
    inner = InMemorySessionStore()
    assert encrypt_store(pydantic_data_converter, inner) is inner
    converter = data_converter(config, InMemoryKeyStore())
    wrapped = encrypt_store(converter, inner)
    assert isinstance(wrapped, EncryptedStore) and wrapped.inner is inner
    assert wrapped.cipher.keyring is keyring_of(converter)
    assert encrypt_store(converter, wrapped) is wrapped

"""The summaries part of the store contract (compaction), on every backend, and encrypted."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta

import pytest

from durable_sessions.core.compaction import Summary
from durable_sessions.encryption import (
    EncryptedStore,
    EncryptionConfig,
    InMemoryKeyStore,
    Keyring,
    SessionCipher,
    SessionKeyDestroyedError,
)
from durable_sessions.models import SessionState
from durable_sessions.stores._summaries import SummaryStore
from durable_sessions.stores.base import PersistBatch, SessionStore
from durable_sessions.stores.memory import InMemorySessionStore
from durable_sessions.stores.postgres import PostgresSessionStore
from durable_sessions.stores.sqlite import SQLiteSessionStore

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def summary(session_id: str, generation: int, lo: int, hi: int, text: str = "") -> Summary:
    return Summary(
        session_id=session_id,
        generation=generation,
        lo=lo,
        hi=hi,
        level=1 if hi - lo <= 10 else 2,
        content=text or f"summary {session_id}/{generation} [{lo}, {hi}) — ünïcode ✓",
        tokens=hi - lo,
        summarizer="extractive",
        created_at=T0 + timedelta(seconds=lo),
    )


def summaries(store: SessionStore) -> SummaryStore:
    assert isinstance(store, SummaryStore)
    return store


async def test_every_store_keeps_summaries(store: SessionStore) -> None:
    assert isinstance(store, InMemorySessionStore | SQLiteSessionStore | PostgresSessionStore)
    assert isinstance(store, SummaryStore)


async def test_first_write_wins_and_reads_back_exactly(store: SessionStore) -> None:
    s = summaries(store)
    first = summary("s1", 0, 0, 10)
    assert await s.put_summary(first) is True
    assert await s.put_summary(first.model_copy(update={"content": "another text"})) is False
    assert await s.list_summaries("s1", 0, 0, 10) == [first]  # all fields, datetimes exact


async def test_list_selects_by_owner_and_last_turn(store: SessionStore) -> None:
    s = summaries(store)
    rows = [
        summary("s1", 0, 0, 10),
        summary("s1", 0, 10, 20),
        summary("s1", 0, 0, 40),
        summary("s1", 0, 20, 30),
        summary("s1", 1, 0, 10),  # another generation
        summary("s2", 0, 0, 10),  # another session
    ]
    for row in rows:
        assert await s.put_summary(row)
    spans = [(x.lo, x.hi) for x in await s.list_summaries("s1", 0, 0, 40)]
    assert spans == [(0, 10), (10, 20), (20, 30), (0, 40)]  # by (hi, lo)
    # A segment [lo, hi) owns the summaries whose last turn hi - 1 lies in it.
    assert [(x.lo, x.hi) for x in await s.list_summaries("s1", 0, 10, 30)] == [(10, 20), (20, 30)]
    assert [(x.lo, x.hi) for x in await s.list_summaries("s1", 0, 9, 10)] == [(0, 10)]
    assert await s.list_summaries("s1", 0, 10, 10) == []
    assert [x.content for x in await s.list_summaries("s1", 1, 0, 100)] == [rows[4].content]
    assert await s.list_summaries("nobody", 0, 0, 100) == []


async def test_racing_writers_store_one_summary(store: SessionStore) -> None:
    s = summaries(store)
    racers = [summary("s1", 0, 0, 10, text=f"writer {i}") for i in range(8)]
    won = await asyncio.gather(*(s.put_summary(r) for r in racers))
    assert sum(won) == 1
    [kept] = await s.list_summaries("s1", 0, 0, 10)
    assert kept == racers[won.index(True)]


async def test_delete_session_deletes_its_summaries_only(store: SessionStore) -> None:
    s = summaries(store)
    state = SessionState(session_id="s1", user_id="u", created_at=T0, updated_at=T0)
    await store.persist(PersistBatch(state=state))
    for sid in ("s1", "s2"):
        await s.put_summary(summary(sid, 0, 0, 10))
        await s.put_summary(summary(sid, 3, 10, 20))
    assert await store.delete_session("s1") is True
    assert await s.list_summaries("s1", 0, 0, 100) == []
    assert await s.list_summaries("s1", 3, 0, 100) == []
    assert len(await s.list_summaries("s2", 0, 0, 100)) == 1
    assert len(await s.list_summaries("s2", 3, 0, 100)) == 1


async def test_encrypted_store_seals_summaries_with_the_owners_key() -> None:
    inner = InMemorySessionStore()
    keyring = Keyring(
        EncryptionConfig(keys={"k1": secrets.token_bytes(32)}, active="k1"), InMemoryKeyStore()
    )
    store = EncryptedStore(inner, SessionCipher(keyring))
    row = summary("s1", 0, 0, 10, text="the locker code is 4417")
    assert await store.put_summary(row)
    [at_rest] = await inner.list_summaries("s1", 0, 0, 10)
    assert "4417" not in at_rest.content and SessionCipher.is_token(at_rest.content)
    assert await store.list_summaries("s1", 0, 0, 10) == [row]

    await store.delete_session("s1")  # erases the key, then the rows
    assert await inner.list_summaries("s1", 0, 0, 10) == []
    assert await store.put_summary(row.model_copy(update={"session_id": "s2"}))
    await keyring.destroy("s2")  # crypto-erased, rows left behind: unreadable, never plaintext
    with pytest.raises(SessionKeyDestroyedError):
        await store.list_summaries("s2", 0, 0, 10)

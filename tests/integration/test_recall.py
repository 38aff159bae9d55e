"""``manager.recall``, ``GET /recall`` and ``durable-sessions recall`` on the real stack.

Sessions are written through Temporal (a worker flushing to PostgreSQL with the full-text index
on), except for the CLI, which reads a SQLite file the test fills through the store. Every
test checks that one user never sees another's turns.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from temporalio.client import Client

from durable_sessions.client import SessionManager
from durable_sessions.encryption import (
    EncryptedStore,
    EncryptionConfig,
    InMemoryKeyStore,
    Keyring,
    SessionCipher,
)
from durable_sessions.errors import RecallUnavailableError, SessionError
from durable_sessions.http import create_app
from durable_sessions.models import SessionConfig, SessionState, SessionTurn
from durable_sessions.recall import RecallHit
from durable_sessions.stores.base import PersistBatch
from durable_sessions.stores.memory import InMemorySessionStore
from durable_sessions.stores.postgres import PostgresSessionStore
from durable_sessions.stores.sqlite import SQLiteSessionStore
from durable_sessions.worker import create_worker
from tests.helpers import assert_eventually
from tests.pg import postgres_dsn_or_skip, temporary_schema

KEYS = {"key-alice-0123456789": "alice", "key-bob-9876543210": "bob"}


@pytest_asyncio.fixture(loop_scope="session")
async def manager(client: Client, task_queue: str) -> AsyncIterator[SessionManager]:
    """A manager and a worker over a fresh PostgreSQL schema with the full-text index."""
    dsn = await postgres_dsn_or_skip()
    async with temporary_schema(dsn) as schema:
        store = PostgresSessionStore(dsn, schema=schema, max_size=4, recall=True)
        await store.setup()
        m = SessionManager(client, store, SessionConfig(flush_interval=0.1), task_queue)
        try:
            async with create_worker(client, store, task_queue=task_queue):
                yield m
        finally:
            await store.close()


async def say(m: SessionManager, session_id: str, *texts: str) -> None:
    for text in texts:
        await m.add_turn(session_id, SessionTurn(role="user", content=text))


async def recalled(
    m: SessionManager, user: str, query: str, n: int, **kw: object
) -> list[RecallHit]:
    """Recall once ``n`` hits are there (turns reach the store with their flush)."""

    async def check() -> list[RecallHit]:
        hits = await m.recall(user, query, **kw)  # type: ignore[arg-type]
        assert len(hits) == n, [h.turn.content for h in hits]
        return hits

    return await assert_eventually(check)


async def test_manager_recall(manager: SessionManager) -> None:
    m = manager
    trip = (await m.create("alice")).session_id
    pets = (await m.create("alice")).session_id
    bobs = (await m.create("bob")).session_id
    await say(m, trip, "We booked the ferry to the lighthouse island", "Bring rain jackets")
    await say(m, pets, "The kitten climbed the lighthouse model on my desk", "Vet on Tuesday")
    await say(m, bobs, "Bob's own lighthouse photos")

    hits = await recalled(m, "alice", "lighthouse ferry", 2)
    assert [h.session_id for h in hits] == [trip, pets]  # both words beat one
    assert hits[0].seq == 0 and hits[0].turn.content.startswith("We booked the ferry")
    assert hits[0].score > hits[1].score > 0
    assert [h.session_id for h in await recalled(m, "bob", "lighthouse", 1)] == [bobs]
    only = await m.recall("alice", "lighthouse", sessions=[pets, bobs])
    assert [h.session_id for h in only] == [pets]
    assert await m.recall("alice", "lighthouse ferry", limit=1) == hits[:1]
    with pytest.raises(SessionError) as info:
        await m.recall("alice", "lighthouse", limit=0)
    assert info.value.field == "limit"

    # A restore rewinds the transcript: the turns after the checkpoint are not recalled.
    cp = await m.checkpoint(trip)
    await say(m, trip, "Cancelled the lighthouse ferry")
    await recalled(m, "alice", "cancelled", 1)
    await m.restore(cp.checkpoint_id)
    await recalled(m, "alice", "cancelled", 0)

    # Deleting a session removes it from recall at once.
    await m.delete(pets)
    assert [h.session_id for h in await m.recall("alice", "lighthouse")] == [trip]


async def test_http_recall_sees_only_the_callers_sessions(manager: SessionManager) -> None:
    m = manager
    mine = (await m.create("alice")).session_id
    theirs = (await m.create("bob")).session_id
    await say(m, mine, "alice remembers the orchard picnic")
    await say(m, theirs, "bob remembers the orchard harvest")
    await recalled(m, "alice", "orchard", 1)
    await recalled(m, "bob", "orchard", 1)

    app = create_app(m, {k: v for k, v in KEYS.items()})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        alice = {"Authorization": "Bearer key-alice-0123456789"}
        r = await http.get("/recall", params={"q": "orchard"}, headers=alice)
        assert r.status_code == 200, r.text
        body = r.json()
        assert [(h["session_id"], h["seq"]) for h in body] == [(mine, 0)]
        assert body[0]["turn"]["content"] == "alice remembers the orchard picnic"
        # Naming bob's session does not reach it; it narrows alice's search to nothing.
        r = await http.get("/recall", params={"q": "orchard", "session": theirs}, headers=alice)
        assert r.status_code == 200 and r.json() == []
        r = await http.get(
            "/recall",
            params=[("q", "orchard"), ("session", theirs), ("session", mine)],
            headers=alice,
        )
        assert [h["session_id"] for h in r.json()] == [mine]
        bob = {"Authorization": "Bearer key-bob-9876543210"}
        r = await http.get("/recall", params={"q": "orchard picnic"}, headers=bob)
        assert [h["session_id"] for h in r.json()] == [theirs]
        assert (await http.get("/recall", params={"q": "orchard"})).status_code == 401
        for bad in ({}, {"q": ""}, {"q": "x", "limit": 0}, {"q": "x", "limit": 201}):
            r = await http.get("/recall", params=bad, headers=alice)
            assert r.status_code == 422, (bad, r.text)
            assert r.json()["error"]["code"] == "validation_error"


async def test_recall_without_an_index_is_a_clear_error(client: Client) -> None:
    dsn = await postgres_dsn_or_skip()
    async with temporary_schema(dsn) as schema:
        store = PostgresSessionStore(dsn, schema=schema, max_size=2)  # recall off
        await store.setup()
        try:
            m = SessionManager(client, store)
            with pytest.raises(RecallUnavailableError, match="recall=True"):
                await m.recall("alice", "anything")
            app = create_app(m, {"key-alice-0123456789": "alice"})
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t"
            ) as http:
                r = await http.get(
                    "/recall",
                    params={"q": "anything"},
                    headers={"Authorization": "Bearer key-alice-0123456789"},
                )
            assert r.status_code == 501
            assert r.json()["error"]["code"] == "recall_unavailable"
        finally:
            await store.close()


def _state(session_id: str, user_id: str, n: int) -> SessionState:
    t = datetime(2025, 5, 1, tzinfo=UTC)
    return SessionState(
        session_id=session_id, user_id=user_id, created_at=t, updated_at=t, turn_count=n
    )


def _turns(*texts: str) -> list[SessionTurn]:
    return [SessionTurn(role="user", content=text, seq=i) for i, text in enumerate(texts)]


async def test_encrypted_store_scans_and_never_recalls_an_erased_session() -> None:
    config = EncryptionConfig(keys={"k1": os.urandom(32)}, active="k1")
    keyring = Keyring(config, InMemoryKeyStore())
    inner = InMemorySessionStore()
    store = EncryptedStore(inner, SessionCipher(keyring), recall_scan_limit=3)
    await store.persist(
        PersistBatch(state=_state("a", "alice", 2), turns=_turns("secret tulip", "x"))
    )
    await store.persist(PersistBatch(state=_state("b", "alice", 1), turns=_turns("tulip bulbs")))
    # The database only ever saw ciphertext...
    raw = await inner.get_own_turns("a", 0, 0, 2)
    assert all("tulip" not in t.content for t in raw)
    # ... and recall still finds the text, decrypted in this process.
    hits = await store.search_turns("alice", "tulip", limit=10)
    assert sorted(h.session_id for h in hits) == ["a", "b"]
    # Erasing a session's key (even with its rows left behind) takes it out of recall.
    await keyring.destroy("b")
    hits = await store.search_turns("alice", "tulip", limit=10)
    assert [(h.session_id, h.turn.content) for h in hits] == [("a", "secret tulip")]
    # Past the scan budget, recall says so instead of decrypting without bound.
    await store.persist(PersistBatch(state=_state("c", "alice", 1), turns=_turns("tulip")))
    with pytest.raises(RecallUnavailableError):
        await store.search_turns("alice", "tulip", limit=10)
    assert len(await store.search_turns("alice", "tulip", limit=10, session_ids=["c"])) == 1


async def test_cli_recall(client: Client, tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    store = SQLiteSessionStore(db)
    await store.setup()
    await store.persist(
        PersistBatch(state=_state("s-alice", "alice", 2), turns=_turns("the blue canoe", "hi"))
    )
    await store.persist(PersistBatch(state=_state("s-bob", "bob", 1), turns=_turns("bob canoe")))
    await store.close()
    env = {
        **os.environ,
        "DURABLE_SESSIONS_TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "DURABLE_SESSIONS_DATABASE_URL": f"sqlite:///{db}",
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "durable_sessions.cli", "recall", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    done = await asyncio.to_thread(cli, "--user", "alice", "canoe")
    assert done.returncode == 0, done.stderr
    assert "s-alice [0] user: the blue canoe" in done.stdout
    assert "bob" not in done.stdout
    done = await asyncio.to_thread(cli, "--user", "bob", "--json", "canoe")
    assert done.returncode == 0, done.stderr
    hits = json.loads(done.stdout)
    assert [(h["session_id"], h["seq"], h["turn"]["content"]) for h in hits] == [
        ("s-bob", 0, "bob canoe")
    ]
    done = await asyncio.to_thread(cli, "--user", "alice", "--limit", "0", "canoe")
    assert done.returncode == 1 and "limit" in done.stderr

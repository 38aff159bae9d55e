"""What the cache adds: reads served by Redis, read-through, invalidation, races, failures."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from durable_sessions.models import Checkpoint, SessionState, SessionStatus, SessionTurn
from durable_sessions.stores.base import PersistBatch, SessionStore, read_transcript
from durable_sessions.stores.memory import InMemorySessionStore
from durable_sessions.stores.redis import RedisSessionStore

T0 = datetime(2025, 5, 1, 9, 0, tzinfo=UTC)


class CountingStore(InMemorySessionStore):
    """The reference store, counting every call by method name."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def __getattribute__(self, name: str) -> Any:
        attr = super().__getattribute__(name)
        if not name.startswith("_") and name != "calls" and callable(attr):
            super().__getattribute__("calls")[name] += 1
        return attr

    def reads(self) -> int:
        return sum(
            n for name, n in self.calls.items() if name.startswith(("get_", "list_", "count_"))
        )


def header(session_id: str, **fields: Any) -> SessionState:
    values: dict[str, Any] = {
        "session_id": session_id,
        "user_id": "u1",
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(fields)
    return SessionState(**values)


def turns(prefix: str, seqs: range) -> list[SessionTurn]:
    return [
        SessionTurn(
            turn_id=f"{prefix}-{s}",
            role="user",
            content=f"{prefix} {s}",
            timestamp=T0 + timedelta(seconds=s),
            seq=s,
        )
        for s in seqs
    ]


async def flush(
    store: SessionStore,
    state: SessionState,
    new: list[SessionTurn] | None = None,
    cps: list[Checkpoint] | None = None,
) -> None:
    await store.persist(PersistBatch(state=state, turns=new or [], checkpoints=cps or []))


@pytest.fixture
async def inner() -> CountingStore:
    return CountingStore()


@pytest.fixture
async def cache(
    inner: CountingStore, redis_test_url: str, key_prefix: str
) -> AsyncIterator[RedisSessionStore]:
    s = RedisSessionStore(redis_test_url, inner, prefix=key_prefix, ttl=60, recent=50)
    await s.setup()
    yield s
    await s.close()


@pytest.fixture
async def other(
    inner: CountingStore, redis_test_url: str, key_prefix: str
) -> AsyncIterator[RedisSessionStore]:
    """A second cache over the same Redis and store: another process (the HTTP API)."""
    s = RedisSessionStore(redis_test_url, inner, prefix=key_prefix, ttl=60, recent=50)
    await s.setup()
    yield s
    await s.close()


async def test_satisfies_the_store_protocol(cache: RedisSessionStore) -> None:
    assert isinstance(cache, SessionStore)


async def test_reads_after_persist_are_served_by_redis(
    cache: RedisSessionStore, other: RedisSessionStore, inner: CountingStore
) -> None:
    state = header("s1", turn_count=10)
    await flush(cache, state, turns("a", range(10)))
    inner.calls.clear()

    for reader in (cache, other):
        assert await reader.get_session("s1") == state
        assert [t.turn_id for t in await reader.get_own_turns("s1", 0, 3, 7)] == [
            f"a-{i}" for i in range(3, 7)
        ]
        transcript = await read_transcript(reader, "s1")
        assert [t.seq for t in transcript] == list(range(10))
        assert transcript == turns("a", range(10))
    assert inner.reads() == 0, inner.calls


async def test_misses_read_through_and_populate(
    cache: RedisSessionStore, inner: CountingStore
) -> None:
    # Written to the store directly (before the cache was deployed, say).
    await flush(inner, header("s1", turn_count=4), turns("a", range(4)))
    await inner.add_generation("s1", 1, 0, 2)
    inner.calls.clear()

    for _ in range(3):
        assert (await cache.get_session("s1")) == header("s1", turn_count=4)
        assert len(await cache.get_own_turns("s1", 0, 0, 4)) == 4
        assert await cache.get_generation_parent("s1", 1) == (0, 2)
    assert inner.calls["get_session"] == 1
    assert inner.calls["get_own_turns"] == 1
    assert inner.calls["get_generation_parent"] == 1

    assert await cache.get_session("missing") is None
    assert await cache.get_session("missing") is None
    assert inner.calls["get_session"] == 3  # absence is not cached


async def test_only_the_recent_turns_are_cached(
    cache: RedisSessionStore, inner: CountingStore
) -> None:
    for lo in range(0, 120, 30):
        await flush(cache, header("s1", turn_count=lo + 30), turns("a", range(lo, lo + 30)))
    inner.calls.clear()

    tail = await cache.get_own_turns("s1", 0, 70, 120)  # the last 50: Redis
    assert [t.seq for t in tail] == list(range(70, 120))
    assert inner.calls["get_own_turns"] == 0
    head = await cache.get_own_turns("s1", 0, 0, 80)  # reaches before the window: the store
    assert [t.seq for t in head] == list(range(80))
    assert inner.calls["get_own_turns"] == 1
    assert [t.seq for t in await read_transcript(cache, "s1")] == list(range(120))

    redis = cache.redis
    fields = await redis.hkeys(f"{cache.prefix}turns:s1:0")
    assert len(fields) == 50 + 2  # 50 turns plus the window bounds
    assert 0 < await redis.pttl(f"{cache.prefix}turns:s1:0") <= 60_000
    assert 0 < await redis.pttl(f"{cache.prefix}session:s1") <= 60_000


async def test_retried_and_overlapping_batches_keep_the_window_exact(
    cache: RedisSessionStore, other: RedisSessionStore, inner: CountingStore
) -> None:
    await flush(cache, header("s1", turn_count=5), turns("a", range(5)))
    await flush(cache, header("s1", turn_count=5), turns("a", range(3, 5)))  # retry
    await flush(cache, header("s1", turn_count=8), list(reversed(turns("b", range(5, 8)))))
    # A batch with a gap updates what the window holds and does not extend it.
    gap = [*turns("c", range(1, 2)), *turns("c", range(9, 10))]
    await flush(cache, header("s1", turn_count=8), gap)
    inner.calls.clear()
    got = await other.get_own_turns("s1", 0, 0, 8)
    assert [t.turn_id for t in got] == ["a-0", "c-1", "a-2", "a-3", "a-4", "b-5", "b-6", "b-7"]
    assert inner.calls["get_own_turns"] == 0
    assert got == await inner.get_own_turns("s1", 0, 0, 8)


async def test_delete_invalidates_everything(
    cache: RedisSessionStore, other: RedisSessionStore, inner: CountingStore
) -> None:
    await flush(cache, header("s1", turn_count=3), turns("a", range(3)))
    await cache.add_generation("s1", 1, 0, 2)
    await flush(cache, header("s1", generation=1, turn_count=3), turns("g", range(2, 3)))
    await flush(cache, header("keep", turn_count=1), turns("k", range(1)))
    assert len(await other.list_sessions("u1")) == 2  # cached listing
    assert (await other.get_session("s1")) is not None

    assert await cache.delete_session("s1") is True

    for reader in (cache, other):
        assert await reader.get_session("s1") is None
        assert await reader.get_own_turns("s1", 0, 0, 3) == []
        assert await reader.get_own_turns("s1", 1, 0, 3) == []
        assert await reader.get_generation_parent("s1", 1) is None
        assert [s.session_id for s in await reader.list_sessions("u1")] == ["keep"]
        assert await reader.count_live_sessions("u1") == 1
    keys = [k async for k in cache.redis.scan_iter(match=f"{cache.prefix}*:s1*")]
    assert all(b"version" in k for k in keys), keys

    # A session re-created under the same id is cached afresh.
    await flush(cache, header("s1", turn_count=1), turns("new", range(1)))
    assert [t.turn_id for t in await other.get_own_turns("s1", 0, 0, 1)] == ["new-0"]


async def test_user_listing_is_served_and_kept_current(
    cache: RedisSessionStore, other: RedisSessionStore, inner: CountingStore
) -> None:
    await flush(cache, header("a", created_at=T0 + timedelta(seconds=2)))
    await flush(cache, header("b", created_at=T0 + timedelta(seconds=1)))
    await flush(cache, header("x", user_id="u2"))
    assert [s.session_id for s in await other.list_sessions("u1")] == ["b", "a"]
    inner.calls.clear()

    await flush(cache, header("c", created_at=T0 + timedelta(seconds=3)))  # a new session
    await flush(
        cache, header("a", status=SessionStatus.CLOSED, created_at=T0 + timedelta(seconds=2))
    )
    assert [s.session_id for s in await other.list_sessions("u1")] == ["b", "a", "c"]
    assert [s.session_id for s in await other.list_sessions("u1", SessionStatus.ACTIVE)] == [
        "b",
        "c",
    ]
    assert [s.session_id for s in await other.list_sessions("u1", limit=1)] == ["b"]
    assert await other.count_live_sessions("u1") == 2
    assert inner.reads() == 0, inner.calls

    assert await other.list_sessions("nobody") == []  # an empty listing is cached too
    assert await other.list_sessions("nobody") == []
    assert inner.calls["list_sessions"] == 1
    assert [s.session_id for s in await other.list_sessions()] == ["x", "b", "a", "c"]


async def test_branch_listing_is_served_and_kept_current(
    cache: RedisSessionStore, other: RedisSessionStore, inner: CountingStore
) -> None:
    await flush(cache, header("p"))
    await flush(cache, header("b1", parent_session_id="p", fork_seq=0))
    assert [s.session_id for s in await other.list_branches("p")] == ["b1"]
    await flush(
        cache, header("b2", parent_session_id="p", fork_seq=0, created_at=T0 + timedelta(1))
    )
    inner.calls.clear()
    assert [s.session_id for s in await other.list_branches("p")] == ["b1", "b2"]
    assert inner.reads() == 0
    await cache.delete_session("b1")
    assert [s.session_id for s in await other.list_branches("p")] == ["b2"]


class PausingStore(InMemorySessionStore):
    """After ``pause()``, the next ``get_session`` reads, then waits to be released."""

    def __init__(self) -> None:
        super().__init__()
        self.read_done = asyncio.Event()
        self.release = asyncio.Event()
        self._armed = False

    def pause(self) -> None:
        self._armed = True
        self.read_done.clear()
        self.release.clear()

    async def get_session(self, session_id: str) -> SessionState | None:
        state = await super().get_session(session_id)
        if self._armed:
            self._armed = False
            self.read_done.set()
            await self.release.wait()
        return state


async def test_a_slow_reader_never_puts_back_an_older_header(
    redis_test_url: str, key_prefix: str
) -> None:
    inner = PausingStore()
    await inner.upsert_session(header("s1", turn_count=1))
    reader = RedisSessionStore(redis_test_url, inner, prefix=key_prefix)
    writer = RedisSessionStore(redis_test_url, inner, prefix=key_prefix)
    try:
        inner.pause()
        slow = asyncio.create_task(reader.get_session("s1"))  # misses, reads turn_count=1
        await inner.read_done.wait()
        await flush(writer, header("s1", turn_count=2), turns("a", range(1, 2)))
        inner.release.set()
        assert (await slow) == header("s1", turn_count=1)  # what it read, but not cached
        cached = await writer.redis.get(f"{key_prefix}session:s1")
        assert cached is not None
        assert SessionState.model_validate_json(cached).turn_count == 2
        assert (await reader.get_session("s1")) == header("s1", turn_count=2)

        # And a reader racing a delete does not resurrect the session.
        await inner.upsert_session(header("s2"))  # not cached yet: the reader misses
        inner.pause()
        slow = asyncio.create_task(reader.get_session("s2"))
        await inner.read_done.wait()
        assert await writer.delete_session("s2") is True
        inner.release.set()
        assert (await slow) == header("s2")  # read before the delete
        assert await writer.redis.get(f"{key_prefix}session:s2") is None
        assert await reader.get_session("s2") is None
    finally:
        await reader.close()
        await writer.close()


async def test_checkpoints_and_stats_go_to_the_store(
    cache: RedisSessionStore, inner: CountingStore
) -> None:
    cp = Checkpoint(checkpoint_id="c1", session_id="s1", turn_count=1, created_at=T0, reason="auto")
    await flush(cache, header("s1", turn_count=1), turns("a", range(1)), [cp])
    inner.calls.clear()
    assert await cache.get_checkpoint("c1") == cp
    assert await cache.list_checkpoints("s1") == [cp]
    assert (await cache.get_stats("u1")).active == 1
    assert inner.calls["get_checkpoint"] == 1
    assert inner.calls["list_checkpoints"] == 1
    assert inner.calls["get_stats"] == 1


async def test_unreachable_redis_falls_back_to_the_store(
    inner: CountingStore, caplog: pytest.LogCaptureFixture
) -> None:
    # Port 1 refuses connections at once; no retries so the test stays fast.
    client = Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    lenient = RedisSessionStore("redis://unused", inner, client=client, strict=False)
    strict = RedisSessionStore("redis://unused", inner, client=client)
    try:
        with caplog.at_level(logging.WARNING, logger="durable_sessions.stores.redis"):
            await flush(lenient, header("s1", turn_count=1), turns("a", range(1)))
            assert (await lenient.get_session("s1")) == header("s1", turn_count=1)
            assert len(await lenient.get_own_turns("s1", 0, 0, 1)) == 1
            assert [s.session_id for s in await lenient.list_sessions("u1")] == ["s1"]
            assert await lenient.count_live_sessions("u1") == 1
            assert await lenient.list_branches("s1") == []
            assert await lenient.get_generation_parent("s1", 1) is None
        assert any("redis cache" in r.getMessage() for r in caplog.records)

        # Strict: the store took the batch, but the call fails so the activity is retried.
        with pytest.raises(RuntimeError, match="neither be updated nor invalidated"):
            await flush(strict, header("s1", turn_count=2), turns("a", range(1, 2)))
        assert (await inner.get_session("s1")) == header("s1", turn_count=2)
    finally:
        await client.aclose()


async def test_rejected_batches_never_reach_redis(cache: RedisSessionStore) -> None:
    bad = SessionTurn(turn_id="nope", role="user", content="no seq", timestamp=T0)
    with pytest.raises(ValueError, match="seq"):
        await flush(cache, header("s1", turn_count=1), [bad])
    assert [k async for k in cache.redis.scan_iter(match=f"{cache.prefix}*")] == []


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="ttl"):
        RedisSessionStore("redis://x", InMemorySessionStore(), ttl=0)
    with pytest.raises(ValueError, match="recent"):
        RedisSessionStore("redis://x", InMemorySessionStore(), recent=0)


async def test_unreadable_cached_values_fall_back_to_the_store(
    cache: RedisSessionStore, inner: CountingStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A value another code version cached (an unknown field, say) is read from the store."""
    await flush(cache, header("s1", turn_count=2), turns("a", range(2)))
    assert len(await cache.list_sessions("u1")) == 1
    redis = cache.redis
    await redis.set(f"{cache.prefix}session:s1", b'{"session_id": "s1"}')
    await redis.hset(f"{cache.prefix}turns:s1:0", "1", b'{"unknown_field": 1}')
    inner.calls.clear()
    with caplog.at_level(logging.WARNING, logger="durable_sessions.stores.redis"):
        assert (await cache.get_session("s1")) == header("s1", turn_count=2)
        assert [t.turn_id for t in await cache.get_own_turns("s1", 0, 0, 2)] == ["a-0", "a-1"]
        assert [s.session_id for s in await cache.list_sessions("u1")] == ["s1"]
    assert inner.calls["get_session"] == 1
    assert inner.calls["get_own_turns"] == 1
    assert inner.calls["list_sessions"] == 1
    assert "does not parse" in caplog.text

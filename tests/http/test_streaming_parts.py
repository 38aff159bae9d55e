"""The streaming parts on their own: the publisher (coalescing, restart, done, failures), the
in-process channel, sealing with the session key, and NOTIFY's payload limit on PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from durable_sessions.encryption import EncryptionConfig, InMemoryKeyStore, Keyring, SessionCipher
from durable_sessions.stores.postgres import PostgresSessionStore
from durable_sessions.streaming import ChunkEvent, MemoryBroker, TurnPublisher, broker_for_store
from durable_sessions.streaming._postgres import PostgresBroker
from durable_sessions.streaming._sealed import SealedBroker
from tests.integration.conftest import Stack


class SlowBroker:
    """Records what is published; each publish takes ``delay`` seconds (or fails)."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.delay = delay
        self.fail = fail
        self.events: list[ChunkEvent] = []

    async def publish(self, event: ChunkEvent) -> None:
        await asyncio.sleep(self.delay)
        if self.fail:
            raise ConnectionError("down")
        self.events.append(event)

    @asynccontextmanager
    async def subscribe(self, session_id: str) -> AsyncIterator[AsyncIterator[ChunkEvent]]:
        raise NotImplementedError
        yield


def publisher(broker: object, attempt: int = 1) -> TurnPublisher:
    return TurnPublisher(broker, session_id="s", turn_id="t", agent="a", attempt=attempt)  # type: ignore[arg-type]


async def test_publisher_coalesces_chunks_while_a_send_is_in_flight() -> None:
    broker = SlowBroker(delay=0.05)
    async with publisher(broker) as pub:
        for i in range(20):
            pub.add(f"{i},")
            await asyncio.sleep(0.005)
    deltas = [e for e in broker.events if e.kind == "delta"]
    assert "".join(e.text for e in deltas) == "".join(f"{i}," for i in range(20))
    assert sum(e.chunks for e in deltas) == 20 and pub.chunks == 20
    assert [e.index for e in deltas] == [
        sum(d.chunks for d in deltas[:k]) for k in range(len(deltas))
    ]
    assert 1 < len(deltas) < 20  # batched, not one event per chunk, not all at once
    assert broker.events[-1].kind == "done" and broker.events[-1].index == 20


async def test_a_retried_attempt_starts_with_restart_and_failures_are_swallowed() -> None:
    broker = SlowBroker()
    async with publisher(broker, attempt=2) as pub:
        pub.add("x")
    assert [e.kind for e in broker.events] == ["restart", "delta", "done"]
    assert broker.events[0].attempt == 2
    async with publisher(SlowBroker(fail=True)) as pub:  # a dead channel never fails the turn
        pub.add("x")
    broker = SlowBroker()
    try:
        async with publisher(broker) as pub:
            pub.add("x")
            raise RuntimeError("agent failed")
    except RuntimeError:
        pass
    assert [e.kind for e in broker.events] == ["delta"]  # no "done" for a failed attempt


async def test_memory_broker_delivers_only_to_the_sessions_subscribers() -> None:
    broker = MemoryBroker()
    event = ChunkEvent(kind="delta", session_id="s1", turn_id="t", agent="a", attempt=1, text="hi")
    async with broker.subscribe("s1") as mine, broker.subscribe("s2") as other:
        await broker.publish(event)
        await broker.publish(event.model_copy(update={"session_id": "s2", "text": "yo"}))
        assert (await anext(mine)).text == "hi"
        assert (await anext(other)).text == "yo"
    assert broker.fanout.empty()


async def test_sealed_broker_puts_no_text_on_the_channel() -> None:
    config = EncryptionConfig(keys={"k1": secrets.token_bytes(32)}, active="k1")
    cipher = SessionCipher(Keyring(config, InMemoryKeyStore()))
    inner = MemoryBroker()
    sealed = SealedBroker(inner, cipher)
    event = ChunkEvent(
        kind="delta", session_id="s", turn_id="t", agent="a", attempt=1, text="secret"
    )
    async with inner.subscribe("s") as raw, sealed.subscribe("s") as opened:
        await sealed.publish(event)
        wire, got = await anext(raw), await anext(opened)
    assert "secret" not in wire.text and SessionCipher.is_token(wire.text)
    assert got.text == "secret"


async def test_postgres_notify_splits_long_batches_and_isolates_schemas(stack: Stack) -> None:
    store = stack.store
    assert isinstance(store, PostgresSessionStore)
    broker = broker_for_store(store)
    assert isinstance(broker, PostgresBroker) and broker_for_store(store) is broker
    other = PostgresBroker(PostgresSessionStore(store.dsn, schema="another_schema"))
    assert other.channel("s") != broker.channel("s")
    text = "é" * 4000  # 8000 bytes of UTF-8: over one notification's limit
    event = ChunkEvent(
        kind="delta", session_id="s-long", turn_id="t", agent="a", attempt=1, text=text, chunks=3
    )
    async with broker.subscribe("s-long") as events:
        await broker.publish(event)
        parts = [await asyncio.wait_for(anext(events), 5) for _ in range(3)]
    assert "".join(p.text for p in parts) == text
    assert [p.chunks for p in parts] == [0, 0, 3]

"""Side channel for streamed chunks: ``StreamBroker`` and the in-process ``MemoryBroker``.

Chunks do not go through Temporal at all: the agent's activity publishes them here while it
runs, and subscribers (``SessionManager.stream``, SSE, the viewer) read them here. Only the
final turn goes through the workflow, once, as a normal activity result. The channel is
best-effort and holds nothing: a subscriber sees the chunks published while it listens, and a
crashed attempt is followed by a ``restart`` event when the activity is retried.

``broker_for_store`` picks the channel from the store the process already uses: PostgreSQL
``LISTEN/NOTIFY`` for a PostgreSQL store (also behind the Redis cache: every process of a
deployment shares it), else ``MemoryBroker`` (one process: the embedded dev
setup). With an encrypting store, chunk text is sealed with the session's key before it leaves
the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from durable_sessions.streaming._events import ChunkEvent

__all__ = ["Fanout", "MemoryBroker", "StreamBroker", "broker_for_store"]

QUEUE_LIMIT = 10_000
"""Events kept per slow subscriber; past it the oldest are dropped (chunks are best-effort)."""


class StreamBroker(Protocol):
    """Publishes chunk events and hands them to subscribers of the same session."""

    async def publish(self, event: ChunkEvent) -> None: ...

    def subscribe(self, session_id: str) -> Any:
        """An async context manager yielding an ``AsyncIterator[ChunkEvent]``."""
        ...


class Fanout:
    """Per-process subscribers by session: one bounded queue each, any event loop."""

    def __init__(self) -> None:
        self._subs: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[ChunkEvent]]]]
        self._subs = {}

    def empty(self) -> bool:
        return not self._subs

    def has(self, session_id: str) -> bool:
        return bool(self._subs.get(session_id))

    def add(self, session_id: str) -> asyncio.Queue[ChunkEvent]:
        queue: asyncio.Queue[ChunkEvent] = asyncio.Queue(QUEUE_LIMIT)
        self._subs.setdefault(session_id, set()).add((asyncio.get_running_loop(), queue))
        return queue

    def remove(self, session_id: str, queue: asyncio.Queue[ChunkEvent]) -> bool:
        """Drop a subscriber; True when it was the session's last."""
        subs = self._subs.get(session_id, set())
        for item in [s for s in subs if s[1] is queue]:
            subs.discard(item)
        if not subs:
            self._subs.pop(session_id, None)
            return True
        return False

    def deliver(self, event: ChunkEvent) -> None:
        for loop, queue in list(self._subs.get(event.session_id, ())):
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if loop is running:
                _put(queue, event)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(_put, queue, event)


def _put(queue: asyncio.Queue[ChunkEvent], event: ChunkEvent) -> None:
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(event)


async def drain(queue: asyncio.Queue[ChunkEvent]) -> AsyncIterator[ChunkEvent]:
    while True:
        yield await queue.get()


class MemoryBroker:
    """Subscribers in this process only (the worker and the readers share a process)."""

    def __init__(self) -> None:
        self.fanout = Fanout()

    async def publish(self, event: ChunkEvent) -> None:
        self.fanout.deliver(event)

    @asynccontextmanager
    async def subscribe(self, session_id: str) -> AsyncIterator[AsyncIterator[ChunkEvent]]:
        queue = self.fanout.add(session_id)
        try:
            yield drain(queue)
        finally:
            self.fanout.remove(session_id, queue)


_PROCESS_BROKER = MemoryBroker()
_BROKERS: weakref.WeakKeyDictionary[Any, StreamBroker] = weakref.WeakKeyDictionary()


def broker_for_store(store: Any) -> StreamBroker:
    """The side channel that matches ``store`` (see the module docstring); one per store."""
    try:
        return _BROKERS[store]
    except (KeyError, TypeError):
        pass
    from durable_sessions.streaming._sealed import SealedBroker

    cipher = None
    node = store
    broker: StreamBroker | None = None
    while node is not None and broker is None:
        if cipher is None and getattr(node, "cipher", None) is not None:
            cipher = node.cipher
        if hasattr(node, "dsn") and hasattr(node, "_get_pool"):
            from durable_sessions.streaming._postgres import PostgresBroker

            broker = PostgresBroker(node)
        node = getattr(node, "inner", None)
    chosen: StreamBroker = broker or _PROCESS_BROKER
    if cipher is not None:
        chosen = SealedBroker(chosen, cipher)
    with contextlib.suppress(TypeError):  # an unhashable store: no cache
        _BROKERS[store] = chosen
    return chosen

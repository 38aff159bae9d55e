"""``PostgresBroker``: chunks over PostgreSQL ``NOTIFY``, one channel per session.

Publishing is one ``SELECT pg_notify(...)`` on the store's own pool (no table, nothing to clean
up). Each subscribing process holds one extra connection that ``LISTEN``s on the channels of
the sessions it watches, opened with the first subscriber and closed with the last. A
notification is at most ~8000 bytes, so a long batch is split into several events. The channel
name is a hash of the store's schema and the session id: no id in the catalog, and two
schemas of one database never cross.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from durable_sessions.streaming._broker import Fanout, drain
from durable_sessions.streaming._events import ChunkEvent

__all__ = ["PostgresBroker"]

MAX_TEXT_CHARS = 1500
"""Characters of chunk text per notification (4 bytes each at most, well under 8000 bytes)."""


class PostgresBroker:
    """``NOTIFY`` through the store's pool; ``LISTEN`` on one dedicated connection.

    Args:
        owner: the PostgreSQL store (anything with ``dsn``, ``schema`` and ``_get_pool``).
    """

    def __init__(self, owner: Any) -> None:
        self.owner = owner
        self.fanout = Fanout()
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()

    def channel(self, session_id: str) -> str:
        digest = hashlib.sha256(f"{self.owner.schema}\x00{session_id}".encode()).hexdigest()
        return f"ds_stream_{digest[:40]}"

    async def publish(self, event: ChunkEvent) -> None:
        pool = await self.owner._get_pool()
        text = event.text
        pieces = [text[i : i + MAX_TEXT_CHARS] for i in range(0, len(text), MAX_TEXT_CHARS)]
        if len(pieces) <= 1:
            payloads = [event.model_dump_json()]
        else:  # the last piece carries the batch's chunk count, the others none
            payloads = [
                event.model_copy(
                    update={"text": piece, "chunks": event.chunks if i == len(pieces) - 1 else 0}
                ).model_dump_json()
                for i, piece in enumerate(pieces)
            ]
        channel = self.channel(event.session_id)
        async with pool.acquire() as conn:
            for payload in payloads:
                await conn.execute("SELECT pg_notify($1, $2)", channel, payload)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            event = ChunkEvent.model_validate_json(payload)
        except ValueError:
            return
        self.fanout.deliver(event)

    async def _listener(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self.owner.dsn)
        return self._conn

    @asynccontextmanager
    async def subscribe(self, session_id: str) -> AsyncIterator[AsyncIterator[ChunkEvent]]:
        channel = self.channel(session_id)
        async with self._lock:
            first = not self.fanout.has(session_id)
            queue = self.fanout.add(session_id)
            try:
                if first:
                    conn = await self._listener()
                    await conn.add_listener(channel, self._on_notify)
            except BaseException:
                self.fanout.remove(session_id, queue)
                raise
        try:
            yield drain(queue)
        finally:
            async with self._lock:
                last = self.fanout.remove(session_id, queue)
                conn = self._conn
                if last and conn is not None and not conn.is_closed():
                    with contextlib.suppress(
                        asyncpg.PostgresError, OSError, asyncpg.InterfaceError
                    ):
                        await conn.remove_listener(channel, self._on_notify)
                if self.fanout.empty() and conn is not None:
                    self._conn = None
                    await conn.close()

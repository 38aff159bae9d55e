"""``SealedBroker``: chunk text sealed with the session's data key on the wire.

With an encrypting store (``encryption=`` on the client), turns are stored encrypted; their
chunks must not cross PostgreSQL in plaintext either. The text of every event is replaced by a
token of the store's ``SessionCipher`` before publishing and opened after receiving, so a
deleted (crypto-erased) session's chunks cannot be read, like its turns.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from durable_sessions.streaming._broker import StreamBroker
from durable_sessions.streaming._events import ChunkEvent

__all__ = ["SealedBroker"]


class SealedBroker:
    def __init__(self, inner: StreamBroker, cipher: Any) -> None:
        self.inner = inner
        self.cipher = cipher

    async def publish(self, event: ChunkEvent) -> None:
        if event.text:
            sealed = await self.cipher.encrypt_text(event.session_id, event.text)
            event = event.model_copy(update={"text": sealed})
        await self.inner.publish(event)

    async def _open(self, events: AsyncIterator[ChunkEvent]) -> AsyncIterator[ChunkEvent]:
        async for event in events:
            if event.text:
                try:
                    text = await self.cipher.decrypt_text(event.session_id, event.text)
                except Exception:  # erased meanwhile, or not ours: skip the chunk
                    continue
                event = event.model_copy(update={"text": text})
            yield event

    @asynccontextmanager
    async def subscribe(self, session_id: str) -> AsyncIterator[AsyncIterator[ChunkEvent]]:
        async with self.inner.subscribe(session_id) as events:
            yield self._open(events)

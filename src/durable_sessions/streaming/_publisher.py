"""``TurnPublisher``: what an agent's activity uses to stream one turn's chunks.

Chunks are sent as soon as they come; while one send is in flight, the chunks that arrive are
coalesced into the next event, so a fast agent costs fewer events than chunks and a slow one
sees no added delay. A failed send is logged and dropped: the turn itself never depends on its
stream (it is stored from the activity's result). Attempt ``n > 1`` of the activity starts
with a ``restart`` event: subscribers drop what they got for the turn and start over.
"""

from __future__ import annotations

import asyncio
import logging
import time

from durable_sessions.streaming._broker import StreamBroker
from durable_sessions.streaming._events import ChunkEvent

__all__ = ["TurnPublisher"]

log = logging.getLogger("durable_sessions.streaming")


class TurnPublisher:
    """Streams one attempt of one turn. Use as ``async with``; ``add`` each chunk."""

    def __init__(
        self,
        broker: StreamBroker,
        *,
        session_id: str,
        turn_id: str,
        agent: str,
        attempt: int,
    ) -> None:
        self.broker = broker
        self.base = ChunkEvent(
            kind="delta", session_id=session_id, turn_id=turn_id, agent=agent, attempt=attempt
        )
        self.chunks = 0
        self.events = 0
        """Delta events sent (each carries one or more chunks)."""
        self._buffer: list[str] = []
        self._buffer_start = 0
        self._last_at = 0.0
        self._wake = asyncio.Event()
        self._closing = False
        self._sender: asyncio.Task[None] | None = None

    async def __aenter__(self) -> TurnPublisher:
        if self.base.attempt > 1:
            await self._send(self.base.model_copy(update={"kind": "restart"}))
        self._sender = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, exc_type: object, *exc: object) -> None:
        self._closing = True
        self._wake.set()
        if self._sender is not None:
            await self._sender
        if exc_type is None:
            await self._send(self.base.model_copy(update={"kind": "done", "index": self.chunks}))

    def add(self, chunk: str) -> None:
        """Queue a chunk (never blocks the agent)."""
        if not chunk:
            return
        if not self._buffer:
            self._buffer_start = self.chunks
        self._buffer.append(chunk)
        self.chunks += 1
        self._last_at = time.time()
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._buffer:
                text, start, n = "".join(self._buffer), self._buffer_start, len(self._buffer)
                self._buffer = []
                update = {"text": text, "index": start, "chunks": n, "at": self._last_at}
                await self._send(self.base.model_copy(update=update))
                self.events += 1
            if self._closing and not self._buffer:
                return

    async def _send(self, event: ChunkEvent) -> None:
        try:
            await self.broker.publish(event)
        except Exception as exc:  # best-effort: the stored turn never depends on it
            log.warning("could not publish a chunk event: %s", type(exc).__name__)

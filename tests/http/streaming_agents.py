"""Agents that stream, for the streaming tests, the viewer test and bench_streaming.

``python -m durable_sessions.worker`` loads them with
``DURABLE_SESSIONS_AGENTS=tests.http.streaming_agents:agents``; ``STREAM_TEST_CHUNKS`` and
``STREAM_TEST_DELAY`` (seconds between chunks) tune them in a worker process.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

from durable_sessions.agents import AgentContext, AgentReply


def chunk_text(i: int) -> str:
    return f"c{i:02d} "


class ChunkAgent:
    """Yields ``chunks`` chunks ``delay`` seconds apart; records when it yielded each."""

    def __init__(self, name: str = "streamer", chunks: int = 50, delay: float = 0.02) -> None:
        self.name = name
        self.chunks = chunks
        self.delay = delay
        self.yielded: list[tuple[int, float]] = []
        """(chunk index, time.time() when yielded), every attempt."""

    def full_text(self) -> str:
        return "".join(chunk_text(i) for i in range(self.chunks))

    async def respond(self, context: AgentContext) -> str | AgentReply:
        return self.full_text()

    async def stream(self, context: AgentContext) -> AsyncIterator[str]:
        for i in range(self.chunks):
            await asyncio.sleep(self.delay)
            self.yielded.append((i, time.time()))
            yield chunk_text(i)


class PlainAgent:
    """Answers at once, without streaming (the history baseline)."""

    def __init__(self, name: str = "plain") -> None:
        self.name = name

    async def respond(self, context: AgentContext) -> str | AgentReply:
        return "plain answer"


def agents() -> list[object]:
    chunks = int(os.environ.get("STREAM_TEST_CHUNKS", "50"))
    delay = float(os.environ.get("STREAM_TEST_DELAY", "0.02"))
    return [ChunkAgent("streamer", chunks, delay), PlainAgent()]

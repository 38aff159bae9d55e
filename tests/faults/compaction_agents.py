"""A slow summarizer agent for the compaction crash test, loaded by worker processes through
``DURABLE_SESSIONS_AGENTS=tests.faults.compaction_agents:agents``.

Each call sleeps (so a test can kill the worker between summaries), appends ``pid lo last`` to
the file named by ``DURABLE_SESSIONS_TEST_SCRIBE_LOG`` before answering, and signs its summary
with its process id, so the test can tell which process wrote each stored summary.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from durable_sessions.agents import AgentContext

_RANGE = re.compile(r"turns (\d+)-(\d+)")


def _append(line: str) -> None:
    with Path(os.environ["DURABLE_SESSIONS_TEST_SCRIBE_LOG"]).open("a") as log:
        log.write(line)


class SlowScribe:
    name = "slow-scribe"

    async def respond(self, context: AgentContext) -> str:
        await asyncio.sleep(0.25)
        match = _RANGE.search(context.turns[-1].content)
        assert match is not None, "the compaction instruction names the range"
        lo, last = match.groups()
        pid = os.getpid()
        await asyncio.to_thread(_append, f"{pid} {lo} {last}\n")
        return f"[{pid}] {len(context.turns) - 1} sources from {lo} to {last}."


def agents() -> list[SlowScribe]:
    return [SlowScribe()]

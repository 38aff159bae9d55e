"""Compaction inside the context activity: write the summaries a context needs, then budget.

Why here: the context activity already holds the session's transcript (worker cache) and runs
outside workflow code, so it can read turns, call a summarizer (an LLM agent may take seconds)
and write to the store. Only summary *ranges* cross Temporal in the activity's result; their
text stays in the store.

Crash safety: each summary is stored the moment it is written, insert-or-nothing, and the
activity heartbeats after each one. An attempt killed mid-way leaves the summaries it finished;
the retry reads them back and writes only the missing ones, so each range is written once (a
summary whose write the crash interrupted is summarized again, and stored once).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

from temporalio import activity
from temporalio.exceptions import ApplicationError

from durable_sessions.agents import Agent, AgentContext
from durable_sessions.core.clock import utcnow
from durable_sessions.core.compaction import (
    EXTRACTIVE,
    Span,
    Summary,
    SummaryRef,
    arrange,
    children,
    compactable_end,
    cover,
    extractive_summary,
    fit_newest,
    plan_work,
    render_content,
    summary_turn,
    text_budget,
    truncate_to_tokens,
)
from durable_sessions.core.pruning import turn_tokens
from durable_sessions.core.tokens import count_tokens
from durable_sessions.models import CompactionConfig, SessionTurn
from durable_sessions.stores._summaries import SummaryStore
from durable_sessions.stores.base import Segment, SessionStore, resolve_segments

__all__ = ["CompactionPlan", "Compactor", "heartbeating", "with_summaries"]

INSTRUCTION = (
    "Summarize the conversation above (turns {lo}-{last}) in at most {tokens} tokens for "
    "someone who will continue it. Keep names, dates, numbers, decisions and open questions. "
    "Plain sentences, no preamble."
)


@contextlib.asynccontextmanager
async def heartbeating() -> AsyncIterator[None]:
    """Heartbeat in the background while the body runs, when the activity has a heartbeat
    timeout: a worker that dies mid-compaction is then noticed within that timeout instead of
    the start-to-close one, however long one summary or one transcript read takes."""
    timeout = activity.info().heartbeat_timeout if activity.in_activity() else None
    if not timeout:
        yield
        return
    interval = timeout.total_seconds() / 3

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(interval)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass(frozen=True)
class CompactionPlan:
    """What a context gets: the summaries to show, and what is left for turns."""

    summaries: list[Summary]
    max_turns: int | None
    max_tokens: int
    written: int = 0
    """Summaries this call wrote (0 when every range was stored already)."""

    def refs(self) -> list[SummaryRef]:
        return [
            SummaryRef(session_id=s.session_id, generation=s.generation, lo=s.lo, hi=s.hi)
            for s in self.summaries
        ]


def _deadline() -> float | None:
    """Half the activity's start-to-close timeout from now: the rest is for pruning and slack."""
    if not activity.in_activity():
        return None
    timeout = activity.info().start_to_close_timeout
    return None if timeout is None else time.monotonic() + timeout.total_seconds() / 2


def _owner(segments: Sequence[Segment], seq: int) -> Segment:
    for seg in segments:
        if seg.lo <= seq < seg.hi:
            return seg
    raise ValueError(f"turn {seq} is outside the transcript")


def _exceeds(history: Sequence[SessionTurn], budget: int) -> bool:
    """Whether the transcript holds more than ``budget`` tokens (newest first: stops early)."""
    total = 0
    for turn in reversed(history):
        total += turn_tokens(turn)
        if total > budget:
            return True
    return False


class Compactor:
    """Writes missing summaries for transcripts (one session at a time) and budgets contexts.

    Args:
        store: A store with summaries (:class:`~durable_sessions.stores._summaries.SummaryStore`).
        agents: Agents by name, for ``CompactionConfig.summarizer``.
    """

    def __init__(self, store: SessionStore, agents: Mapping[str, Agent] | None = None) -> None:
        self.store = store
        self.agents = dict(agents or {})
        self._locks: OrderedDict[str, asyncio.Lock] = OrderedDict()

    def _summaries(self) -> SummaryStore:
        if not isinstance(self.store, SummaryStore):
            raise ApplicationError(
                f"compaction needs a store with summaries; {type(self.store).__name__} has none",
                type="CompactionUnsupported",
                non_retryable=True,
            )
        return self.store

    def _lock(self, session_id: str) -> asyncio.Lock:
        lock = self._locks.pop(session_id, None) or asyncio.Lock()
        self._locks[session_id] = lock
        while len(self._locks) > 1024:
            old_id, old = next(iter(self._locks.items()))
            if old.locked():
                break
            del self._locks[old_id]
        return lock

    async def plan(
        self,
        session_id: str,
        generation: int,
        history: Sequence[SessionTurn],
        config: CompactionConfig,
        max_turns: int | None,
        max_tokens: int | None,
    ) -> CompactionPlan:
        """Budgets for a context over ``history``, writing missing summaries first when the
        transcript no longer fits ``config.budget_tokens`` (or ``max_tokens`` when smaller)."""
        budget = config.budget_tokens
        if max_tokens is not None:
            budget = min(budget, max_tokens)
        if not _exceeds(history, budget):
            return CompactionPlan([], max_turns, budget)
        end = compactable_end(len(history), config)
        if end == 0:
            return CompactionPlan([], max_turns, budget)
        targets = cover(end, config.chunk_turns, config.fanout)
        summaries, written = await self.ensure(
            session_id, generation, history, config, targets, _deadline()
        )
        system = sum(turn_tokens(t) for t in history if t.role == "system")
        kept = fit_newest(summaries, max(0, budget - system), max_turns)
        return CompactionPlan(
            kept,
            None if max_turns is None else max_turns - len(kept),
            budget - sum(s.tokens for s in kept),
            written,
        )

    async def ensure(
        self,
        session_id: str,
        generation: int,
        history: Sequence[SessionTurn],
        config: CompactionConfig,
        targets: Sequence[Span],
        deadline: float | None = None,
    ) -> tuple[list[Summary], int]:
        """The stored summaries of ``targets``, writing the missing ones (and the children a
        missing higher-level one is written from), newest target first.

        Past ``deadline`` (``time.monotonic()``) no further summary is started, so a long
        backlog (an LLM summarizer, compaction turned on late) never makes a context call
        time out: the call returns the newest targets done (at least one is written per call),
        and later calls carry on where it stopped.
        """
        store = self._summaries()
        turn_count = len(history)
        async with self._lock(session_id):
            segments = await resolve_segments(self.store, session_id, generation, turn_count)
            end = max(t.hi for t in targets)
            have: dict[tuple[int, int], Summary] = {}
            for seg in segments:
                if seg.lo < end:
                    for s in await store.list_summaries(
                        seg.session_id, seg.generation, seg.lo, min(seg.hi, end)
                    ):
                        have[(s.lo, s.hi)] = s
            work = plan_work(targets[::-1], config.fanout, lambda sp: (sp.lo, sp.hi) in have)
            written = 0
            for span in work:
                owner = _owner(segments, span.hi - 1)
                summary = await self._write(span, owner, session_id, history, have, config)
                if await store.put_summary(summary):
                    written += 1
                else:  # another writer was first: use what it stored
                    stored = await store.list_summaries(
                        owner.session_id, owner.generation, span.hi - 1, span.hi
                    )
                    summary = next(s for s in stored if s.lo == span.lo)
                have[(span.lo, span.hi)] = summary
                if activity.in_activity():
                    activity.heartbeat(written)
                if deadline is not None and time.monotonic() > deadline:
                    break
            return [have[(t.lo, t.hi)] for t in targets if (t.lo, t.hi) in have], written

    async def _write(
        self,
        span: Span,
        owner: Segment,
        session_id: str,
        history: Sequence[SessionTurn],
        have: Mapping[tuple[int, int], Summary],
        config: CompactionConfig,
    ) -> Summary:
        limit = text_budget(span.lo, span.hi, config.summary_tokens)
        if span.level == 1:
            sources = list(history[span.lo : span.hi])
        else:
            sources = [
                SessionTurn(role="system", content=have[(c.lo, c.hi)].content)
                for c in children(span, config.fanout)
            ]
        if config.summarizer is None:
            items = [("" if span.level > 1 else (t.agent or t.role), t.content) for t in sources]
            text = await asyncio.to_thread(extractive_summary, items, limit)  # CPU, off the loop
            name = EXTRACTIVE
        else:
            text = await self._ask(config.summarizer, session_id, span, sources, limit)
            name = config.summarizer
        text = text.replace("\x00", "").strip() or "(nothing to summarize)"
        return Summary(
            session_id=owner.session_id,
            generation=owner.generation,
            lo=span.lo,
            hi=span.hi,
            level=span.level,
            content=text,
            tokens=count_tokens(render_content(span.lo, span.hi, text)),
            summarizer=name,
            created_at=utcnow(),
        )

    async def _ask(
        self, name: str, session_id: str, span: Span, sources: list[SessionTurn], limit: int
    ) -> str:
        agent = self.agents.get(name)
        if agent is None:
            raise ApplicationError(
                "the compaction summarizer is not an agent registered on this worker",
                type="UnknownSummarizer",
                non_retryable=True,
            )
        ask = INSTRUCTION.format(lo=span.lo, last=span.hi - 1, tokens=limit)
        reply = await agent.respond(
            AgentContext(
                session_id=session_id,
                agent=name,
                role="summarizer",
                turns=[*sources, SessionTurn(role="user", content=ask)],
            )
        )
        text = reply if isinstance(reply, str) else reply.content
        return truncate_to_tokens(text, limit)


async def with_summaries(
    store: SessionStore, turns: Sequence[SessionTurn], refs: Sequence[SummaryRef]
) -> list[SessionTurn]:
    """A context's turns with the summaries its activity chose, in reading order
    (:func:`~durable_sessions.core.compaction.arrange`)."""
    if not refs:
        return list(turns)
    if not isinstance(store, SummaryStore):
        raise TypeError(f"{type(store).__name__} has no summaries")
    found: list[SessionTurn] = []
    for ref in refs:
        rows = await store.list_summaries(ref.session_id, ref.generation, ref.hi - 1, ref.hi)
        found.extend(summary_turn(s) for s in rows if s.lo == ref.lo)
    return arrange(turns, found)

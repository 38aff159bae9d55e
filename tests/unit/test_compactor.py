"""Compaction in the context activity, over the in-memory store: lineage, idempotence, budgets.

The activity method is called directly (no Temporal): what it does with the store and the
budgets does not depend on how it is scheduled.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from durable_sessions.activities.compaction import Compactor, heartbeating, with_summaries
from durable_sessions.activities.context import ContextActivities, ContextRequest
from durable_sessions.agents import AgentContext
from durable_sessions.core.compaction import (
    Summary,
    compactable_end,
    cover,
    plan_work,
    summary_turn,
)
from durable_sessions.core.pruning import turn_tokens
from durable_sessions.models import CompactionConfig, SessionState, SessionTurn
from durable_sessions.stores.base import PersistBatch, SessionStore, read_transcript
from durable_sessions.stores.memory import InMemorySessionStore

T0 = datetime(2025, 1, 1, tzinfo=UTC)
CFG = CompactionConfig(
    budget_tokens=400, chunk_turns=20, fanout=2, keep_recent_turns=0, summary_tokens=60
)


def say(tag: str, seq: int) -> SessionTurn:
    role = "system" if seq == 0 else ("user" if seq % 2 else "assistant")
    return SessionTurn(role=role, content=f"{tag} note {seq} about topic {seq % 7}.", seq=seq)


def header(session_id: str, turn_count: int, **fields: object) -> SessionState:
    return SessionState(
        session_id=session_id,
        user_id="u",
        created_at=T0,
        updated_at=T0,
        turn_count=turn_count,
        **fields,  # type: ignore[arg-type]
    )


async def lineage() -> InMemorySessionStore:
    """``p`` gen 0: 300 turns; branch ``b`` forked at 130 with 170 turns of its own; ``p``
    restored to 110 (gen 1) with 140 new turns."""
    store = InMemorySessionStore()
    await store.persist(
        PersistBatch(state=header("p", 300), turns=[say("zebra", i) for i in range(300)])
    )
    await store.persist(
        PersistBatch(
            state=header("b", 300, parent_session_id="p", parent_generation=0, fork_seq=130),
            turns=[say("kiwi", i) for i in range(130, 300)],
        )
    )
    await store.add_generation("p", 1, 0, 110)
    await store.persist(
        PersistBatch(
            state=header("p", 250, generation=1), turns=[say("yak", i) for i in range(110, 250)]
        )
    )
    return store


async def compact(
    compactor: Compactor, store: SessionStore, session_id: str, generation: int, n: int
) -> tuple[list[Summary], int, list[SessionTurn]]:
    history = await read_transcript(store, session_id, generation=generation, turn_count=n)
    targets = cover(compactable_end(n, CFG), CFG.chunk_turns, CFG.fanout)
    summaries, written = await compactor.ensure(session_id, generation, history, CFG, targets)
    assert [(s.lo, s.hi) for s in summaries] == [(t.lo, t.hi) for t in targets]
    return summaries, written, history


def assert_from_own_turns(summaries: list[Summary], history: list[SessionTurn]) -> None:
    """Every line of every summary is a sentence of a turn in the summary's own range of this
    transcript: nothing leaks from another branch or generation."""
    for s in summaries:
        sentences = {t.content for t in history[s.lo : s.hi]}
        for line in s.content.splitlines():
            assert line.split(": ", 1)[1] in sentences, (s.lo, s.hi, line)


async def test_summaries_are_written_once_and_shared_along_the_lineage() -> None:
    store = await lineage()
    compactor = Compactor(store)
    every = plan_work(cover(300, 20, 2), 2, lambda s: False)

    parent, written, history = await compact(compactor, store, "p", 0, 300)
    assert written == len(every)
    assert_from_own_turns(parent, history)
    again, written_again, _ = await compact(compactor, store, "p", 0, 300)
    assert written_again == 0 and again == parent  # idempotent: read back, not rewritten

    # The branch reuses every range that ends at or before its fork point (owned by "p") and
    # writes the others under its own id.
    branch, written, history = await compact(compactor, store, "b", 0, 300)
    assert written == sum(1 for s in every if s.hi > 130)
    assert_from_own_turns(branch, history)
    assert await store.list_summaries("b", 0, 0, 130) == []
    assert [(s.lo, s.hi) for s in await store.list_summaries("b", 0, 130, 300)] == sorted(
        ((s.lo, s.hi) for s in every if s.hi > 130), key=lambda r: (r[1], r[0])
    )
    quoted = [int(w.split()[3]) for s in branch for w in s.content.splitlines() if "zebra" in w]
    assert quoted and max(quoted) < 130  # the parent's turns, only from before the fork

    # The restored generation keeps what ends at or before 110 and drops the rest.
    restored, written, history = await compact(compactor, store, "p", 1, 250)
    assert all(s.generation == (0 if s.hi <= 110 else 1) for s in restored)
    assert_from_own_turns(restored, history)
    assert written == sum(1 for s in plan_work(cover(240, 20, 2), 2, lambda s: False) if s.hi > 110)

    # Deleting the branch removes its summaries, never its parent's.
    await store.delete_session("b")
    assert await store.list_summaries("b", 0, 0, 300) == []
    assert len(await store.list_summaries("p", 0, 0, 300)) == len(every)


@pytest.mark.parametrize("seed", range(6))
async def test_compacted_context_stays_within_every_budget(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randrange(150, 900)
    turns = [
        SessionTurn(
            role="system" if i % 97 == 0 else rng.choice(["user", "assistant"]),
            content=" ".join(f"w{rng.randrange(300)}" for _ in range(rng.randrange(3, 40))) + ".",
            seq=i,
        )
        for i in range(n)
    ]
    store = InMemorySessionStore()
    await store.persist(PersistBatch(state=header("s", n), turns=turns))
    cfg = CompactionConfig(
        budget_tokens=rng.choice([600, 1500, 4000]),
        chunk_turns=rng.choice([10, 25, 50]),
        fanout=rng.choice([2, 4]),
        keep_recent_turns=rng.choice([0, 20]),
        summary_tokens=rng.choice([40, 120]),
    )
    max_tokens = rng.choice([None, 500, 3000])
    max_turns = rng.choice([None, 8, 30])
    activities = ContextActivities(store)
    request = ContextRequest(
        session_id="s",
        generation=0,
        turn_count=n,
        query="w7 w42",
        max_turns=max_turns,
        max_tokens=max_tokens,
        pruner=rng.choice(["relevance", "sliding_window", "token_budget"]),
        compaction=cfg,
    )
    result = await activities.compute_context(request)
    context = await with_summaries(store, [turns[i] for i in result.seqs], result.summaries)

    budget = cfg.budget_tokens if max_tokens is None else min(cfg.budget_tokens, max_tokens)
    assert sum(turn_tokens(t) for t in context) <= budget
    assert max_turns is None or len(context) <= max_turns
    summaries = [t for t in context if "summary" in t.metadata]
    assert len(summaries) == len(result.summaries)
    if sum(turn_tokens(t) for t in turns) > budget and compactable_end(n, cfg) > 0:
        end = compactable_end(n, cfg)
        spans = cover(end, cfg.chunk_turns, cfg.fanout)
        kept = [(t.metadata["summary"]["lo"], t.metadata["summary"]["hi"]) for t in summaries]
        assert kept == [(s.lo, s.hi) for s in spans][len(spans) - len(kept) :]  # newest suffix
        if max_turns is None and budget >= 1500:
            assert kept[0][0] == 0  # roomy budgets cover every old range
    else:
        assert summaries == []
    # Reading order: covered system turns, then summaries, then turns by seq.
    rest = [t for t in context if "summary" not in t.metadata]
    assert [t.seq for t in rest if t.seq is not None and t.role != "system"] == sorted(
        t.seq for t in rest if t.seq is not None and t.role != "system"
    )
    again = await activities.compute_context(request)
    assert again.summarized == 0 and again.summaries == result.summaries


class Scribe:
    """A summarizer agent that records what it was asked and answers at length."""

    name = "scribe"

    def __init__(self) -> None:
        self.asked: list[AgentContext] = []

    async def respond(self, context: AgentContext) -> str:
        self.asked.append(context)
        return "Recap: " + " ".join(f"point{i}" for i in range(500))


async def test_an_agent_writes_summaries_cut_to_size() -> None:
    store = await lineage()
    scribe = Scribe()
    cfg = CFG.model_copy(update={"summarizer": "scribe"})
    history = await read_transcript(store, "p", generation=0, turn_count=300)
    compactor = Compactor(store, {"scribe": scribe})
    summaries, written = await compactor.ensure("p", 0, history, cfg, cover(80, 20, 2))
    assert [(s.lo, s.hi, s.level) for s in summaries] == [(0, 80, 3)]
    assert written == len(scribe.asked) == 4 + 2 + 1
    first, top = scribe.asked[0], scribe.asked[-1]
    assert first.role == "summarizer" and first.agent == "scribe"
    assert [t.content for t in first.turns[:-1]] == [t.content for t in history[0:20]]
    assert first.turns[-1].role == "user" and "turns 0-19" in first.turns[-1].content
    assert [t.role for t in top.turns[:-1]] == ["system", "system"]  # its two children
    for s in summaries:
        assert s.summarizer == "scribe" and s.tokens <= cfg.summary_tokens
        assert summary_turn(s).tokens == s.tokens


async def test_misconfiguration_fails_without_retries() -> None:
    store = await lineage()
    history = await read_transcript(store, "p", generation=0, turn_count=300)
    cfg = CFG.model_copy(update={"summarizer": "nobody"})
    with pytest.raises(ApplicationError) as unknown:
        await Compactor(store).ensure("p", 0, history, cfg, cover(40, 20, 2))
    assert unknown.value.type == "UnknownSummarizer" and unknown.value.non_retryable

    class NoSummaries:
        def __getattr__(self, name: str) -> object:
            if name in ("put_summary", "list_summaries"):
                raise AttributeError(name)
            return getattr(store, name)

    with pytest.raises(ApplicationError) as unsupported:
        await Compactor(NoSummaries()).ensure("p", 0, history, CFG, cover(40, 20, 2))  # type: ignore[arg-type]
    assert unsupported.value.type == "CompactionUnsupported" and unsupported.value.non_retryable


async def test_a_deadline_stops_a_backlog_newest_first_and_later_calls_resume() -> None:
    store = await lineage()
    history = await read_transcript(store, "p", generation=0, turn_count=300)
    targets = cover(300, 20, 2)
    every = plan_work(targets, 2, lambda s: False)
    compactor = Compactor(store)
    calls, seen = 0, []
    while True:
        summaries, written = await compactor.ensure("p", 0, history, CFG, targets, deadline=0.0)
        calls += 1
        got = [(s.lo, s.hi) for s in summaries]
        assert got == [(t.lo, t.hi) for t in targets][len(targets) - len(got) :]  # newest first
        seen.append(len(got))
        if written == 0:
            break
        assert written == 1  # past the deadline: one summary per call, never none
    assert calls == len(every) + 1
    assert seen[0] == 1 and seen[-1] == len(targets) and seen == sorted(seen)


@pytest.mark.parametrize("timeout", [None, 0.15])
async def test_heartbeats_in_the_background_only_with_a_heartbeat_timeout(
    timeout: float | None,
) -> None:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info, heartbeat_timeout=None if timeout is None else timedelta(seconds=timeout)
    )
    beats: list[object] = []
    env.on_heartbeat = lambda *details: beats.append(details)

    async def slow_step() -> str:
        # e.g. one LLM summary, longer than the timeout. It runs until 3 heartbeats (~0.15 s)
        # or 0.4 s, whichever is later, at most 5 s: a loaded machine (another thread holding
        # the GIL) delays the beats, and only their absence is a failure.
        loop = asyncio.get_running_loop()
        start = loop.time()
        async with heartbeating():
            while loop.time() - start < 0.4 or (timeout and len(beats) < 3):
                if loop.time() - start > 5.0:
                    break
                await asyncio.sleep(0.05)
        return "done"

    assert await env.run(slow_step) == "done"
    if timeout is None:
        assert beats == []
    else:
        assert len(beats) >= 3  # every timeout / 3 (~8 times) while the step ran

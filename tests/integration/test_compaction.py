"""Compaction end to end: real Temporal dev server, a worker, PostgreSQL.

The 5,000-turn session is written straight into the store (as a closed session with a
checkpoint) and brought back with ``manager.restore``: 5,000 ``add_turn`` calls would cost a
minute and test nothing compaction does. The smaller session goes through the workflow turn by
turn, with a checkpoint, a branch and an in-place restore.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest_asyncio
from temporalio.client import Client
from temporalio.worker import Worker

from durable_sessions.branches import BranchManager
from durable_sessions.client import SessionManager
from durable_sessions.core.clock import utcnow
from durable_sessions.core.compaction import compactable_end, cover
from durable_sessions.core.pruning import turn_tokens
from durable_sessions.core.semantic import load_default_embedder
from durable_sessions.core.tokens import count_tokens
from durable_sessions.models import (
    Checkpoint,
    CompactionConfig,
    SessionConfig,
    SessionState,
    SessionStatus,
    SessionTurn,
)
from durable_sessions.plugin import DurableSessionsPlugin
from durable_sessions.stores.base import PersistBatch, SessionStore
from durable_sessions.worker import STICKY_QUEUE_TIMEOUT, create_worker

BIG = CompactionConfig(budget_tokens=4000)
SMALL = CompactionConfig(
    budget_tokens=700, chunk_turns=10, fanout=2, keep_recent_turns=10, summary_tokens=80
)
COLORS = ["red", "green", "blue", "amber", "violet", "silver", "black"]
ANIMALS = ["fox", "heron", "otter", "lynx", "badger", "crane", "wolf", "hare"]
CITIES = ["Lisbon", "Oslo", "Quito", "Hanoi", "Dakar", "Perth", "Tallinn", "Cusco", "Accra"]


def fact(tag: str, i: int) -> str:
    return (
        f"{tag} {i}: the {COLORS[i % 7]} {ANIMALS[i % 8]} visited {CITIES[i % 9]} "
        f"on day {i % 365} and paid {i * 7 % 1000} coins."
    )


def summaries_of(context: list[SessionTurn]) -> list[tuple[int, int]]:
    return [
        (t.metadata["summary"]["lo"], t.metadata["summary"]["hi"])
        for t in context
        if "summary" in t.metadata
    ]


@dataclass
class Compacting:
    client: Client
    store: SessionStore
    manager: SessionManager
    task_queue: str


def compacting_worker(
    client: Client, store: SessionStore, task_queue: str, compaction: CompactionConfig
) -> Worker:
    """What ``create_worker`` builds, with compaction on for every session of the worker."""
    plugin = DurableSessionsPlugin(store, setup_store=False, compaction=compaction)
    return Worker(
        client,
        task_queue=task_queue,
        plugins=[plugin],
        sticky_queue_schedule_to_start_timeout=STICKY_QUEUE_TIMEOUT,
    )


@pytest_asyncio.fixture(loop_scope="session")
async def big(client: Client, store: SessionStore, task_queue: str) -> AsyncIterator[Compacting]:
    manager = SessionManager(client, store, SessionConfig(), task_queue, call_timeout=60)
    async with compacting_worker(client, store, task_queue, BIG):
        yield Compacting(client, store, manager, task_queue)


@pytest_asyncio.fixture(loop_scope="session")
async def small(client: Client, store: SessionStore, task_queue: str) -> AsyncIterator[Compacting]:
    manager = SessionManager(
        client, store, SessionConfig(flush_interval=0.2), task_queue, call_timeout=20
    )
    async with compacting_worker(client, store, task_queue, SMALL):
        yield Compacting(client, store, manager, task_queue)


async def test_a_5000_turn_session_within_4000_tokens_keeps_every_raw_turn(
    big: Compacting,
) -> None:
    n = 5000
    store, manager = big.store, big.manager
    now = utcnow()
    turns = [SessionTurn(role="system", content="You answer questions about travels.", seq=0)]
    turns += [
        SessionTurn(role="user" if i % 2 else "assistant", content=fact("fact", i), seq=i)
        for i in range(1, n)
    ]
    for t in turns:
        t.tokens = count_tokens(t.content)  # as the client counts them
    sid = f"big-{big.task_queue}"
    state = SessionState(
        session_id=sid,
        user_id="u-big",
        status=SessionStatus.CLOSED,
        created_at=now,
        updated_at=now,
        turn_count=n,
        total_tokens=sum(t.tokens or 0 for t in turns),
    )
    cp = Checkpoint(
        checkpoint_id=f"cp-{sid}",
        session_id=sid,
        turn_count=n,
        created_at=now + timedelta(seconds=1),
        reason="close",
        status=SessionStatus.CLOSED,
    )
    await store.persist(PersistBatch(state=state, turns=turns, checkpoints=[cp]))
    assert state.total_tokens > 20 * BIG.budget_tokens
    restored = await manager.restore(cp.checkpoint_id)
    assert restored.status == SessionStatus.ACTIVE and restored.turn_count == n
    # The worker scores lexically until the packaged model has loaded (a context call never
    # waits for it): load it first, so both calls below score the same way whichever test ran
    # first in this process.
    await asyncio.to_thread(load_default_embedder)

    started = time.perf_counter()
    context = await manager.context(
        sid, query="Which city did the amber otter visit?", max_turns=None
    )
    cold = time.perf_counter() - started
    started = time.perf_counter()
    again = await manager.context(
        sid, query="Which city did the amber otter visit?", max_turns=None
    )
    warm = time.perf_counter() - started
    print(f"\n5,000 turns, 4,000-token budget: first context {cold:.2f} s, next {warm:.3f} s")

    end = compactable_end(n, BIG)
    expected = [(s.lo, s.hi) for s in cover(end, BIG.chunk_turns, BIG.fanout)]
    assert end == 4980 // 50 * 50 and len(expected) == 6
    for ctx in (context, again):
        assert sum(turn_tokens(t) for t in ctx) <= BIG.budget_tokens
        assert summaries_of(ctx) == expected  # every old range covered, oldest first
        assert ctx[0].content == turns[0].content  # the system turn leads
        raw = [t for t in ctx if "summary" not in t.metadata]
        assert all(t.seq is not None and t.content == turns[t.seq].content for t in raw)
        assert len(raw) > 40  # the rest of the budget went to relevant and recent turns
    assert [t.content for t in again] == [t.content for t in context]
    rows = await store.list_summaries(sid, 0, 0, n)  # type: ignore[attr-defined]
    assert len({(s.lo, s.hi) for s in rows}) == len(rows) == 99 + 24 + 6 + 1  # each range once

    history = await manager.history(sid)
    assert [t.seq for t in history] == list(range(n))
    assert [t.content for t in history] == [t.content for t in turns]
    assert not any("summary" in t.metadata for t in history)

    tight = await manager.context(sid, query="amber otter", max_turns=12, max_tokens=1500)
    assert len(tight) <= 12 and sum(turn_tokens(t) for t in tight) <= 1500
    assert summaries_of(tight) == expected[-len(summaries_of(tight)) :]  # newest ranges first
    await manager.close(sid)


async def test_branch_and_restore_share_summaries_up_to_their_fork(small: Compacting) -> None:
    store, manager = small.store, small.manager
    summaries_store = store  # the PostgreSQL store keeps summaries
    sid = (await manager.create("u-small")).session_id
    await manager.add_turn(sid, SessionTurn(role="system", content="Keep track of the trips."))
    for i in range(1, 60):
        await manager.add_turn(sid, SessionTurn(role="user", content=fact("early", i)))
    cp = await manager.checkpoint(sid)
    for i in range(60, 120):
        await manager.add_turn(sid, SessionTurn(role="user", content=fact("late", i)))

    context = await manager.context(sid, query="amber otter", max_turns=None)
    assert sum(turn_tokens(t) for t in context) <= SMALL.budget_tokens
    spans = [(s.lo, s.hi) for s in cover(compactable_end(120, SMALL), 10, 2)]
    assert summaries_of(context) == spans
    parent_rows = await summaries_store.list_summaries(sid, 0, 0, 120)  # type: ignore[attr-defined]
    parent_text = {(s.lo, s.hi): s.content for s in parent_rows}

    branch = await BranchManager(manager).create_branch(
        sid, "alt", from_checkpoint=cp.checkpoint_id
    )
    for i in range(60, 120):
        await manager.add_turn(branch.session_id, SessionTurn(role="user", content=fact("alt", i)))
    branch_context = await manager.context(branch.session_id, query="amber otter", max_turns=None)
    assert sum(turn_tokens(t) for t in branch_context) <= SMALL.budget_tokens
    assert summaries_of(branch_context) == spans
    own = await summaries_store.list_summaries(branch.session_id, 0, 0, 120)  # type: ignore[attr-defined]
    assert own and min(s.hi for s in own) > 60  # nothing up to the fork point was rewritten
    for t in branch_context:
        if "summary" in t.metadata:
            lo, hi = t.metadata["summary"]["lo"], t.metadata["summary"]["hi"]
            assert "late" not in t.content  # never the parent's turns after the fork
            if hi <= 60:
                assert t.content.endswith(parent_text[(lo, hi)])  # the parent's own summary

    restored = await manager.restore(cp.checkpoint_id)  # in place: generation 1 forks at 60
    assert restored.generation == 1
    for i in range(60, 120):
        await manager.add_turn(sid, SessionTurn(role="user", content=fact("redo", i)))
    after = await manager.context(sid, query="amber otter", max_turns=None)
    assert summaries_of(after) == spans
    assert not any("late" in t.content for t in after if "summary" in t.metadata)
    assert any("redo" in t.content for t in after if "summary" in t.metadata)
    gen1 = await summaries_store.list_summaries(sid, 1, 0, 120)  # type: ignore[attr-defined]
    assert gen1 and min(s.hi for s in gen1) > 60

    history = await manager.history(sid)  # raw turns only, the restored transcript
    assert [t.content.split(" ")[0] for t in history[1:]] == ["early"] * 59 + ["redo"] * 60


async def test_session_config_turns_compaction_on(
    client: Client, store: SessionStore, task_queue: str
) -> None:
    config = SessionConfig(flush_interval=0.2, compaction=SMALL)
    manager = SessionManager(client, store, config, task_queue, call_timeout=20)
    async with create_worker(client, store, task_queue=task_queue):  # no worker default
        sid = (await manager.create("u-config")).session_id
        for i in range(60):
            await manager.add_turn(sid, SessionTurn(role="user", content=fact("cfg", i)))
        context = await manager.context(sid, query="amber otter", max_turns=None)
    assert sum(turn_tokens(t) for t in context) <= SMALL.budget_tokens
    assert summaries_of(context) == [(s.lo, s.hi) for s in cover(50, 10, 2)]

"""``manager.context``: pruning in an activity over the stored transcript."""

from __future__ import annotations

import asyncio

import pytest

from durable_sessions.errors import InvalidTurnError
from durable_sessions.models import SessionConfig, SessionTurn
from tests.integration.conftest import Stack


async def test_context_picks_the_relevant_turns(stack: Stack) -> None:
    m = stack.manager
    s = await m.create("ctx")
    await m.add_turn(s.session_id, SessionTurn(role="system", content="You are a helpful agent."))
    await m.add_turn(s.session_id, SessionTurn(role="user", content="My locker code is 4417."))
    for i in range(40):
        await m.add_turn(s.session_id, SessionTurn(role="user", content=f"small talk number {i}"))
    ctx = await m.context(s.session_id, query="what was my locker code?", max_turns=5)
    contents = [t.content for t in ctx]
    assert "You are a helpful agent." in contents
    assert "My locker code is 4417." in contents
    assert len(ctx) <= 5
    assert [t.seq for t in ctx] == sorted(t.seq for t in ctx if t.seq is not None)

    window = await m.context(s.session_id, query="locker", max_turns=3, pruner="sliding_window")
    assert [t.content for t in window][-1] == "small talk number 39"
    with pytest.raises(InvalidTurnError):
        await m.context(s.session_id, query="x", pruner="nonsense")

    await m.close(s.session_id)  # ended sessions are pruned from the store
    closed_ctx = await m.context(s.session_id, query="locker code", max_turns=5)
    assert "My locker code is 4417." in [t.content for t in closed_ctx]


async def test_context_on_a_10000_turn_session(stack: Stack) -> None:
    m = stack.manager
    cfg = SessionConfig(auto_checkpoint_interval=None, flush_interval=0.2)
    s = await m.create("ctx-long", config=cfg)
    topics = ["weather", "football", "cooking", "travel", "music", "movies", "gardening"]
    planted = 1234
    texts = [
        "The secret launch password is heliotrope-42."
        if i == planted
        else f"turn {i} chatting about {topics[i % len(topics)]}"
        for i in range(10_000)
    ]
    # Batches of 100 turns from 4 callers: the same 10,000 stored turns, in a tenth of the time
    # 10,000 single-turn updates took in CI (tests/integration/test_long_session.py sends those).
    batches = iter(range(0, len(texts), 100))

    async def sender() -> None:
        for start in batches:
            turns = [SessionTurn(role="user", content=t) for t in texts[start : start + 100]]
            await m.add_turns(s.session_id, turns)

    await asyncio.gather(*(sender() for _ in range(4)))
    assert (await m.get(s.session_id)).turn_count == 10_000
    ctx = await m.context(s.session_id, query="what is the secret launch password?", max_turns=10)
    assert len(ctx) == 10
    assert any("heliotrope-42" in t.content for t in ctx)
    again = await m.context(s.session_id, query="launch password", max_turns=10)  # warm cache
    assert any("heliotrope-42" in t.content for t in again)

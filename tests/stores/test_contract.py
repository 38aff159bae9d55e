"""The ``SessionStore`` contract: one suite, run against every backend (memory, SQLite, Postgres).

A behaviour belongs here when callers rely on it whatever the backend; anything a backend does
differently is a bug of that backend. The memory store is the reference implementation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from durable_sessions.models import (
    Checkpoint,
    CheckpointReason,
    Role,
    SessionState,
    SessionStats,
    SessionStatus,
    SessionTurn,
)
from durable_sessions.stores.base import PersistBatch, SessionStore, read_transcript
from durable_sessions.stores.factory import store_from_url
from durable_sessions.stores.memory import InMemorySessionStore
from durable_sessions.stores.postgres import LATEST_SCHEMA_VERSION as PG_LATEST
from durable_sessions.stores.postgres import PostgresSessionStore
from durable_sessions.stores.sqlite import LATEST_SCHEMA_VERSION as SQLITE_LATEST
from durable_sessions.stores.sqlite import SQLiteSessionStore

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
ROLES: tuple[Role, ...] = ("user", "assistant", "tool", "system")

StoreFactory = Callable[[], SessionStore]
"""The ``store_factory`` fixture: stores over one location (file, schema), not set up."""


# --- builders ---------------------------------------------------------------------------------


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def header(session_id: str, **fields: Any) -> SessionState:
    values: dict[str, Any] = {
        "session_id": session_id,
        "user_id": "u1",
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(fields)
    return SessionState(**values)


def turns(
    prefix: str, seqs: range, *, content: str | None = None, **fields: Any
) -> list[SessionTurn]:
    """Turns with ids ``{prefix}-{seq}`` and content ``{prefix} turn {seq}``."""
    return [
        SessionTurn(
            turn_id=f"{prefix}-{seq}",
            role=ROLES[seq % len(ROLES)],
            content=content if content is not None else f"{prefix} turn {seq}",
            timestamp=at(seq),
            seq=seq,
            **fields,
        )
        for seq in seqs
    ]


def checkpoint(
    checkpoint_id: str,
    session_id: str,
    turn_count: int,
    *,
    created: float = 0,
    reason: CheckpointReason = "manual",
    **fields: Any,
) -> Checkpoint:
    return Checkpoint(
        checkpoint_id=checkpoint_id,
        session_id=session_id,
        turn_count=turn_count,
        created_at=at(created),
        reason=reason,
        **fields,
    )


def ids(items: list[SessionTurn]) -> list[str]:
    return [t.turn_id for t in items]


def session_ids(items: list[SessionState]) -> list[str]:
    return [s.session_id for s in items]


async def persist(
    store: SessionStore,
    state: SessionState,
    new_turns: list[SessionTurn] | None = None,
    checkpoints: list[Checkpoint] | None = None,
) -> None:
    await store.persist(
        PersistBatch(state=state, turns=new_turns or [], checkpoints=checkpoints or [])
    )


def assert_utc(dt: datetime | None) -> None:
    assert dt is not None
    assert dt.tzinfo is not None
    assert dt.utcoffset() == timedelta(0)


# --- round trips ------------------------------------------------------------------------------


async def test_persist_and_get_round_trip_every_field(store: SessionStore) -> None:
    state = header(
        "s1",
        user_id="alice",
        status=SessionStatus.SUSPENDED,
        metadata={"plan": "pro", "nested": {"a": [1, 2.5, None, True]}, "n": 3},
        created_at=T0,
        updated_at=at(90.000001),
        turn_count=3,
        total_tokens=1234,
        total_cost=0.75,
        parent_session_id="p0",
        branch_name="experiment",
        fork_seq=0,
        last_checkpoint_id="cp1",
        expires_at=at(86_400),
        generation=0,
        parent_generation=2,
    )
    written = [
        SessionTurn(
            turn_id="t0",
            role="system",
            content="You are helpful.",
            timestamp=at(0.5),
            seq=0,
        ),
        SessionTurn(
            turn_id="t1",
            role="user",
            content="Hello?",
            timestamp=at(1.000001),
            tokens=3,
            cost=0.001,
            agent="web",
            metadata={"ip": "10.0.0.1", "tags": ["a", "b"]},
            seq=1,
        ),
        SessionTurn(
            turn_id="t2",
            role="assistant",
            content="Hi! " * 100,
            timestamp=at(2),
            tokens=0,
            cost=0.0,
            agent="planner",
            metadata={"model": "m-1", "latency_ms": 812.5},
            seq=2,
        ),
    ]
    cp = checkpoint(
        "cp1",
        "s1",
        3,
        created=3,
        reason="auto",
        generation=0,
        status=SessionStatus.ACTIVE,
        metadata={"note": "after greeting"},
        total_tokens=1234,
        total_cost=0.75,
    )
    await persist(store, state, written, [cp])

    got = await store.get_session("s1")
    assert got == state
    assert got is not None
    for dt in (got.created_at, got.updated_at, got.expires_at):
        assert_utc(dt)

    own = await store.get_own_turns("s1", 0, 0, 100)
    assert own == written
    for t in own:
        assert_utc(t.timestamp)
    assert await read_transcript(store, "s1") == written

    got_cp = await store.get_checkpoint("cp1")
    assert got_cp == cp
    assert got_cp is not None
    assert_utc(got_cp.created_at)


async def test_empty_and_null_fields_round_trip(store: SessionStore) -> None:
    state = header("s1")  # empty metadata, every optional field None
    t = SessionTurn(turn_id="t0", role="user", content="x", timestamp=T0, seq=0)
    await persist(store, state, [t])
    assert await store.get_session("s1") == state
    assert await store.get_own_turns("s1", 0, 0, 1) == [t]
    assert await store.get_session("missing") is None
    assert await store.get_checkpoint("missing") is None
    assert await store.get_own_turns("missing", 0, 0, 10) == []
    assert await read_transcript(store, "missing") == []


async def test_upsert_session_replaces_the_header(store: SessionStore) -> None:
    await store.upsert_session(header("s1", metadata={"v": 1}))
    updated = header(
        "s1",
        status=SessionStatus.CLOSED,
        metadata={},
        updated_at=at(5),
        turn_count=4,
        total_tokens=9,
        total_cost=0.5,
    )
    await store.upsert_session(updated)
    assert await store.get_session("s1") == updated
    assert len(await store.list_sessions()) == 1


# --- idempotency and ordering -----------------------------------------------------------------


async def test_persist_same_batch_twice_stores_it_once(store: SessionStore) -> None:
    batch = PersistBatch(
        state=header("s1", turn_count=5, last_checkpoint_id="cp"),
        turns=turns("a", range(5)),
        checkpoints=[checkpoint("cp", "s1", 5)],
    )
    await store.persist(batch)
    await store.persist(batch)  # an activity retried after a timeout

    assert ids(await store.get_own_turns("s1", 0, 0, 100)) == [f"a-{i}" for i in range(5)]
    assert await read_transcript(store, "s1") == batch.turns
    assert await store.list_checkpoints("s1") == batch.checkpoints
    assert await store.list_sessions() == [batch.state]


async def test_overlapping_retry_leaves_no_duplicates_or_gaps(store: SessionStore) -> None:
    await persist(store, header("s1", turn_count=5), turns("a", range(5)))
    # A retry of an older, overlapping batch followed by the next one.
    await persist(store, header("s1", turn_count=5), turns("a", range(3, 5)))
    await persist(store, header("s1", turn_count=8), turns("a", range(3, 8)))
    transcript = await read_transcript(store, "s1")
    assert [t.seq for t in transcript] == list(range(8))
    assert ids(transcript) == [f"a-{i}" for i in range(8)]


async def test_turns_across_flushes_come_back_in_order(store: SessionStore) -> None:
    all_turns: list[SessionTurn] = []
    # Flushes of uneven size, turns inside a batch deliberately not sorted.
    for lo, hi in ((0, 4), (4, 5), (5, 12)):
        batch_turns = list(reversed(turns("a", range(lo, hi))))
        all_turns.extend(turns("a", range(lo, hi)))
        await persist(
            store, header("s1", turn_count=hi, updated_at=at(hi), total_tokens=hi), batch_turns
        )
    got = await read_transcript(store, "s1")
    assert got == all_turns
    assert [t.seq for t in got] == list(range(12))
    state = await store.get_session("s1")
    assert state is not None
    assert (state.turn_count, state.total_tokens, state.updated_at) == (12, 12, at(12))


async def test_read_transcript_offset_and_limit(store: SessionStore) -> None:
    await persist(store, header("s1", turn_count=10), turns("a", range(10)))

    async def seqs(**kw: Any) -> list[int | None]:
        return [t.seq for t in await read_transcript(store, "s1", **kw)]

    assert await seqs() == list(range(10))
    assert await seqs(offset=2, limit=3) == [2, 3, 4]
    assert await seqs(offset=7) == [7, 8, 9]
    assert await seqs(offset=8, limit=50) == [8, 9]
    assert await seqs(limit=0) == []
    assert await seqs(offset=10) == []
    assert await seqs(offset=25, limit=5) == []
    # turn_count bounds the transcript even when the log holds more.
    assert await seqs(turn_count=4) == [0, 1, 2, 3]
    assert await seqs(turn_count=6, offset=4, limit=10) == [4, 5]


# --- lineage ----------------------------------------------------------------------------------


async def test_in_place_restore_creates_a_new_generation(store: SessionStore) -> None:
    # Generation 0: six turns, a checkpoint after three.
    await persist(
        store,
        header("s1", turn_count=6),
        turns("g0", range(6)),
        [checkpoint("cp3", "s1", 3, generation=0)],
    )
    # Restore to cp3: generation 1 forks generation 0 at seq 3, then two new turns.
    await store.add_generation("s1", 1, 0, 3)
    await store.add_generation("s1", 1, 0, 3)  # idempotent
    await persist(store, header("s1", generation=1, turn_count=5), turns("g1", range(3, 5)))

    assert await store.get_generation_parent("s1", 1) == (0, 3)
    assert await store.get_generation_parent("s1", 0) is None
    assert await store.get_generation_parent("s1", 7) is None

    transcript = await read_transcript(store, "s1")
    assert ids(transcript) == ["g0-0", "g0-1", "g0-2", "g1-3", "g1-4"]
    assert [t.seq for t in transcript] == [0, 1, 2, 3, 4]
    assert ids(await read_transcript(store, "s1", offset=2, limit=2)) == ["g0-2", "g1-3"]
    # The rewound turns stay in the log under generation 0.
    assert ids(await store.get_own_turns("s1", 0, 0, 100)) == [f"g0-{i}" for i in range(6)]
    assert ids(await store.get_own_turns("s1", 0, 3, 100)) == ["g0-3", "g0-4", "g0-5"]
    assert ids(await store.get_own_turns("s1", 1, 0, 100)) == ["g1-3", "g1-4"]
    # ... and the old transcript can still be read.
    old = await read_transcript(store, "s1", generation=0, turn_count=6)
    assert ids(old) == [f"g0-{i}" for i in range(6)]

    # A second restore, of generation 1 at seq 4: three generations deep.
    await store.add_generation("s1", 2, 1, 4)
    await persist(store, header("s1", generation=2, turn_count=6), turns("g2", range(4, 6)))
    assert ids(await read_transcript(store, "s1")) == [
        "g0-0",
        "g0-1",
        "g0-2",
        "g1-3",
        "g2-4",
        "g2-5",
    ]


async def test_a_head_cut_back_past_an_earlier_fork(store: SessionStore) -> None:
    # Generation 1 forks 0 at seq 2 (turns 2..3); generation 2 forks 1 at seq 1, below that
    # fork (truncate after truncate): seq 1 must come from generation 2 alone.
    await persist(store, header("s1", turn_count=4), turns("g0", range(4)))
    await store.add_generation("s1", 1, 0, 2)
    await persist(store, header("s1", generation=1, turn_count=4), turns("g1", range(2, 4)))
    await store.add_generation("s1", 2, 1, 1)
    await persist(store, header("s1", generation=2, turn_count=2), turns("g2", range(1, 2)))
    assert ids(await read_transcript(store, "s1")) == ["g0-0", "g2-1"]
    assert ids(await read_transcript(store, "s1", generation=1, turn_count=3)) == [
        "g0-0",
        "g0-1",
        "g1-2",
    ]


async def test_branches_of_branches_resolve_exactly(store: SessionStore) -> None:
    # Parent: turns 0..5.
    await persist(store, header("p", turn_count=6, created_at=at(0)), turns("p", range(6)))
    # b1 branches p (generation 0) at seq 4 and adds seq 4..6.
    b1 = header(
        "b1",
        created_at=at(10),
        parent_session_id="p",
        parent_generation=0,
        fork_seq=4,
        branch_name="b1",
        turn_count=7,
    )
    await persist(store, b1, turns("b1", range(4, 7)))
    # b2 branches b1 at seq 6 and adds seq 6..7.
    b2 = header(
        "b2",
        created_at=at(20),
        parent_session_id="b1",
        parent_generation=0,
        fork_seq=6,
        branch_name="b2",
        turn_count=8,
    )
    await persist(store, b2, turns("b2", range(6, 8)))

    expected = ["p-0", "p-1", "p-2", "p-3", "b1-4", "b1-5", "b2-6", "b2-7"]
    got = await read_transcript(store, "b2")
    assert ids(got) == expected
    assert [t.seq for t in got] == list(range(8))
    assert ids(await read_transcript(store, "b2", offset=3, limit=4)) == expected[3:7]
    assert ids(await read_transcript(store, "b1")) == [
        "p-0",
        "p-1",
        "p-2",
        "p-3",
        "b1-4",
        "b1-5",
        "b1-6",
    ]
    # The parent is untouched by its branches.
    assert ids(await read_transcript(store, "p")) == [f"p-{i}" for i in range(6)]

    assert session_ids(await store.list_branches("p")) == ["b1"]
    assert await store.list_branches("b1") == [b2]
    assert await store.list_branches("b2") == []


async def test_branch_of_a_restored_generation(store: SessionStore) -> None:
    await persist(store, header("p", turn_count=5), turns("p0", range(5)))
    await store.add_generation("p", 1, 0, 2)
    await persist(store, header("p", generation=1, turn_count=4), turns("p1", range(2, 4)))
    # Branch from generation 1 of p at seq 3, then restore the branch itself at seq 4.
    await persist(
        store,
        header(
            "b",
            created_at=at(1),
            parent_session_id="p",
            parent_generation=1,
            fork_seq=3,
            turn_count=5,
        ),
        turns("b0", range(3, 5)),
    )
    await store.add_generation("b", 1, 0, 4)
    await persist(
        store,
        header(
            "b",
            created_at=at(1),
            parent_session_id="p",
            parent_generation=1,
            fork_seq=3,
            generation=1,
            turn_count=6,
        ),
        turns("b1", range(4, 6)),
    )
    assert ids(await read_transcript(store, "b")) == [
        "p0-0",
        "p0-1",
        "p1-2",
        "b0-3",
        "b1-4",
        "b1-5",
    ]


async def test_list_branches_oldest_first(store: SessionStore) -> None:
    await persist(store, header("p"))
    for sid, created in (("late", 30), ("early", 10), ("tie-b", 20), ("tie-a", 20)):
        await persist(store, header(sid, created_at=at(created), parent_session_id="p", fork_seq=0))
    await persist(store, header("other", parent_session_id="x", fork_seq=0))
    assert session_ids(await store.list_branches("p")) == ["early", "tie-a", "tie-b", "late"]
    assert await store.list_branches("nobody") == []


# --- checkpoints ------------------------------------------------------------------------------


async def test_checkpoints_save_get_list(store: SessionStore) -> None:
    cps = [
        checkpoint("c-late", "s1", 9, created=30, reason="close", status=SessionStatus.CLOSED),
        checkpoint("c-early", "s1", 3, created=10, reason="auto", metadata={"k": "v"}),
        checkpoint("c-mid", "s1", 6, created=20, generation=1, total_tokens=5, total_cost=0.25),
    ]
    await persist(store, header("s1", turn_count=9), checkpoints=cps[:2])
    await persist(store, header("s1", turn_count=9), checkpoints=cps[2:])
    await persist(store, header("s2"), checkpoints=[checkpoint("other", "s2", 0)])

    for cp in cps:
        assert await store.get_checkpoint(cp.checkpoint_id) == cp
    listed = await store.list_checkpoints("s1")
    assert [c.checkpoint_id for c in listed] == ["c-early", "c-mid", "c-late"]
    assert listed == sorted(cps, key=lambda c: c.created_at)
    assert [c.checkpoint_id for c in await store.list_checkpoints("s2")] == ["other"]
    assert await store.list_checkpoints("nobody") == []

    # Upsert by checkpoint_id: rewriting one updates it in place.
    changed = cps[1].model_copy(update={"reason": "restore", "metadata": {}})
    await persist(store, header("s1", turn_count=9), checkpoints=[changed])
    assert await store.get_checkpoint("c-early") == changed
    assert len(await store.list_checkpoints("s1")) == 3


async def test_checkpoints_with_equal_timestamps_are_ordered_by_turn_count(
    store: SessionStore,
) -> None:
    cps = [checkpoint(f"c{n}", "s1", n, created=5) for n in (7, 2, 4)]
    await persist(store, header("s1"), checkpoints=cps)
    assert [c.turn_count for c in await store.list_checkpoints("s1")] == [2, 4, 7]


# --- listings ---------------------------------------------------------------------------------


async def _populate_users(store: SessionStore) -> None:
    rows = [
        ("a3", "u1", SessionStatus.CLOSED, 30),
        ("a1", "u1", SessionStatus.ACTIVE, 10),
        ("a2", "u1", SessionStatus.SUSPENDED, 20),
        ("a5", "u1", SessionStatus.ACTIVE, 20),  # same created_at as a2: session_id breaks it
        ("a4", "u1", SessionStatus.EXPIRED, 40),
        ("b1", "u2", SessionStatus.ACTIVE, 5),
        ("b2", "u2", SessionStatus.CLOSED, 50),
    ]
    for sid, user, status, created in rows:
        await persist(store, header(sid, user_id=user, status=status, created_at=at(created)))


async def test_list_sessions_filters_and_orders(store: SessionStore) -> None:
    await _populate_users(store)
    assert session_ids(await store.list_sessions("u1")) == ["a1", "a2", "a5", "a3", "a4"]
    assert session_ids(await store.list_sessions("u2")) == ["b1", "b2"]
    assert session_ids(await store.list_sessions()) == [
        "b1",
        "a1",
        "a2",
        "a5",
        "a3",
        "a4",
        "b2",
    ]
    assert session_ids(await store.list_sessions("u1", SessionStatus.ACTIVE)) == ["a1", "a5"]
    assert session_ids(await store.list_sessions(status=SessionStatus.CLOSED)) == ["a3", "b2"]
    assert session_ids(await store.list_sessions("u2", SessionStatus.EXPIRED)) == []
    assert session_ids(await store.list_sessions("u1", limit=2)) == ["a1", "a2"]
    assert session_ids(await store.list_sessions(limit=1)) == ["b1"]
    assert await store.list_sessions("u1", limit=0) == []
    assert await store.list_sessions("nobody") == []


async def test_count_live_sessions(store: SessionStore) -> None:
    await _populate_users(store)
    assert await store.count_live_sessions("u1") == 3  # a1, a5 active; a2 suspended
    assert await store.count_live_sessions("u2") == 1
    assert await store.count_live_sessions("nobody") == 0
    await persist(store, header("a1", status=SessionStatus.CLOSED, created_at=at(10)))
    assert await store.count_live_sessions("u1") == 2


# --- delete -----------------------------------------------------------------------------------


async def test_delete_session_removes_everything(store: SessionStore) -> None:
    await persist(
        store,
        header("s1", turn_count=4),
        turns("g0", range(4)),
        [checkpoint("cp1", "s1", 2), checkpoint("cp2", "s1", 4, created=1)],
    )
    await store.add_generation("s1", 1, 0, 2)
    await persist(store, header("s1", generation=1, turn_count=3), turns("g1", range(2, 3)))
    await persist(
        store, header("keep", turn_count=1), turns("k", range(1)), [checkpoint("kc", "keep", 1)]
    )

    assert await store.delete_session("s1") is True

    assert await store.get_session("s1") is None
    assert await store.get_own_turns("s1", 0, 0, 100) == []
    assert await store.get_own_turns("s1", 1, 0, 100) == []
    assert await store.get_generation_parent("s1", 1) is None
    assert await store.list_checkpoints("s1") == []
    assert await store.get_checkpoint("cp1") is None
    assert await store.get_checkpoint("cp2") is None
    assert await read_transcript(store, "s1", generation=1, turn_count=3) == []
    assert session_ids(await store.list_sessions()) == ["keep"]

    assert await store.delete_session("s1") is False
    assert await store.delete_session("never-existed") is False

    # Other sessions are untouched.
    assert ids(await read_transcript(store, "keep")) == ["k-0"]
    assert [c.checkpoint_id for c in await store.list_checkpoints("keep")] == ["kc"]


async def test_delete_session_counts_rows_without_a_header(store: SessionStore) -> None:
    # Turns and a checkpoint written for a session whose header is gone count as "something".
    await persist(
        store, header("s1", turn_count=2), turns("a", range(2)), [checkpoint("c", "s1", 2)]
    )
    await store.delete_session("s1")
    await persist(store, header("tmp", turn_count=0), checkpoints=[checkpoint("c2", "s1", 0)])
    assert await store.delete_session("s1") is True
    assert await store.get_checkpoint("c2") is None


# --- stats ------------------------------------------------------------------------------------


async def test_get_stats_numbers_are_exact(store: SessionStore) -> None:
    assert await store.get_stats() == SessionStats()
    assert await store.get_stats("u1") == SessionStats()

    rows = [
        ("s1", "u1", SessionStatus.ACTIVE, 3, 10, 0.5),
        ("s2", "u1", SessionStatus.SUSPENDED, 5, 20, 0.25),
        ("s3", "u1", SessionStatus.CLOSED, 10, 30, 1.0),
        ("s4", "u1", SessionStatus.EXPIRED, 2, 0, 0.0),
        ("s5", "u2", SessionStatus.ACTIVE, 7, 100, 2.0),
        ("s6", "u2", SessionStatus.ACTIVE, 0, 0, 0.0),
    ]
    for sid, user, status, n, tokens, cost in rows:
        await persist(
            store,
            header(
                sid,
                user_id=user,
                status=status,
                turn_count=n,
                total_tokens=tokens,
                total_cost=cost,
            ),
        )
    cps = [
        checkpoint("c1", "s1", 1),
        checkpoint("c2", "s1", 2),
        checkpoint("c3", "s3", 5),
        checkpoint("c4", "s5", 7),
    ]
    await persist(
        store,
        header("s1", user_id="u1", turn_count=3, total_tokens=10, total_cost=0.5),
        checkpoints=cps,
    )

    assert await store.get_stats("u1") == SessionStats(
        active=1,
        suspended=1,
        closed=1,
        expired=1,
        avg_turns=5.0,
        checkpoints_per_session=0.75,
        total_tokens=60,
        total_cost=1.75,
    )
    assert await store.get_stats("u2") == SessionStats(
        active=2,
        avg_turns=3.5,
        checkpoints_per_session=0.5,
        total_tokens=100,
        total_cost=2.0,
    )
    assert await store.get_stats() == SessionStats(
        active=3,
        suspended=1,
        closed=1,
        expired=1,
        avg_turns=27 / 6,
        checkpoints_per_session=4 / 6,
        total_tokens=160,
        total_cost=3.75,
    )
    assert await store.get_stats("nobody") == SessionStats()


# --- faithful text ----------------------------------------------------------------------------

UNICODE_SAMPLES = [
    # ZWJ family, flag, rainbow flag, skin tone, Fraktur (astral plane), musical symbol G clef.
    "emoji \U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 \U0001f1eb\U0001f1f7"
    " \U0001f3f3\ufe0f\u200d\U0001f308 \U0001f44d\U0001f3fd astral \U0001d518\U0001d52b \U0001d11e",
    "RTL: مرحبا بالعالم — שלום עולם \u200f(mixed)\u200e end",
    "combining: e\u0301 vs \u00e9, Z\u0351\u0364\u0350a\u0302\u0308l\u0327g\u0300o,"
    " jamo \u1100\u1161\u11a8",
    "zero-width: a\u200bb\u200dc\ufeffd, line\u2028sep\u2029para",
    "CJK 漢字かなカナ 한국어, math \u2200x\u2208\u211d: x²≥0, quotes \u201c\u2018\u2019\u201d «»",
    "controls: tab\t newline\n cr\r bell\x07 esc\x1b del\x7f",
    "SQL-ish: '); DROP TABLE turns; -- \\ backslash \\x00 and $1 ?",
]

NUL_SAMPLES = [
    "\x00",
    "before\x00after",
    "\x00\x00 leading and trailing \x00",
    "\ue000 starts with the private-use marker",
    '\ue000"looks like an escaped value"',
    "\ue000\x00 both",
    "ends with marker \ue000",
]


async def test_non_finite_floats_in_metadata_round_trip(store: SessionStore) -> None:
    t = SessionTurn(
        turn_id="t0",
        role="assistant",
        content="scores",
        timestamp=T0,
        metadata={"inf": float("inf"), "ninf": float("-inf"), "big": 1e308, "tiny": 5e-324},
        seq=0,
    )
    await persist(store, header("s1", turn_count=1), [t])
    (back,) = await read_transcript(store, "s1")
    assert back == t
    nan = SessionTurn(turn_id="t1", role="user", content="x", metadata={"v": float("nan")}, seq=1)
    await persist(store, header("s1", turn_count=2), [nan])
    got = (await read_transcript(store, "s1"))[1].metadata["v"]
    assert got != got  # NaN survives as NaN


async def test_unicode_content_round_trips_exactly(store: SessionStore) -> None:
    written = [
        SessionTurn(
            turn_id=f"t{i}",
            role="user",
            content=text,
            timestamp=at(i),
            agent=f"agent ✨ {i}",
            metadata={"text": text, text[:8]: ["é", "👍", {"ש": "ם"}]},
            seq=i,
        )
        for i, text in enumerate(UNICODE_SAMPLES)
    ]
    state = header(
        "s-🌍",
        user_id="ユーザー-עברית",
        metadata={"title": UNICODE_SAMPLES[0], "🔑": "e\u0301"},
        branch_name="ветка-\u0301",
        turn_count=len(written),
    )
    await persist(store, state, written)
    assert await store.get_session("s-🌍") == state
    got = await read_transcript(store, "s-🌍")
    assert got == written
    for sent, back in zip(written, got, strict=True):
        assert back.content.encode("utf-8") == sent.content.encode("utf-8")  # no normalisation
    assert session_ids(await store.list_sessions("ユーザー-עברית")) == ["s-🌍"]


async def test_nul_characters_round_trip_exactly(store: SessionStore) -> None:
    written = [
        SessionTurn(
            turn_id=f"t{i}",
            role="tool",
            content=text,
            timestamp=at(i),
            agent=text,
            metadata={"raw": text, "k\x00ey": ["\x00", 1]},
            seq=i,
        )
        for i, text in enumerate(NUL_SAMPLES)
    ]
    # Metadata that looks like the escaped form must not be mistaken for it.
    written.append(
        SessionTurn(
            turn_id="marker-meta",
            role="user",
            content="plain",
            timestamp=T0,
            metadata={"\ue000": '{"a": 1}'},
            seq=len(written),
        )
    )
    state = header(
        "s1",
        metadata={"nul": "a\x00b", "\ue000": "x"},
        branch_name="b\x00",
        turn_count=len(written),
    )
    cp = checkpoint("cp", "s1", 1, metadata={"\ue000": "{}"})
    cp2 = checkpoint("cp2", "s1", 2, metadata={"\x00": "\x00"})
    await persist(store, state, written, [cp, cp2])

    got = await read_transcript(store, "s1")
    assert got == written
    assert [t.content for t in got] == [*NUL_SAMPLES, "plain"]
    assert await store.get_session("s1") == state
    assert await store.get_checkpoint("cp") == cp
    assert await store.get_checkpoint("cp2") == cp2


# --- atomicity --------------------------------------------------------------------------------


async def test_invalid_batch_writes_nothing(store: SessionStore) -> None:
    good = turns("a", range(2))
    bad = SessionTurn(turn_id="nope", role="user", content="no seq", timestamp=T0)
    batch = PersistBatch(state=header("s1", turn_count=3), turns=[*good, bad])
    with pytest.raises(ValueError, match="seq"):
        await store.persist(batch)
    assert await store.get_session("s1") is None
    assert await store.get_own_turns("s1", 0, 0, 10) == []


# --- schema lifecycle -------------------------------------------------------------------------


async def test_setup_twice_keeps_data(store_factory: StoreFactory) -> None:
    first = store_factory()
    await first.setup()
    await persist(first, header("s1", turn_count=1), turns("a", range(1)))
    await first.setup()
    assert ids(await read_transcript(first, "s1")) == ["a-0"]

    # Another store over the same database/schema (a second process) sees the same rows.
    second = store_factory()
    await second.setup()
    assert ids(await read_transcript(second, "s1")) == ["a-0"]
    if isinstance(second, PostgresSessionStore | SQLiteSessionStore):
        latest = PG_LATEST if isinstance(second, PostgresSessionStore) else SQLITE_LATEST
        assert await second.schema_version() == latest
        await second.check_schema()


async def test_concurrent_setup_is_safe(store_factory: StoreFactory) -> None:
    stores = [store_factory() for _ in range(4)]
    await asyncio.gather(*(s.setup() for s in stores))
    await persist(stores[0], header("s1"))
    for s in stores:
        assert session_ids(await s.list_sessions()) == ["s1"]


async def test_check_schema_raises_before_setup(
    fresh_store: PostgresSessionStore | SQLiteSessionStore,
) -> None:
    assert await fresh_store.schema_version() == 0
    with pytest.raises(RuntimeError, match="durable-sessions db upgrade"):
        await fresh_store.check_schema()
    await fresh_store.setup()
    await fresh_store.check_schema()
    latest = PG_LATEST if isinstance(fresh_store, PostgresSessionStore) else SQLITE_LATEST
    assert await fresh_store.schema_version() == latest
    await fresh_store.setup()
    assert await fresh_store.schema_version() == latest


async def test_storage_bytes_grows_with_turns(
    fresh_store: PostgresSessionStore | SQLiteSessionStore,
) -> None:
    await fresh_store.setup()
    empty = await fresh_store.storage_bytes()
    assert empty > 0
    await persist(
        fresh_store, header("s1", turn_count=200), turns("a", range(200), content="x" * 1000)
    )
    assert await fresh_store.storage_bytes() > empty + 200 * 1000


async def test_store_survives_close_and_reopen(store_factory: StoreFactory) -> None:
    s = store_factory()
    await s.setup()
    await persist(s, header("s1", turn_count=2), turns("a", range(2)))
    await s.close()
    if not isinstance(s, InMemorySessionStore):
        s = store_factory()
    await s.setup()
    assert ids(await read_transcript(s, "s1")) == ["a-0", "a-1"]


# --- store_from_url ---------------------------------------------------------------------------


def test_store_from_url_picks_the_backend() -> None:
    pg = store_from_url("postgresql://u:pw@db.example:5432/app")
    assert isinstance(pg, PostgresSessionStore)
    assert pg.schema == "public"
    assert isinstance(store_from_url("postgres://localhost/app"), PostgresSessionStore)
    scoped = store_from_url("postgresql://localhost/app?schema=ds&sslmode=disable")
    assert isinstance(scoped, PostgresSessionStore)
    assert (scoped.schema, scoped.dsn) == ("ds", "postgresql://localhost/app?sslmode=disable")

    rel = store_from_url("sqlite:///data/sessions.db")
    assert isinstance(rel, SQLiteSessionStore)
    assert rel.path == "data/sessions.db"
    absolute = store_from_url("sqlite:////var/lib/ds/sessions.db")
    assert isinstance(absolute, SQLiteSessionStore)
    assert absolute.path == "/var/lib/ds/sessions.db"
    mem = store_from_url("sqlite:///:memory:")
    assert isinstance(mem, SQLiteSessionStore)
    assert mem.path == ":memory:"

    assert isinstance(store_from_url("memory://"), InMemorySessionStore)


@pytest.mark.parametrize(
    "url", ["mysql://u:secret@host/db", "sqlite://", "file:///tmp/x.db", "", "sessions.db"]
)
def test_store_from_url_rejects_unknown_schemes(url: str) -> None:
    with pytest.raises(ValueError, match=r"postgresql://.*sqlite:///.*memory://|sqlite:///") as e:
        store_from_url(url)
    assert "secret" not in str(e.value)


async def test_sqlite_memory_url_works() -> None:
    s = store_from_url("sqlite:///:memory:")
    try:
        await s.setup()
        await persist(s, header("s1", turn_count=1), turns("a", range(1)))
        assert ids(await read_transcript(s, "s1")) == ["a-0"]
    finally:
        await s.close()


async def test_stray_copies_past_the_head_are_removed(store: SessionStore) -> None:
    """A flush inside a workflow task that then timed out wrote turns at seqs the retried task
    gave to other turns; the retried flush removes the copies of its own turns left past the
    head, and leaves every other row alone."""
    await persist(store, header("s1", turn_count=3), turns("a", range(3)))
    # The timed-out task's flush: t at seq 5, x at seq 4 (neither acknowledged there).
    stray = [*turns("x", range(3, 4)), *turns("y", range(4, 5))]
    stray.append(turns("t", range(5, 6))[0])
    await persist(store, header("s1", turn_count=6), stray)
    # The retried task gave t seq 3 and flushed up to it; later turns are still pending.
    t_at_3 = turns("t", range(5, 6))[0].model_copy(update={"seq": 3})
    await persist(store, header("s1", turn_count=4), [t_at_3])

    assert [(t.turn_id, t.seq) for t in await store.get_own_turns("s1", 0, 0, 100)] == [
        ("a-0", 0),
        ("a-1", 1),
        ("a-2", 2),
        ("t-5", 3),
        ("y-4", 4),  # not one of the batch's turns: left for the next flush to overwrite
    ]
    assert ids(await read_transcript(store, "s1")) == ["a-0", "a-1", "a-2", "t-5"]


async def test_a_late_retry_of_an_earlier_batch_keeps_later_turns(store: SessionStore) -> None:
    first = turns("a", range(3))
    await persist(store, header("s1", turn_count=3), first)
    await persist(store, header("s1", turn_count=6), turns("a", range(3, 6)))
    await persist(store, header("s1", turn_count=3), first)  # an old attempt landing late
    assert ids(await store.get_own_turns("s1", 0, 0, 100)) == [f"a-{i}" for i in range(6)]


async def test_a_checkpoint_left_by_a_timed_out_flush_goes_with_its_stray_turns(
    store: SessionStore,
) -> None:
    """The timed-out task's flush also wrote an auto checkpoint past the head the retried task
    built; once its stray turns are gone it cannot be restored, and the flush deletes it. Every
    checkpoint whose turns are all in the log stays, whatever generation it belongs to."""
    await persist(
        store, header("s1", turn_count=3), turns("a", range(3)), [checkpoint("ok", "s1", 3)]
    )
    stray = turns("x", range(3, 5))
    await persist(store, header("s1", turn_count=5), stray, [checkpoint("orphan", "s1", 5)])
    # The retried task took x-4 first, at seq 3, and has flushed only that.
    retried = turns("x", range(4, 5))[0].model_copy(update={"seq": 3})
    await persist(store, header("s1", turn_count=4), [retried])
    assert [c.checkpoint_id for c in await store.list_checkpoints("s1")] == ["ok"]

    # A checkpoint of an older generation past the new head is kept: its turns are all there.
    await persist(
        store, header("s1", turn_count=6), turns("b", range(4, 6)), [checkpoint("six", "s1", 6)]
    )
    await store.add_generation("s1", 1, 0, 2)
    await persist(
        store,
        header("s1", turn_count=2, generation=1),
        [],
        [checkpoint("restore", "s1", 2, generation=1)],
    )
    assert {c.checkpoint_id for c in await store.list_checkpoints("s1")} == {"ok", "six", "restore"}


async def test_moving_the_head_drops_what_timed_out_tasks_left_past_it(
    store: SessionStore,
) -> None:
    """A flush in a workflow task that then timed out wrote turn x at seq 3 of generation 0, a
    checkpoint past the head, and, having moved the head itself, turn y and a checkpoint in
    generation 1. The retried task moved the head first, from head 3: recording generation 1
    with ``prior_head`` drops all of that, and nothing under the head or of another session."""
    await persist(
        store, header("s1", turn_count=3), turns("a", range(3)), [checkpoint("ok", "s1", 3)]
    )
    await persist(store, header("s2", turn_count=5), turns("o", range(5)))
    await persist(
        store, header("s1", turn_count=5), turns("x", range(3, 5)), [checkpoint("gone", "s1", 5)]
    )
    await store.add_generation("s1", 1, 0, 1)
    await persist(
        store,
        header("s1", turn_count=2, generation=1),
        turns("y", range(1, 2)),
        [checkpoint("ghost", "s1", 2, generation=1)],
    )

    await store.add_generation("s1", 1, 0, 2, prior_head=3)
    for hi in (5, 100):  # 5: inside what a cache in front of the store has seen written
        assert ids(await store.get_own_turns("s1", 0, 0, hi)) == ["a-0", "a-1", "a-2"]
    assert await store.get_own_turns("s1", 1, 1, 2) == []
    assert await store.get_own_turns("s1", 1, 0, 100) == []
    assert [c.checkpoint_id for c in await store.list_checkpoints("s1")] == ["ok"]
    assert await store.get_generation_parent("s1", 1) == (0, 2)
    assert len(await store.get_own_turns("s2", 0, 0, 100)) == 5
    await persist(store, header("s1", turn_count=3, generation=1), turns("z", range(2, 3)))
    assert ids(await read_transcript(store, "s1")) == ["a-0", "a-1", "z-2"]

    # Without prior_head (a workflow of an earlier version) nothing but the record changes.
    await persist(store, header("s1", turn_count=5, generation=1), turns("w", range(3, 5)))
    await store.add_generation("s1", 2, 1, 4)
    assert ids(await store.get_own_turns("s1", 1, 0, 100)) == ["z-2", "w-3", "w-4"]


# --- fenced writes (SessionStore.persist) ------------------------------------------------------


async def fenced(
    store: SessionStore,
    fence: int | None,
    state: SessionState,
    new_turns: list[SessionTurn] | None = None,
    checkpoints: list[Checkpoint] | None = None,
) -> bool:
    written = await store.persist(
        PersistBatch(state=state, turns=new_turns or [], checkpoints=checkpoints or [], fence=fence)
    )
    return written is not False


async def test_a_late_write_of_an_older_workflow_task_is_refused(store: SessionStore) -> None:
    """A local flush of a workflow task that timed out lands after the retried task's flush
    (fence 200): it writes nothing, neither its header, nor its turns, nor its checkpoint."""
    assert await fenced(store, 100, header("s1", turn_count=3), turns("a", range(3)))
    assert await fenced(
        store, 200, header("s1", turn_count=5), turns("a", range(3, 5)), [checkpoint("c5", "s1", 5)]
    )
    late = await fenced(
        store,
        150,
        header("s1", turn_count=4, status=SessionStatus.ACTIVE),
        turns("x", range(3, 4)),
        [checkpoint("late", "s1", 4)],
    )
    assert not late
    got = await store.get_session("s1")
    assert got is not None and got.turn_count == 5
    assert ids(await store.get_own_turns("s1", 0, 0, 100)) == [f"a-{i}" for i in range(5)]
    assert ids(await read_transcript(store, "s1")) == [f"a-{i}" for i in range(5)]
    assert [c.checkpoint_id for c in await store.list_checkpoints("s1")] == ["c5"]
    # Refused too when one of its turns has a copy past its head (another path in some stores).
    a4_at_3 = turns("a", range(4, 5))[0].model_copy(update={"seq": 3})
    assert not await fenced(store, 150, header("s1", turn_count=3), [a4_at_3])
    assert ids(await store.get_own_turns("s1", 0, 0, 100)) == [f"a-{i}" for i in range(5)]

    # The same fence again is a retry of the same task's write: accepted, idempotent.
    assert await fenced(store, 200, header("s1", turn_count=5), turns("a", range(3, 5)))
    # An unfenced write (an earlier version, a direct caller) is accepted and moves no fence.
    assert await fenced(store, None, header("s1", turn_count=6), turns("a", range(5, 6)))
    assert not await fenced(store, 199, header("s1", turn_count=2))
    got = await store.get_session("s1")
    assert got is not None and got.turn_count == 6
    # Fences are per session.
    assert await fenced(store, 1, header("s2", turn_count=1), turns("b", range(1)))


async def test_two_runs_of_one_workflow_task_are_ordered_by_their_tiebreak(
    store: SessionStore,
) -> None:
    """A worker ran one workflow task twice (the server gave up on the first run; both write
    with the task's start time, fence 100) and the two numbered its turns differently: x0 at
    seq 0 in the first, y0 in the second, which the session acknowledged. The first run's
    write landing after the second's must not put x0 back (CI, session 23: a burst's stored
    history held a turn twice and lost another). Each attempt's start orders them
    (``PersistBatch.fence_tiebreak``); a retry of the same batch starts later and is accepted."""

    async def write(tiebreak: int | None, turn_id: str) -> bool:
        turn = SessionTurn(turn_id=turn_id, role="user", content=turn_id, seq=0)
        batch = PersistBatch(
            state=header("s1", turn_count=1), turns=[turn], fence=100, fence_tiebreak=tiebreak
        )
        return await store.persist(batch) is not False

    assert await write(2_000, "y0")  # the second run's write lands first
    assert not await write(1_000, "x0")  # the first run's, late: refused
    assert ids(await store.get_own_turns("s1", 0, 0, 10)) == ["y0"]
    assert await write(3_000, "y0")  # a retry of the second run's write: accepted
    assert not await write(None, "x0")  # a write of an earlier version, same fence: refused
    assert ids(await store.get_own_turns("s1", 0, 0, 10)) == ["y0"]
    # A later workflow task wins whatever its tiebreak.
    later = SessionTurn(turn_id="z1", role="user", content="z1", seq=1)
    assert (
        await store.persist(
            PersistBatch(state=header("s1", turn_count=2), turns=[later], fence=101)
        )
        is not False
    )
    assert ids(await store.get_own_turns("s1", 0, 0, 10)) == ["y0", "z1"]


async def test_a_late_write_cannot_move_the_header_back_over_a_head_move(
    store: SessionStore,
) -> None:
    """The head moved to generation 1 (fence 300) and the session closed (fence 400); a late
    flush of generation 0 (fence 250) must not put the header back on generation 0, or a
    restore of the closed session would number its next generation 1 again and overwrite
    that generation's fork point, its checkpoints then resolving through the wrong parent."""
    assert await fenced(
        store, 100, header("s1", turn_count=4), turns("a", range(4)), [checkpoint("c2", "s1", 2)]
    )
    assert await store.add_generation("s1", 1, 0, 2, prior_head=4, fence=300) is not False
    assert await fenced(
        store,
        400,
        header("s1", turn_count=5, generation=1, status=SessionStatus.CLOSED),
        turns("b", range(2, 5)),
        [checkpoint("close", "s1", 5, generation=1)],
    )
    assert not await fenced(store, 250, header("s1", turn_count=6), turns("x", range(4, 6)))
    got = await store.get_session("s1")
    assert got is not None
    assert (got.generation, got.turn_count, got.status) == (1, 5, SessionStatus.CLOSED)
    assert ids(await store.get_own_turns("s1", 0, 0, 100)) == [f"a-{i}" for i in range(4)]
    assert ids(await read_transcript(store, "s1")) == ["a-0", "a-1", "b-2", "b-3", "b-4"]


async def test_a_late_generation_record_is_refused(store: SessionStore) -> None:
    """An attempt of ``record_generation`` that timed out lands after the retried attempt and
    the flushes that followed it: it must not drop generation 1's rows as strays again, nor
    rewrite the record."""
    assert await fenced(store, 100, header("s1", turn_count=3), turns("a", range(3)))
    assert await store.add_generation("s1", 1, 0, 2, prior_head=3, fence=200) is not False
    assert await fenced(
        store, 300, header("s1", turn_count=4, generation=1), turns("b", range(2, 4))
    )
    late = await store.add_generation("s1", 1, 0, 1, prior_head=3, fence=200)
    assert late is False
    assert await store.get_generation_parent("s1", 1) == (0, 2)
    assert ids(await store.get_own_turns("s1", 1, 0, 100)) == ["b-2", "b-3"]
    assert ids(await read_transcript(store, "s1")) == ["a-0", "a-1", "b-2", "b-3"]
    # A late flush of the same attempt's time is refused too; a later record is not.
    assert not await fenced(store, 250, header("s1", turn_count=3), turns("x", range(3, 4)))
    assert await store.add_generation("s1", 2, 1, 3, prior_head=4, fence=500) is not False
    assert await store.get_generation_parent("s1", 2) == (1, 3)


async def test_deleting_a_session_forgets_its_fence(store: SessionStore) -> None:
    assert await fenced(store, 500, header("s1", turn_count=1), turns("a", range(1)))
    assert await store.delete_session("s1")
    assert await fenced(store, 100, header("s1", turn_count=2), turns("b", range(2)))
    assert ids(await read_transcript(store, "s1")) == ["b-0", "b-1"]


async def test_a_header_fenced_at_zero_never_overwrites_a_fenced_write(store: SessionStore) -> None:
    """``SessionManager.create`` stores the new session's header fenced at 0: written when the
    run has not flushed yet, and a no-op once it has (a slow create must not put the header
    back to no turns)."""
    assert await fenced(store, 0, header("s1"))
    got = await store.get_session("s1")
    assert got is not None and got.turn_count == 0
    assert await fenced(store, 1_000, header("s2", turn_count=2), turns("a", range(2)))
    assert not await fenced(store, 0, header("s2"))
    got = await store.get_session("s2")
    assert got is not None and got.turn_count == 2


async def test_a_fenced_flush_drops_checkpoints_past_its_head(store: SessionStore) -> None:
    """Model run 15 (tests/faults/RESULTS.md): a workflow task that then timed out flushed
    turns and a checkpoint past the head the retried task builds; the checkpoint was listed,
    restored, and forked past the head. Within a generation the head only grows and batches are
    written in fence order, so a fenced flush deletes the other checkpoints of its generation
    past its head; checkpoints under it, and of other generations or sessions, stay."""
    assert await fenced(
        store, 100, header("s1", turn_count=3), turns("a", range(3)), [checkpoint("c3", "s1", 3)]
    )
    await persist(
        store, header("s2", turn_count=9), turns("o", range(9)), [checkpoint("o9", "s2", 9)]
    )
    # The dead task: two turns and a checkpoint at 5; the retried task has flushed one turn.
    assert await fenced(
        store, 200, header("s1", turn_count=5), turns("x", range(3, 5)), [checkpoint("ph", "s1", 5)]
    )
    assert await fenced(
        store, 300, header("s1", turn_count=4), turns("y", range(3, 4)), [checkpoint("c4", "s1", 4)]
    )
    assert {c.checkpoint_id for c in await store.list_checkpoints("s1")} == {"c3", "c4"}
    assert [c.checkpoint_id for c in await store.list_checkpoints("s2")] == ["o9"]
    # A checkpoint of the generation left behind stays, past the new generation's head or not.
    assert await store.add_generation("s1", 1, 0, 2, prior_head=4, fence=400) is not False
    assert await fenced(store, 500, header("s1", turn_count=2, generation=1))
    assert {c.checkpoint_id for c in await store.list_checkpoints("s1")} == {"c3", "c4"}

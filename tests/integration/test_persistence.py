"""Checkpoints, restore, delete and capacity on the real dev server and PostgreSQL."""

from __future__ import annotations

import pytest

from durable_sessions.errors import (
    CheckpointNotFoundError,
    SessionCapacityError,
    SessionNotFoundError,
)
from durable_sessions.models import (
    Checkpoint,
    SessionConfig,
    SessionState,
    SessionStatus,
    SessionTurn,
)
from durable_sessions.stores.base import PersistBatch, read_transcript
from tests.helpers import assert_eventually
from tests.integration.conftest import Stack


def turn(text: str) -> SessionTurn:
    return SessionTurn(role="user", content=text)


async def test_checkpoints_manual_auto_close(stack: Stack) -> None:
    m = stack.manager
    s = await m.create("cp", config=SessionConfig(auto_checkpoint_interval=4, flush_interval=0.2))
    for i in range(3):
        await m.add_turn(s.session_id, turn(f"t{i}"))
    manual = await m.checkpoint(s.session_id)
    assert manual.turn_count == 3
    assert manual.reason == "manual"
    stored = await stack.store.get_checkpoint(manual.checkpoint_id)  # persisted on return
    assert stored is not None and stored.turn_count == 3
    for i in range(3, 9):
        await m.add_turn(s.session_id, turn(f"t{i}"))
    await m.close(s.session_id)
    cps = await m.list_checkpoints(s.session_id)
    assert [(c.reason, c.turn_count) for c in cps] == [
        ("manual", 3),
        ("auto", 4),
        ("auto", 8),
        ("close", 9),
    ]


async def test_restore_running_session_in_place(stack: Stack) -> None:
    m = stack.manager
    s = await m.create("rs", {"v": 1})
    for i in range(3):
        await m.add_turn(s.session_id, turn(f"keep {i}"))
    cp = await m.checkpoint(s.session_id)
    for i in range(2):
        await m.add_turn(s.session_id, turn(f"rewound {i}"))

    state = await m.restore(cp.checkpoint_id)
    assert state.status is SessionStatus.ACTIVE
    assert state.turn_count == 3
    assert state.generation == 1
    assert [t.content for t in await m.history(s.session_id)] == [f"keep {i}" for i in range(3)]
    assert [t.content for t in await m.recent_turns(s.session_id)] == [
        f"keep {i}" for i in range(3)
    ]

    new = await m.add_turn(s.session_id, turn("new branch of time"))
    assert new.seq == 3
    history = await m.history(s.session_id)
    assert [t.content for t in history] == [*(f"keep {i}" for i in range(3)), "new branch of time"]

    # The rewound turns are still in the log (generation 0), and the rewind is recorded.
    async def logged() -> None:
        old = await stack.store.get_own_turns(s.session_id, 0, 0, 10)
        assert [t.content for t in old][3:] == ["rewound 0", "rewound 1"]

    await assert_eventually(logged)
    reasons = [c.reason for c in await m.list_checkpoints(s.session_id)]
    assert "restore" in reasons

    # Restoring the very first checkpoint again (generation 0) works from generation 1 too.
    state = await m.restore(cp.checkpoint_id)
    assert state.generation == 2
    assert [t.content for t in await m.history(s.session_id)] == [f"keep {i}" for i in range(3)]


async def test_restore_closed_session_brings_it_back(stack: Stack) -> None:
    m = stack.manager
    s = await m.create("rc")
    for i in range(4):
        await m.add_turn(s.session_id, turn(f"t{i}"))
    cp = await m.checkpoint(s.session_id)
    await m.add_turn(s.session_id, turn("after cp"))
    await m.close(s.session_id)
    await stack.client.get_workflow_handle(s.session_id).result()

    state = await m.restore(cp.checkpoint_id)
    assert state.status is SessionStatus.ACTIVE
    assert state.turn_count == 4
    assert [t.content for t in await m.history(s.session_id)] == [f"t{i}" for i in range(4)]
    again = await m.add_turn(s.session_id, turn("back again"))
    assert again.seq == 4
    assert (await m.get(s.session_id)).status is SessionStatus.ACTIVE


async def test_restore_expired_session(stack: Stack) -> None:
    m = stack.manager
    s = await m.create("re", ttl=1.0)
    await m.add_turn(s.session_id, turn("before expiry"))

    async def expired() -> None:
        header = await stack.store.get_session(s.session_id)
        assert header is not None and header.status is SessionStatus.EXPIRED

    await assert_eventually(expired)
    cp = (await m.list_checkpoints(s.session_id))[-1]
    assert cp.reason == "expire"
    state = await m.restore(cp.checkpoint_id)
    assert state.status is SessionStatus.ACTIVE
    assert [t.content for t in await m.history(s.session_id)] == ["before expiry"]


async def test_unknown_checkpoint(stack: Stack) -> None:
    with pytest.raises(CheckpointNotFoundError):
        await stack.manager.restore("no-such-checkpoint")


async def test_delete_removes_everything(stack: Stack) -> None:
    m = stack.manager
    s = await m.create("del")
    for i in range(3):
        await m.add_turn(s.session_id, turn(f"private {i}"))
    await m.checkpoint(s.session_id)
    await m.delete(s.session_id)
    with pytest.raises(SessionNotFoundError):
        await m.get(s.session_id)
    with pytest.raises(SessionNotFoundError):
        await m.history(s.session_id)
    assert await stack.store.get_session(s.session_id) is None
    assert await stack.store.list_checkpoints(s.session_id) == []
    assert await read_transcript(stack.store, s.session_id, generation=0, turn_count=3) == []
    with pytest.raises(SessionNotFoundError):
        await m.delete(s.session_id)


async def test_max_sessions_per_user(stack: Stack) -> None:
    m = stack.manager
    cfg = SessionConfig(max_sessions_per_user=2)
    a = await m.create("cap-user", config=cfg)
    await m.create("cap-user", config=cfg)
    with pytest.raises(SessionCapacityError) as exc_info:
        await m.create("cap-user", config=cfg)
    assert exc_info.value.field == "max_sessions_per_user"
    await m.close(a.session_id)  # a closed session frees its slot
    await m.create("cap-user", config=cfg)


async def test_history_pages_across_flushed_and_pending(stack: Stack) -> None:
    m = stack.manager
    cfg = SessionConfig(flush_interval=30, flush_batch_size=5)  # some flushed, some pending
    s = await m.create("pages", config=cfg)
    for i in range(12):
        await m.add_turn(s.session_id, turn(f"p{i}"))
    full = await m.history(s.session_id)
    assert [t.content for t in full] == [f"p{i}" for i in range(12)]
    page = await m.history(s.session_id, offset=8, limit=3)
    assert [t.content for t in page] == ["p8", "p9", "p10"]
    page = await m.history(s.session_id, offset=3, limit=4)
    assert [t.content for t in page] == ["p3", "p4", "p5", "p6"]
    assert await m.history(s.session_id, offset=20) == []


async def test_truncate_moves_the_head_and_keeps_the_log(stack: Stack) -> None:
    m = stack.manager
    s = await m.create("trunc")
    for i in range(5):
        await m.add_turn(s.session_id, SessionTurn(role="user", content=f"t{i}", tokens=10))
    state = await m.truncate(s.session_id, 3)
    assert state.turn_count == 3
    assert state.total_tokens == 30
    assert [t.content for t in await m.history(s.session_id)] == ["t0", "t1", "t2"]
    again = await m.add_turn(s.session_id, SessionTurn(role="user", content="t3 again"))
    assert again.seq == 3
    cleared = await m.truncate(s.session_id, 0)
    assert cleared.turn_count == 0
    assert await m.history(s.session_id) == []

    async def logged() -> None:
        assert len(await stack.store.get_own_turns(s.session_id, 0, 0, 10)) == 5

    await assert_eventually(logged)


async def test_a_head_move_drops_rows_a_timed_out_task_left_past_the_head(stack: Stack) -> None:
    """A flush in a workflow task that then timed out stays in the store: here turns past the
    head of generation 0 and, as if that task had also moved the head, a turn and a checkpoint
    in generation 1. The retried task's head move (a truncate from head 5) drops them all."""
    m = stack.manager
    s = await m.create("strays")
    for i in range(5):
        await m.add_turn(s.session_id, turn(f"t{i}"))

    async def flushed() -> None:
        stored = await stack.store.get_session(s.session_id)
        assert stored is not None and stored.turn_count == 5

    await assert_eventually(flushed)
    header = await stack.store.get_session(s.session_id)
    assert header is not None
    ghost_turns = [
        SessionTurn(turn_id=f"x{i}", role="user", content=f"x{i}", seq=i) for i in (5, 6)
    ]
    await stack.store.persist(
        PersistBatch(state=header.model_copy(update={"turn_count": 7}), turns=ghost_turns)
    )
    await stack.store.add_generation(s.session_id, 1, 0, 1)
    gen1 = header.model_copy(update={"generation": 1, "turn_count": 2})
    await stack.store.persist(
        PersistBatch(
            state=gen1,
            turns=[SessionTurn(turn_id="y1", role="user", content="y1", seq=1)],
            checkpoints=[
                Checkpoint(
                    checkpoint_id="ghost",
                    session_id=s.session_id,
                    generation=1,
                    turn_count=2,
                    reason="auto",
                    created_at=header.updated_at,
                )
            ],
        )
    )

    state = await m.truncate(s.session_id, 3)
    assert (state.generation, state.turn_count) == (1, 3)
    old = await stack.store.get_own_turns(s.session_id, 0, 0, 100)
    assert [t.content for t in old] == [f"t{i}" for i in range(5)]
    assert await stack.store.get_own_turns(s.session_id, 1, 0, 100) == []
    assert "ghost" not in {c.checkpoint_id for c in await m.list_checkpoints(s.session_id)}
    assert [t.content for t in await m.history(s.session_id)] == ["t0", "t1", "t2"]
    assert (await m.add_turn(s.session_id, turn("t3 again"))).seq == 3


async def test_a_late_write_of_an_older_task_cannot_rewind_a_closed_session(stack: Stack) -> None:
    """Run 13's restore violations (tests/faults/RESULTS.md): a flush of a workflow task that
    timed out landed after the session had moved its head and closed, putting the header back
    on generation 0; restoring the closed session then numbered its next generation 1 again
    and overwrote that generation's fork point, so the close checkpoint lost its own turns.
    Every write of the workflow is fenced by when its task started, so the late write (fenced
    at the session's creation, the earliest task there is) is refused."""
    m = stack.manager
    s = await m.create("late-write", config=SessionConfig(flush_interval=0.2))
    for i in range(5):
        await m.add_turn(s.session_id, turn(f"t{i}"))
    await m.truncate(s.session_id, 3)
    for i in range(3, 6):
        await m.add_turn(s.session_id, turn(f"u{i}"))
    closed = await m.close(s.session_id)
    assert (closed.generation, closed.turn_count) == (1, 6)
    close_cp = next(c for c in await m.list_checkpoints(s.session_id) if c.reason == "close")
    header = await stack.store.get_session(s.session_id)
    assert header is not None and header.status is SessionStatus.CLOSED

    created_us = int(s.created_at.timestamp() * 1_000_000)
    late = PersistBatch(
        state=header.model_copy(
            update={"generation": 0, "turn_count": 7, "status": SessionStatus.ACTIVE}
        ),
        turns=[SessionTurn(turn_id=f"x{i}", role="user", content=f"x{i}", seq=i) for i in (5, 6)],
        fence=created_us,
    )
    assert await stack.store.persist(late) is False
    after = await stack.store.get_session(s.session_id)
    assert after is not None
    assert (after.generation, after.turn_count, after.status) == (1, 6, SessionStatus.CLOSED)

    restored = await m.restore(close_cp.checkpoint_id)
    assert (restored.generation, restored.turn_count) == (2, 6)
    expected = ["t0", "t1", "t2", "u3", "u4", "u5"]
    assert [t.content for t in await m.history(s.session_id)] == expected
    assert [
        t.content
        for t in await read_transcript(
            stack.store, s.session_id, generation=close_cp.generation, turn_count=6
        )
    ] == expected


async def test_a_terminal_header_left_by_a_timed_out_task_does_not_hide_the_live_session(
    stack: Stack,
) -> None:
    """Run 14 of the model test: a workflow task took a ``close``, ran its local-activity flush
    (the store's header: CLOSED) and timed out; its commands were discarded and the run went on.
    Until the run's next flush rewrites the header, reads must not take the store's word that
    the session has ended: ``get`` and ``history`` ask Temporal, and answer from the run."""
    m = stack.manager
    header = await _session_with_flushed_turns(stack, "phantom-close", 2)
    dead_task = header.model_copy(update={"status": SessionStatus.CLOSED})
    # Unfenced: it lands as the dead task's would, after every earlier write, before the next.
    assert await stack.store.persist(PersistBatch(state=dead_task)) is not False
    stored = await stack.store.get_session(header.session_id)
    assert stored is not None and stored.status is SessionStatus.CLOSED

    receipt = await m.add_turn(header.session_id, turn("t2"))
    assert receipt.seq == 2
    assert (await m.get(header.session_id)).status is SessionStatus.ACTIVE
    assert [t.content for t in await m.history(header.session_id)] == ["t0", "t1", "t2"]

    async def repaired() -> None:
        stored = await stack.store.get_session(header.session_id)
        assert stored is not None
        assert (stored.status, stored.turn_count) == (SessionStatus.ACTIVE, 3)

    await assert_eventually(repaired)  # the run's next flush rewrites the header
    await m.close(header.session_id)
    assert (await m.get(header.session_id)).status is SessionStatus.CLOSED
    assert [t.content for t in await m.history(header.session_id)] == ["t0", "t1", "t2"]


async def test_a_checkpoint_past_the_head_is_not_restored(stack: Stack) -> None:
    """Model run 15: a workflow task that then timed out stored a checkpoint past the head the
    run went on with; the checkpoint was listed, restored, and the new generation forked past
    turns that do not exist. The run refuses it as not found (and its next flush deletes it)."""
    m = stack.manager
    header = await _session_with_flushed_turns(stack, "phantom-checkpoint", 3)
    phantom = Checkpoint(
        checkpoint_id="phantom",
        session_id=header.session_id,
        generation=0,
        turn_count=5,
        reason="auto",
        created_at=header.updated_at,
    )
    await stack.store.persist(PersistBatch(state=header, checkpoints=[phantom]))
    with pytest.raises(CheckpointNotFoundError):
        await m.restore("phantom")
    state = await m.get(header.session_id)
    assert (state.generation, state.turn_count) == (0, 3)
    assert [t.content for t in await m.history(header.session_id)] == ["t0", "t1", "t2"]
    assert (await m.add_turn(header.session_id, turn("t3"))).seq == 3


async def _session_with_flushed_turns(stack: Stack, user: str, n: int) -> SessionState:
    """A session of ``n`` turns, all flushed; its header as the store holds it."""
    m = stack.manager
    s = await m.create(user, config=SessionConfig(flush_interval=0.2))
    for i in range(n):
        await m.add_turn(s.session_id, turn(f"t{i}"))

    async def flushed() -> None:
        stored = await stack.store.get_session(s.session_id)
        assert stored is not None and stored.turn_count == n

    await assert_eventually(flushed)
    header = await stack.store.get_session(s.session_id)
    assert header is not None
    return header

"""The decisions the ``Session`` workflow delegates to ``core``: flushing, accepting turns, forks
and merge records. Pure: no Temporal, no store."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from durable_sessions.core.flushing import (
    BACKSTOP_HISTORY_EVENTS,
    CAN_HISTORY_BYTES,
    CAN_HISTORY_EVENTS,
    CARRIED_BYTES,
    CARRY_OVER_BYTES,
    COLD_VISIT_AFTER,
    COLD_VISIT_FEATURES,
    FLUSH_BATCH_BYTES,
    FULL_RUN_IDLE_FEATURES,
    IDLE_CONTINUE_MIN_EVENTS,
    IDLE_CONTINUE_MIN_EVENTS_AFTER_FULL,
    IDLE_CONTINUE_PAYS_FEATURES,
    MAX_CARRIED_CHECKPOINTS,
    VISIT_ANSWER_FEATURES,
    VISIT_TASKS,
    RunSize,
    carries_over,
    carry_full,
    cold_visit,
    cut_batch,
    flush_before_continuing,
    flushable,
    header_snapshot,
    idle_continue_due,
    idle_min_events,
    in_flow_after,
    must_turn_away,
    plan_batch,
    should_continue_as_new,
    stores_cold_visits,
    stores_visit_answers,
    text_bytes,
    visit_goes_on,
)
from durable_sessions.core.forks import (
    branch_header,
    fork_at_checkpoint,
    fork_at_seq,
    fork_now,
    merge_record,
    new_merge_candidates,
    with_merge_record,
)
from durable_sessions.core.turns import accept_turn, forget_after, push_recent, remember
from durable_sessions.models import Checkpoint, SessionConfig, SessionState, SessionTurn
from durable_sessions.workflows._patches import RUN_FEATURES

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def state(turn_count: int = 0, tokens: int = 0, cost: float = 0.0) -> SessionState:
    return SessionState(
        session_id="s",
        user_id="u",
        created_at=NOW,
        updated_at=NOW,
        turn_count=turn_count,
        total_tokens=tokens,
        total_cost=cost,
    )


def turn(seq: int, content: str = "hello", tokens: int = 2, cost: float = 0.5) -> SessionTurn:
    return SessionTurn(
        turn_id=f"t{seq}", role="user", content=content, seq=seq, tokens=tokens, cost=cost
    )


def checkpoint(turn_count: int, cid: str) -> Checkpoint:
    return Checkpoint(
        checkpoint_id=cid, session_id="s", turn_count=turn_count, created_at=NOW, reason="auto"
    )


# ---------------------------------------------------------------------- flushing


def test_cut_batch_bounds_by_bytes_but_takes_at_least_one() -> None:
    big = "x" * (FLUSH_BATCH_BYTES // 2)
    pending = [turn(i, big) for i in range(5)]
    assert cut_batch(pending, None) == 1
    assert cut_batch([turn(0, "x" * (FLUSH_BATCH_BYTES * 2))], None) == 1
    assert cut_batch([turn(i) for i in range(10)], None) == 10
    assert cut_batch([turn(i) for i in range(10)], 3) == 3
    assert cut_batch([], None) == 0


def test_partial_batch_header_and_checkpoints_stop_at_its_last_turn() -> None:
    head = state(turn_count=10, tokens=20, cost=5.0)
    pending = [turn(i) for i in range(6, 10)]
    cps = [checkpoint(7, "a"), checkpoint(8, "b"), checkpoint(10, "c")]
    batch = plan_batch(head, pending, cps, 2)
    assert [t.seq for t in batch.turns] == [6, 7]
    assert not batch.complete
    assert batch.header.turn_count == 8
    assert batch.header.total_tokens == 16
    assert batch.header.total_cost == pytest.approx(4.0)
    assert [c.checkpoint_id for c in batch.checkpoints] == ["a", "b"]
    assert head.turn_count == 10  # the live header is untouched


def test_complete_batch_takes_every_checkpoint_and_the_live_header() -> None:
    head = state(turn_count=3)
    batch = plan_batch(head, [turn(2)], [checkpoint(3, "a")], None)
    assert batch.complete
    assert batch.header == head
    assert batch.header is not head
    assert [c.checkpoint_id for c in batch.checkpoints] == ["a"]


def test_header_only_batch_when_nothing_is_pending() -> None:
    batch = plan_batch(state(turn_count=4), [], [checkpoint(4, "a")], None)
    assert batch.turns == []
    assert batch.complete
    assert batch.header.turn_count == 4


def test_flushable_leaves_out_turns_of_the_current_task() -> None:
    assert flushable(5, fast=True, arrived_task=7, arrived_in_task=2, current_task=7) == 3
    assert flushable(5, fast=True, arrived_task=7, arrived_in_task=2, current_task=9) == 5
    assert flushable(5, fast=False, arrived_task=7, arrived_in_task=2, current_task=7) == 5
    assert flushable(1, fast=True, arrived_task=7, arrived_in_task=3, current_task=7) == 0


def test_continue_as_new_and_backstop() -> None:
    small = RunSize(events=10, bytes=1_000, suggested=False, messages=5)
    assert not should_continue_as_new(small, 1000)
    assert should_continue_as_new(RunSize(10, 1_000, True, 5), 1000)
    assert should_continue_as_new(RunSize(10, 1_000, False, 1000), 1000)
    assert should_continue_as_new(RunSize(CAN_HISTORY_EVENTS, 1_000, False, 5), 1000)
    assert should_continue_as_new(RunSize(10, CAN_HISTORY_BYTES, False, 5), 1000)
    assert not must_turn_away(small, draining=False)
    assert must_turn_away(small, draining=True)
    assert must_turn_away(RunSize(BACKSTOP_HISTORY_EVENTS, 0, True, 0), draining=False)


def test_text_bytes() -> None:
    assert text_bytes([turn(0, "abc"), turn(1, "de")]) == 5


# ---------------------------------------------------------------------- accepting turns


def test_accept_turn_gives_the_next_seq_and_moves_counters() -> None:
    head = state(turn_count=9, tokens=5)
    ids = iter(["generated"])
    accepted = accept_turn(
        head,
        SessionConfig(auto_checkpoint_interval=10),
        {},
        {"role": "user", "content": "hi there", "tokens": None, "turn_id": None},
        new_id=lambda: next(ids),
        now=NOW,
    )
    assert accepted.new
    assert accepted.turn.seq == 9
    assert accepted.turn.turn_id == "generated"
    assert accepted.turn.timestamp == NOW
    assert accepted.turn.tokens is not None
    assert accepted.turn.tokens > 0
    assert head.turn_count == 10
    assert head.total_tokens == 5 + accepted.turn.tokens
    assert accepted.auto_checkpoint  # the 10th turn


def test_accept_turn_answers_a_known_id_without_change_or_randomness() -> None:
    head = state(turn_count=3)

    def no_id() -> str:
        raise AssertionError("a known id must not draw a new one")

    accepted = accept_turn(
        head,
        SessionConfig(),
        {"known": 1},
        {"role": "user", "content": "again", "turn_id": "known"},
        new_id=no_id,
        now=NOW,
    )
    assert not accepted.new
    assert accepted.turn.seq == 1
    assert head.turn_count == 3


def test_recent_window_keeps_the_newest_by_count_and_bytes() -> None:
    recent: list[SessionTurn] = []
    for i in range(30):
        push_recent(recent, turn(i), window=20)
    assert [t.seq for t in recent] == list(range(10, 30))
    push_recent(recent, turn(30, "x" * 100), window=20, max_bytes=150)
    assert recent[-1].seq == 30
    assert text_bytes(recent) <= 150 or len(recent) == 1


def test_dedup_keeps_the_latest_ids_and_forgets_cut_turns() -> None:
    dedup: dict[str, int] = {}
    for i in range(15):
        remember(dedup, f"t{i}", i, window=10)
    assert list(dedup) == [f"t{i}" for i in range(5, 15)]
    assert forget_after(dedup, 8) == {f"t{i}": i for i in range(5, 8)}


# ---------------------------------------------------------------------- forks and merges


def test_fork_points() -> None:
    head = state(turn_count=6, tokens=60, cost=6.0)
    head.generation = 2
    recent = [turn(i) for i in range(3, 6)]
    now = fork_now(head, recent)
    assert (now.seq, now.generation, now.tokens) == (6, 2, 60)
    cp = Checkpoint(
        checkpoint_id="c",
        session_id="s",
        turn_count=4,
        created_at=NOW,
        reason="manual",
        generation=1,
        total_tokens=40,
        total_cost=4.0,
    )
    at_cp = fork_at_checkpoint(cp, recent)
    assert (at_cp.seq, at_cp.generation, at_cp.tokens) == (4, 1, 40)
    assert [t.seq for t in at_cp.recent] == [3]
    at = fork_at_seq(head, recent, 5, dropped_tokens=10, dropped_cost=1.0)
    assert (at.seq, at.generation, at.tokens, at.cost) == (5, 2, 50, pytest.approx(5.0))
    assert [t.seq for t in at.recent] == [3, 4]
    with pytest.raises(ValueError, match="at_seq"):
        fork_at_seq(head, recent, 7, 0, 0.0)


def test_branch_header_points_at_the_prefix() -> None:
    parent = state(turn_count=6, tokens=60)
    parent.metadata = {"topic": "x"}
    child = branch_header(parent, fork_now(parent, []), "child", "alt", NOW)
    assert child.parent_session_id == "s"
    assert child.fork_seq == child.turn_count == 6
    assert child.branch_name == "alt"
    assert child.metadata == {"topic": "x"}
    assert child.metadata is not parent.metadata


def test_merge_candidates_and_record() -> None:
    candidates = [turn(0), turn(1), turn(2)]
    fresh = new_merge_candidates(candidates, existing={"t0"}, dedup={"t2": 9})
    assert [t.turn_id for t in fresh] == ["t1"]
    record = merge_record("src", "append", 1, NOW)
    meta = with_merge_record({"merges": [{"old": True}], "k": 1}, record)
    assert meta["merges"][-1] == {
        "source_session_id": "src",
        "strategy": "append",
        "added": 1,
        "at": NOW.isoformat(),
    }
    assert len(meta["merges"]) == 2
    assert meta["k"] == 1


def test_runs_continue_at_the_configured_event_bound() -> None:
    size = RunSize(events=400, bytes=1_000, suggested=False, messages=5)
    assert should_continue_as_new(size, 1000, max_events=400)
    assert not should_continue_as_new(size, 1000, max_events=401)
    # Never later than the hard bound, whatever the config says.
    big = RunSize(events=CAN_HISTORY_EVENTS, bytes=0, suggested=False, messages=0)
    assert should_continue_as_new(big, 1000, max_events=10_000)


def test_idle_continue_needs_quiet_growth_and_nothing_in_progress() -> None:
    grown = IDLE_CONTINUE_MIN_EVENTS
    assert idle_continue_due(grown, 10.0, 10.0, busy=False)
    assert not idle_continue_due(grown, 9.9, 10.0, busy=False)
    assert not idle_continue_due(grown - 1, 60.0, 10.0, busy=False)  # already minimal
    assert not idle_continue_due(grown, 60.0, 10.0, busy=True)
    assert not idle_continue_due(grown, 60.0, None, busy=False)  # switched off


def test_runs_of_features_3_continue_small_idle_runs() -> None:
    """A created session with a turn or two (19-30 events) shrinks once it idles; a continued
    run with one turn (about 16) does not; runs started before keep their threshold."""
    assert idle_min_events(0) == idle_min_events(2) == IDLE_CONTINUE_MIN_EVENTS
    small = idle_min_events(3)
    assert 16 < small <= 19
    assert idle_continue_due(19, 10.0, 10.0, busy=False, min_events=small)
    assert not idle_continue_due(16, 10.0, 10.0, busy=False, min_events=small)
    assert not idle_continue_due(30, 10.0, 10.0, busy=False, min_events=idle_min_events(2))


def test_runs_of_features_10_continue_idle_runs_only_once_they_have_grown() -> None:
    """A session created with a turn or two and visited once (13-27 events) stays in its run:
    ending it would cost a replay and a new run on every visit. Runs of 3-9 keep 18."""
    floor = idle_min_events(IDLE_CONTINUE_PAYS_FEATURES)
    assert floor == IDLE_CONTINUE_MIN_EVENTS == idle_min_events(RUN_FEATURES)
    assert floor > 27
    assert not idle_continue_due(27, 60.0, 10.0, busy=False, min_events=floor)
    assert idle_continue_due(floor, 10.0, 10.0, busy=False, min_events=floor)
    assert idle_min_events(IDLE_CONTINUE_PAYS_FEATURES - 1) == idle_min_events(3) < floor


def test_runs_of_features_14_after_a_full_run_continue_from_fewer_events() -> None:
    """A run a size continue-as-new started idles into a minimal run from 16 events (a fresh
    session holds 8-23); every other run, and runs a size continue-as-new started under
    features before 14, keep 40."""
    after_full = idle_min_events(FULL_RUN_IDLE_FEATURES, continued_full=True)
    assert after_full == IDLE_CONTINUE_MIN_EVENTS_AFTER_FULL == 16
    assert idle_min_events(RUN_FEATURES, continued_full=True) == after_full
    assert idle_min_events(RUN_FEATURES) == IDLE_CONTINUE_MIN_EVENTS  # first or idle-started
    assert (
        idle_min_events(FULL_RUN_IDLE_FEATURES - 1, continued_full=True) == IDLE_CONTINUE_MIN_EVENTS
    )
    assert idle_min_events(3, continued_full=True) == idle_min_events(3)  # features 3-9: 18
    assert idle_continue_due(16, 10.0, 10.0, busy=False, min_events=after_full)
    assert not idle_continue_due(15, 60.0, 10.0, busy=False, min_events=after_full)
    assert not idle_continue_due(39, 60.0, 10.0, busy=False, min_events=IDLE_CONTINUE_MIN_EVENTS)


def test_runs_of_features_6_carry_what_is_pending_into_the_next_run() -> None:
    """A size continue-as-new of a run of features 6 flushes only what would not fit in the
    next run's input, or a dirty header with no turn to carry it; runs before 6 keep flushing
    every checkpoint and all text over the carry-over bound (their replay must not change)."""
    assert not carries_over(3) and carries_over(6)
    some = [turn(i) for i in range(5)]
    cps = [checkpoint(5, "c5")]

    def must(pending: list[SessionTurn], cps: list[Checkpoint], *, dirty: bool = True) -> bool:
        return flush_before_continuing(pending, cps, header_dirty=dirty, carry=True)

    assert not must(some, cps)
    assert not must([], cps)
    assert not must(some, [])
    assert not must([], [], dirty=False)
    assert must([], [])  # a header change alone: the next run would start with a clean header
    assert must(some, [checkpoint(5, f"c{i}") for i in range(MAX_CARRIED_CHECKPOINTS + 1)])
    big = [turn(0, "x" * (CARRIED_BYTES // 2)), turn(1, "y" * (CARRIED_BYTES // 2))]
    assert must(big, [])  # text fits, text plus per-turn overhead does not
    many = [turn(i, ".") for i in range(CARRIED_BYTES // 100)]
    assert must(many, [])  # little text, but too many turns for one input

    def old(pending: list[SessionTurn], cps: list[Checkpoint]) -> bool:
        return flush_before_continuing(pending, cps, header_dirty=True, carry=False)

    assert old(some, cps) and not old(some, []) and not old([], []) and not old(many, [])
    half = [turn(0, "x" * (CARRY_OVER_BYTES // 2)), turn(1, "y" * (CARRY_OVER_BYTES // 2))]
    assert not old(half, []) and old([*half, turn(2, "z")], [])


def test_runs_of_features_6_flush_in_flow_before_they_could_not_carry_over() -> None:
    """Once the turns a flush may take now reach what a continue-as-new carries, they go in
    flow; turns of the current workflow task (past ``flushable``) do not count."""
    turns = [turn(i, "x" * 1000) for i in range(CARRIED_BYTES // 1256 + 1)]
    assert carry_full(turns, len(turns))
    assert not carry_full(turns, len(turns) - 1)
    assert not carry_full(turns, 0)
    assert not carry_full([turn(0)], 1)


def test_runs_of_features_6_flush_in_flow_later_in_the_interval() -> None:
    assert in_flow_after(2.0, carry=False) == 1.0
    assert in_flow_after(2.0, carry=True) == 1.5


def test_runs_of_features_12_store_a_cold_visit_in_its_own_task() -> None:
    """The first update of a run, or one after the idle quiet (10 s when idle continue-as-new
    is off), starts a cold visit, when nothing was pending before its task and all that is
    pending is its task's update turns; a busy session's updates do not."""
    assert not stores_cold_visits(11) and stores_cold_visits(COLD_VISIT_FEATURES)

    def cold(quiet: float | None, after: float | None) -> bool:
        return cold_visit(quiet, after, armed=False, only_task_updates=True)

    assert cold(None, 10.0)  # the run's first update
    assert cold(10.0, 10.0) and not cold(9.9, 10.0)
    assert cold(0.5, 0.5) and not cold(0.4, 0.5)
    assert cold(COLD_VISIT_AFTER, None) and not cold(COLD_VISIT_AFTER - 0.1, None)
    # A batch waiting already (its flush timer may fire in this very task), or a signal's
    # turn or a checkpoint pending with the updates': the batched flush.
    assert not cold_visit(None, 10.0, armed=True, only_task_updates=True)
    assert not cold_visit(60.0, 10.0, armed=False, only_task_updates=False)


def test_runs_of_features_13_store_a_visits_answer_in_its_own_task() -> None:
    """The update task after a cold visit's (the answer) is stored in its own task too; the
    visit's next one batches, as does any task that finds a batch waiting or a signal's turn."""
    assert not stores_visit_answers(12) and stores_visit_answers(VISIT_ANSWER_FEATURES)
    assert VISIT_TASKS == 2

    def goes_on(visit_tasks: int, *, armed: bool = False, only: bool = True) -> bool:
        return visit_goes_on(visit_tasks, armed=armed, only_task_updates=only)

    assert goes_on(1)  # the cold visit's task was stored: its answer is too
    assert not goes_on(0)  # no visit going on (none yet, or a batch ended it)
    assert not goes_on(VISIT_TASKS)  # a third task in a row: busy, batched
    assert not goes_on(1, armed=True)
    assert not goes_on(1, only=False)


def test_a_flushed_header_is_a_snapshot_later_changes_do_not_reach() -> None:
    """What a flush hands its activity (and, if the store is down, the ordinary activity that
    retries it later) is the header as of the batch, nested metadata included."""
    header = state(turn_count=3, tokens=30)
    header.metadata = {"topic": "x", "tags": ["a"]}
    snap = header_snapshot(header)
    assert snap == header.model_copy(deep=True)
    header.turn_count += 1
    header.metadata["topic"] = "y"
    header.metadata["tags"].append("b")
    assert snap.turn_count == 3
    assert snap.metadata == {"topic": "x", "tags": ["a"]}

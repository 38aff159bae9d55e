"""Replay recorded histories against today's workflow code: the gate for workflow changes.

A failure here means a change to ``workflows/`` would break sessions already running. Fix the
change (``workflow.patched``) rather than re-recording; see ``scripts/record_histories.py``.
"""

from __future__ import annotations

import base64
import itertools
import json
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from durable_sessions.plugin import DurableSessionsPlugin
from durable_sessions.stores.memory import InMemorySessionStore
from durable_sessions.worker import WORKFLOWS, workflow_runner
from durable_sessions.workflows.messages import SessionWorkflowInput
from tests.replay_answers import AnswerCapture, answer_mismatches

HISTORIES_DIR = Path(__file__).parents[1] / "histories"
HISTORIES = sorted(HISTORIES_DIR.glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def test_histories_are_recorded() -> None:
    names = {p.stem for p in HISTORIES}
    assert {
        "lifecycle",
        "ttl_expiry",
        "restore_in_place",
        "continue_as_new",
        "branch_and_merge_parent",
        "branch_and_merge_child",
        "group_and_context",
        "drain_with_signals",
        "local_flush",
        "operations_v2",
        "idle_continue_v2",
        "idle_continued_run_v2",
        "small_idle_v3",
        "small_idle_continued_v3",
        "single_batch_v3",
        "carry_over_v6",
        "carry_over_continued_v6",
        "no_checkpoint_past_head_v6",
        "arrival_order_v9",
        "group_ticks_v9",
        "ttl_expiry_v9",
        "idle_continue_v9",
        "short_idle_v10",
        "idle_continue_v10",
        "idle_continued_run_v10",
        "query_task_timer_v11",
        "cold_visit_v12",
        "cold_visit_continued_v12",
        "visit_answers_v13",
        "visit_answers_signal_v13",
        "visit_answers_continued_v13",
        "full_run_v14",
        "full_run_idle_v14",
        "full_run_idled_v14",
    } <= names


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_replay(path: Path) -> None:
    """Same commands, and every update answers as it did when the history was recorded (a
    replay that swaps two turns' seqs sends the same commands: ``tests/replay_answers.py``)."""
    replayer = Replayer(
        workflows=WORKFLOWS,
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(sandboxed=True),
        interceptors=[AnswerCapture()],
    )
    history = load(path)
    await replayer.replay_workflow(history)
    assert answer_mismatches(history) == []


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_replay_through_the_plugin(path: Path) -> None:
    """What users run: the plugin brings the workflows, converter and sandbox pass-throughs."""
    replayer = Replayer(workflows=[], plugins=[DurableSessionsPlugin(InMemorySessionStore())])
    await replayer.replay_workflow(load(path))


def test_run_features_replay_without_patch_markers() -> None:
    """Runs of this version carry ``features`` and record no patch marker (fewer events to
    replay on a cache miss); their continued runs start with five events."""
    for name in ("operations_v2", "idle_continue_v2", "idle_continued_run_v2"):
        events = load(HISTORIES_DIR / f"{name}.json").events
        started = events[0].workflow_execution_started_event_attributes
        assert b'"features":2' in started.input.payloads[0].data.replace(b" ", b"")
        markers = [
            e for e in events if e.marker_recorded_event_attributes.marker_name == "core_patch"
        ]
        assert not markers, name
    continued = load(HISTORIES_DIR / "idle_continued_run_v2.json").events
    assert continued[4].event_type == EventType.EVENT_TYPE_TIMER_STARTED  # the TTL timer, no more


async def test_runs_of_features_11_flush_alike_after_a_query_task_handed_a_timer_over() -> None:
    """``_patches.UPDATE_TURNS_WAIT`` (tests/faults/test_cold_update_replay.py recorded it): a
    read reached the restarted worker as a query task while the flush timer had fired, so the
    live run saw the timer (event 12) before the next task's update; the task that followed
    stored one turn (the marker, event 18) and armed a timer for the update's turn (event 21).
    A replay hands the timer and the update over together. The same history as a run of
    features 10 (whose flush takes every turn of the task) does not replay."""
    path = HISTORIES_DIR / "query_task_timer_v11.json"
    history = load(path)
    kinds = [e.event_type for e in history.events]
    assert kinds[11:21] == [
        EventType.EVENT_TYPE_TIMER_FIRED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        EventType.EVENT_TYPE_MARKER_RECORDED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
        EventType.EVENT_TYPE_TIMER_STARTED,
    ]
    replayer = Replayer(workflows=[], plugins=[DurableSessionsPlugin(InMemorySessionStore())])
    await replayer.replay_workflow(history)

    data = json.loads(path.read_text())
    payload = data["events"][0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0]
    input = json.loads(base64.b64decode(payload["data"]))
    assert input["features"] == 11
    input["features"] = 10
    payload["data"] = base64.b64encode(json.dumps(input).encode()).decode()
    as_features_10 = WorkflowHistory.from_json("as-features-10", data)
    result = await replayer.replay_workflow(as_features_10, raise_on_replay_failure=False)
    assert result.replay_failure is not None
    assert "No command scheduled for event HistoryEvent(id: 21, TimerStarted)" in str(
        result.replay_failure
    )


def _tasks(name: str) -> list[list[EventType.ValueType]]:
    """The events of a history by workflow task: what woke it (a signal, a timer), the task,
    and the commands and messages it completed with."""
    starts = {
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
        EventType.EVENT_TYPE_TIMER_FIRED,
    }
    tasks: list[list[EventType.ValueType]] = [[]]
    for e in load(HISTORIES_DIR / f"{name}.json").events:
        if e.event_type in starts and EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in tasks[-1]:
            tasks.append([])
        tasks[-1].append(e.event_type)
    return tasks


def test_runs_of_features_12_store_cold_visits_in_their_own_task() -> None:
    """``_patches.COLD_VISITS``: the first turn, and a batch back after a quiet second, are
    stored by a local activity in the task that brings them (no flush timer); a turn right
    after one, a signal's turn and the update right behind it are batched; of a burst, the
    updates of its first task are stored at once and the rest batched; the first update of
    the run an idle continue-as-new started is a cold visit too, the one right after it not."""
    accepted = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    signalled = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    marker = EventType.EVENT_TYPE_MARKER_RECORDED
    timer = EventType.EVENT_TYPE_TIMER_STARTED
    for name in ("cold_visit_v12", "cold_visit_continued_v12"):
        started = load(HISTORIES_DIR / f"{name}.json").events[0]
        data = started.workflow_execution_started_event_attributes.input.payloads[0].data
        assert SessionWorkflowInput.model_validate_json(data).features == 12
    tasks = _tasks("cold_visit_v12")
    visits = [t for t in tasks if accepted in t or signalled in t]
    first, right_after, back, signal, behind, burst, burst_rest = visits[:7]
    assert marker in first and timer not in first
    assert marker not in right_after and timer in right_after
    assert marker in back and back.count(accepted) == 1 and timer not in back
    assert signalled in signal and marker not in signal and timer in signal
    assert marker not in behind and timer not in behind  # the signal's batch waits already
    assert burst.count(accepted) >= 1 and marker in burst and timer not in burst
    assert burst_rest.count(accepted) >= 1 and marker not in burst_rest and timer in burst_rest
    assert tasks[-1][-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    into, after = [t for t in _tasks("cold_visit_continued_v12") if accepted in t][:2]
    assert marker in into and timer not in into
    assert marker not in after and timer in after


def test_runs_of_features_13_store_a_visits_answer_in_its_own_task() -> None:
    """``_patches.VISIT_ANSWERS``: a cold visit's turn and its answer are each stored in their
    own task (no flush timer), a third update right after is batched; so is a cold batch and
    its answer, and a turn and its answer in a run an idle continue-as-new started; in the run
    where a signal's turn came first, every update is batched (no visit going on)."""
    accepted = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    marker = EventType.EVENT_TYPE_MARKER_RECORDED
    timer = EventType.EVENT_TYPE_TIMER_STARTED
    names = ("visit_answers_v13", "visit_answers_signal_v13", "visit_answers_continued_v13")
    for name in names:
        started = load(HISTORIES_DIR / f"{name}.json").events[0]
        data = started.workflow_execution_started_event_attributes.input.payloads[0].data
        assert SessionWorkflowInput.model_validate_json(data).features == 13
    first, answer, third, back, back_answer = [t for t in _tasks(names[0]) if accepted in t][:5]
    for stored in (first, answer, back, back_answer):
        assert marker in stored and timer not in stored
    assert marker not in third and timer in third
    signal_run = [t for t in _tasks(names[1]) if accepted in t]
    assert signal_run and all(
        marker not in t or EventType.EVENT_TYPE_TIMER_CANCELED in t for t in signal_run
    )  # only in-flow flushes of a batch already waiting
    into, its_answer, right_after = [t for t in _tasks(names[2]) if accepted in t][:3]
    for stored in (into, its_answer):
        assert marker in stored and timer not in stored
    assert marker not in right_after and timer in right_after


FULL_RUN_NAMES = ("full_run_v14", "full_run_idle_v14", "full_run_idled_v14")


def test_runs_of_features_14_after_a_full_run_idle_on_from_16_events() -> None:
    """``_patches.FULL_RUN_IDLE``: a run that filled up continued as new with
    ``continued_full``; the run it started went quiet at 16-39 events and continued as new
    (a run of features 13 would have stayed, and the replay would fail on the extra command);
    the minimal run that started is not ``continued_full`` (back to 40 events)."""
    runs = [load(HISTORIES_DIR / f"{name}.json").events for name in FULL_RUN_NAMES]
    inputs = [
        SessionWorkflowInput.model_validate_json(
            events[0].workflow_execution_started_event_attributes.input.payloads[0].data
        )
        for events in runs
    ]
    assert [i.features for i in inputs] == [14, 14, 14]
    assert [i.continued_full for i in inputs] == [False, True, False]
    full, after_full, minimal = runs
    ended = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    assert len(full) >= 50 and full[-1].event_type == ended
    assert 16 <= len(after_full) < 40 and after_full[-1].event_type == ended
    accepted = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    last_update = [e for e in after_full if e.event_type == accepted][-1]
    quiet = after_full[-1].event_time.ToDatetime() - last_update.event_time.ToDatetime()
    assert quiet.total_seconds() >= 1.0  # the recording's idle_continue_after
    assert minimal[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED


def test_runs_of_features_10_stay_in_a_short_run_through_a_quiet() -> None:
    """``_patches.IDLE_CONTINUE_PAYS``: a session of two turns quiet for more than
    ``idle_continue_after`` did not continue as new (a run of features 3-9 would have, and the
    replay would then fail on the extra command); one that grew past 40 events did."""
    short = load(HISTORIES_DIR / "short_idle_v10.json").events
    grown = load(HISTORIES_DIR / "idle_continue_v10.json").events
    for events in (short, grown):
        started = events[0].workflow_execution_started_event_attributes
        assert (
            SessionWorkflowInput.model_validate_json(started.input.payloads[0].data).features == 10
        )
    ended = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    assert 18 < len(short) < 40
    assert [e.event_type for e in short].count(ended) == 0
    assert short[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
    quiet = [
        e.event_time.ToDatetime() - prev.event_time.ToDatetime()
        for prev, e in itertools.pairwise(short)
    ]
    assert max(quiet).total_seconds() > 1.0  # longer than the recording's idle_continue_after
    assert grown[-1].event_type == ended


def test_a_checkpoint_past_the_head_is_refused_behind_its_patch() -> None:
    """The refusal of a checkpoint past the head (``_patches.NO_CHECKPOINT_PAST_HEAD``) left a
    marker in the run that met one, and only there: replays of runs that never met one are
    unchanged."""
    marker = b'"no-checkpoint-past-the-head"'

    def patches(name: str) -> list[bytes]:
        return [
            e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data
            for e in load(HISTORIES_DIR / f"{name}.json").events
            if e.marker_recorded_event_attributes.marker_name == "core_patch"
        ]

    found = [p.replace(b" ", b"") for p in patches("no_checkpoint_past_head_v6")]
    assert found == [b'{"id":"no-checkpoint-past-the-head","deprecated":false}']
    for path in HISTORIES:
        if path.stem != "no_checkpoint_past_head_v6":
            assert not any(marker in p.replace(b" ", b"") for p in patches(path.stem)), path.stem


def test_runs_of_features_3_shrink_small_idle_runs() -> None:
    """A session created by the client (header stored first, the run started without waiting)
    with two turns idles into a new run below the 40 events runs of features 2 wait for."""
    events = load(HISTORIES_DIR / "small_idle_v3.json").events
    started = events[0].workflow_execution_started_event_attributes
    data = started.input.payloads[0].data.replace(b" ", b"")
    assert b'"features":3' in data and b'"header_stored":true' in data
    assert events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    assert len(events) < 40
    # No local-activity marker before the first turn: the run did not store the header itself.
    first_update = next(
        i
        for i, e in enumerate(events)
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    )
    assert all(e.event_type != EventType.EVENT_TYPE_MARKER_RECORDED for e in events[:first_update])


def test_workers_of_this_version_apply_each_activation_as_one_batch() -> None:
    """Workers of this version turn on the SDK's single-batch activations (workflow logic flag
    2, ``plugin.single_batch_activations``); the history says so from the first task, and
    replay follows it (it holds updates rejected while an operation awaited activities)."""
    events = load(HISTORIES_DIR / "single_batch_v3.json").events
    first = next(e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
    assert 2 in first.workflow_task_completed_event_attributes.sdk_metadata.lang_used_flags


def test_runs_of_features_6_carry_pending_turns_over() -> None:
    """A run of features 6 that fills up continues as new with no local activity (no flush)
    in it: its pending turns and checkpoints, and since when they waited, go in the next run's
    input, and the next run stores them."""
    first = load(HISTORIES_DIR / "carry_over_v6.json").events
    started = first[0].workflow_execution_started_event_attributes
    assert b'"features":6' in started.input.payloads[0].data.replace(b" ", b"")
    assert all(e.event_type != EventType.EVENT_TYPE_MARKER_RECORDED for e in first)
    last = first[-1]
    assert last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    carried = last.workflow_execution_continued_as_new_event_attributes.input.payloads[0].data
    handed = SessionWorkflowInput.model_validate_json(carried)
    assert handed.pending and handed.pending_checkpoints and handed.pending_since is not None
    assert handed.features == 6
    after = load(HISTORIES_DIR / "carry_over_continued_v6.json").events
    input = after[0].workflow_execution_started_event_attributes.input.payloads[0].data
    assert SessionWorkflowInput.model_validate_json(input).pending == handed.pending
    assert any(e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED for e in after)


@workflow.defn(name="Session")
class ChangedSession:
    """A careless change: the first thing the workflow does is no longer a flush."""

    @workflow.run
    async def run(self, input: SessionWorkflowInput) -> None:
        await workflow.sleep(1)


async def test_an_incompatible_change_is_caught() -> None:
    replayer = Replayer(
        workflows=[ChangedSession],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(sandboxed=True),
    )
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(load(HISTORIES[0]))


SDK_BUGS_DIR = Path(__file__).parent / "sdk_bugs"


async def test_a_run_whose_empty_task_the_sdk_merges_on_replay_does_not_replay() -> None:
    """A known SDK bug, pinned (temporalio/sdk-rust#1606; tests/faults/RESULTS.md, session 13).

    Model seed 1008 (``main``'s code, features 6, found in CI and again by hand after 75
    loops): a ``branch`` update's pre-lock read (``branch_names``, event 69) completed in a
    workflow task that produced no command (the handler only queued for the operation lock),
    and the server scheduled the next task (event 73, a signal in it) right away. Live, the
    read resolved first, so the branch queued ahead of the signal's turn. A worker that replays
    the run merges the empty task into the next one and hands the signal over first: the turn
    queues ahead of the branch, the branch's flush then has that turn to store (a local
    activity live did not run), and the replay fails at the branch's next activity (event 102).
    A cache miss on such a run is a stuck workflow task. Runs of features 9 take the lock when
    the message arrives, so activation boundaries no longer pick its order
    (``_patches.ARRIVAL_ORDER``, tests/faults/test_arrival_order.py); this run is of features
    6, whose code path must replay as it ran, so it stays broken until the SDK is fixed. This
    test fails once it is: then move the history into ``tests/histories``."""
    history = load(SDK_BUGS_DIR / "merged_empty_task_v6.json")
    events = history.events
    completed = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    # The shape: a task that resolved an activity and sent no command, then a task at once.
    assert events[68].event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
    assert [e.event_type for e in events[69:74]] == [
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        completed,
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
    ]
    replayer = Replayer(
        workflows=WORKFLOWS,
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(sandboxed=False),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is not None
    assert "No command scheduled for event HistoryEvent(id: 102" in str(result.replay_failure)

"""``_query_tasks.HoldingInstance``: a query task's events wait for the next workflow task.

The activations are shaped as temporalio 1.35's core sent them in
tests/faults/test_cold_update_replay.py (a query on a restarted worker while the session's
flush timer had fired): replayed tasks, then the fired timer with the previous task's time and
history size but a longer history, then the query, then the workflow task with the update.
"""

from __future__ import annotations

from typing import Any

from temporalio.bridge.proto.workflow_activation import WorkflowActivation, WorkflowActivationJob
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.worker import WorkflowInstance

from durable_sessions._query_tasks import HoldingInstance


class _Recorder(WorkflowInstance):
    """Records the jobs of each activation it is given."""

    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        self.seen.append([str(job.WhichOneof("variant")) for job in act.jobs])
        completion = WorkflowActivationCompletion(run_id=act.run_id)
        completion.successful.SetInParent()
        return completion

    def get_serialization_context(self, command_info: Any) -> Any:
        return None

    def get_external_store_context(self, command_info: Any) -> Any:
        return None

    def get_info(self) -> Any:
        return None


def _act(
    *jobs: str, length: int, size: int, at: tuple[int, int], replaying: bool = False
) -> WorkflowActivation:
    act = WorkflowActivation(run_id="run", is_replaying=replaying, history_length=length)
    act.history_size_bytes = size
    act.timestamp.seconds, act.timestamp.nanos = at
    for kind in jobs:
        job = WorkflowActivationJob()
        getattr(job, kind).SetInParent()
        act.jobs.append(job)
    return act


def _cold_start(instance: HoldingInstance) -> None:
    instance.activate(_act("initialize_workflow", length=3, size=1408, at=(10, 1), replaying=True))
    instance.activate(_act("do_update", length=7, size=1719, at=(10, 2), replaying=True))


def test_a_query_tasks_events_join_the_next_workflow_task() -> None:
    inner = _Recorder()
    instance = HoldingInstance(inner)
    _cold_start(instance)

    held = instance.activate(_act("fire_timer", length=13, size=1719, at=(10, 2)))
    assert held.HasField("successful")
    assert not held.successful.commands
    instance.activate(_act("query_workflow", length=13, size=1719, at=(10, 2), replaying=True))
    instance.activate(_act("do_update", length=16, size=2895, at=(14, 0)))

    # The workflow never saw the timer alone: the query read the state before it, and the
    # timer came with the update, as a replay hands them over.
    assert inner.seen == [
        ["initialize_workflow"],
        ["do_update"],
        ["query_workflow"],
        ["fire_timer", "do_update"],
    ]
    assert instance.held_activations == 1


def test_two_query_tasks_in_a_row_hold_both_in_history_order() -> None:
    inner = _Recorder()
    instance = HoldingInstance(inner)
    _cold_start(instance)
    instance.activate(_act("fire_timer", length=13, size=1719, at=(10, 2)))
    instance.activate(_act("query_workflow", length=13, size=1719, at=(10, 2), replaying=True))
    instance.activate(_act("signal_workflow", length=15, size=1719, at=(10, 2)))
    instance.activate(_act("do_update", length=19, size=3100, at=(15, 0)))
    assert inner.seen[-1] == ["fire_timer", "signal_workflow", "do_update"]
    assert instance.held_activations == 2


def test_activations_of_workflow_tasks_pass_through() -> None:
    inner = _Recorder()
    instance = HoldingInstance(inner)
    _cold_start(instance)
    # A new task (its start moved the size and the time), then a local activity's result in
    # the same task (same length, a later time), then a plain query.
    instance.activate(_act("fire_timer", length=13, size=2000, at=(11, 0)))
    instance.activate(_act("resolve_activity", length=13, size=2000, at=(11, 5)))
    instance.activate(_act("query_workflow", length=13, size=2000, at=(11, 5), replaying=True))
    assert inner.seen[2:] == [["fire_timer"], ["resolve_activity"], ["query_workflow"]]
    assert instance.held_activations == 0


def test_an_eviction_drops_what_was_held() -> None:
    inner = _Recorder()
    instance = HoldingInstance(inner)
    _cold_start(instance)
    instance.activate(_act("fire_timer", length=13, size=1719, at=(10, 2)))
    instance.activate(_act("remove_from_cache", length=13, size=1719, at=(10, 2)))
    assert inner.seen[-1] == ["remove_from_cache"]

"""Events a query task brings are held for the next workflow task (an SDK bug worked around).

What goes wrong without this: a worker that has no live workflow task for a run can be handed
a *query* task (a "legacy" query: the session's workflow task waits on the sticky queue of a
worker that died, say). Such a task carries the history up to the pending workflow task, and
temporalio 1.35's core hands the workflow every event recorded after the last completed
workflow task (a timer that fired, an activity's result, a signal) as an activation of its
own, not a replay, before the query. Workflow code reacts to them there and then. When the
pending workflow task later starts, it brings its updates in a second activation. A replay
has no query task: it hands those events and those updates over in one activation. So a
decision that depends on both (a flush timer's batch and a turn that arrived in the same
task, an expiry and a turn that touched the session) can differ between the live run and
every later replay, which then fails with a nondeterminism error on the next cache miss:
``tests/faults/test_cold_update_replay.py`` reads a session right after a kill -9 while its
flush timer fires, and its next turn made the history unreplayable there.

What this does: on workers of ``DurableSessionsPlugin``, each session workflow instance
answers such an activation with an empty completion (a query task sends no command anyway)
and applies its jobs ahead of the next activation's own, so the live run sees them exactly as
a replay will: with the workflow task they belong to. A query in between reads the session as
of the last completed workflow task, which is what the history says it was.

How such an activation is told apart: it is not a replay, its history is longer than the
previous activation's, yet its time and history size are the previous activation's (it has no
workflow task of its own, whose start would give both). A workflow task's start always moves
the history size; a replay never holds such an activation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from temporalio.bridge.proto.workflow_activation import (
    InitializeWorkflow,
    WorkflowActivation,
    WorkflowActivationJob,
)
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.worker import Worker, WorkflowInstance

log = logging.getLogger(__name__)

__all__ = ["HoldingInstance", "hold_query_task_events"]


@dataclass(frozen=True)
class _Mark:
    """What an activation says about the workflow task it belongs to."""

    length: int
    size: int
    seconds: int
    nanos: int

    @classmethod
    def of(cls, act: WorkflowActivation) -> _Mark:
        return cls(
            act.history_length, act.history_size_bytes, act.timestamp.seconds, act.timestamp.nanos
        )

    def without_task_after(self, previous: _Mark) -> bool:
        """Later history than ``previous`` but no workflow task start of its own."""
        return (
            self.length > previous.length
            and self.size == previous.size
            and (self.seconds, self.nanos) == (previous.seconds, previous.nanos)
        )


def _kind(job: WorkflowActivationJob) -> str | None:
    return job.WhichOneof("variant")


class HoldingInstance(WorkflowInstance):
    """A workflow instance that holds a query task's new events for the next workflow task."""

    def __init__(self, inner: WorkflowInstance) -> None:
        self._inner = inner
        self._previous: _Mark | None = None
        self._held: list[WorkflowActivationJob] = []
        self.held_activations = 0
        """How many activations were held (for tests and logs)."""

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        kinds = {_kind(job) for job in act.jobs}
        if "remove_from_cache" in kinds:
            self._held.clear()  # the instance goes; a new one replays the whole history
            return self._inner.activate(act)
        mark = _Mark.of(act)
        if (
            not act.is_replaying
            and self._previous is not None
            and kinds
            and "query_workflow" not in kinds
            and mark.without_task_after(self._previous)
        ):
            self._held.extend(act.jobs)
            self.held_activations += 1
            log.debug(
                "run %s: holding %d job(s) of a query task for the next workflow task",
                act.run_id,
                len(act.jobs),
            )
            completion = WorkflowActivationCompletion(run_id=act.run_id)
            completion.successful.SetInParent()
            return completion
        if self._held and "query_workflow" not in kinds:
            merged = WorkflowActivation()
            merged.CopyFrom(act)
            del merged.jobs[:]
            merged.jobs.extend(self._held)
            merged.jobs.extend(act.jobs)
            self._held.clear()
            act = merged
        self._previous = mark
        return self._inner.activate(act)

    def get_serialization_context(self, command_info: Any) -> Any:
        return self._inner.get_serialization_context(command_info)

    def get_external_store_context(self, command_info: Any) -> Any:
        return self._inner.get_external_store_context(command_info)

    def get_info(self) -> Any:
        return self._inner.get_info()

    def get_thread_id(self) -> int | None:
        return self._inner.get_thread_id()


def hold_query_task_events(worker: Worker, workflow_types: Iterable[str]) -> bool:
    """Give ``worker``'s instances of ``workflow_types`` a ``HoldingInstance`` (see the module
    docstring). Whether it is in place: an SDK whose worker is shaped otherwise gets a warning
    and is left alone."""
    types = frozenset(workflow_types)
    workflows = getattr(worker, "_workflow_worker", None)
    create: Callable[[WorkflowActivation, InitializeWorkflow], WorkflowInstance] | None = getattr(
        workflows, "_create_workflow_instance", None
    )
    if workflows is None or create is None:
        if workflows is not None:
            log.warning("could not hold query-task events: this temporalio has no instance hook")
        return False
    if getattr(create, "_holds_query_task_events", False):
        return True

    def creating(act: WorkflowActivation, init: InitializeWorkflow) -> WorkflowInstance:
        instance = create(act, init)
        return HoldingInstance(instance) if init.workflow_type in types else instance

    creating._holds_query_task_events = True  # type: ignore[attr-defined]
    workflows._create_workflow_instance = creating
    return True

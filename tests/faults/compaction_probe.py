"""A workflow that runs the context activity on another task queue, with a heartbeat timeout.

The crash test needs the ``compute_context`` activity of a worker *process* (that it can kill)
to be retried within seconds of the kill: the session workflow gives the activity no heartbeat
timeout, so a killed attempt is only retried when its start-to-close timeout expires.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from durable_sessions.activities.context import ContextRequest, ContextResult


class ProbeInput(BaseModel):
    request: ContextRequest
    task_queue: str


@workflow.defn(name="CompactionProbe")
class CompactionProbe:
    @workflow.run
    async def run(self, probe: ProbeInput) -> ContextResult:
        result: ContextResult = await workflow.execute_activity(
            "compute_context",
            probe.request,
            result_type=ContextResult,
            task_queue=probe.task_queue,
            start_to_close_timeout=timedelta(seconds=120),
            heartbeat_timeout=timedelta(seconds=2),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=0.2), maximum_attempts=5),
        )
        return result

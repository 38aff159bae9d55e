"""The baseline for ``bench_turns``: a bare Temporal workflow that only counts no-op updates.

It lives in its own module because the workflow sandbox re-imports the module that defines a
workflow; a benchmark script run as ``__main__`` must not be that module.

The update takes the same ``SessionTurn`` payload the session's ``add_turn`` takes, so both
sides move the same bytes through the server and the comparison isolates what the session
adds: validation, bookkeeping, timers, flush activities and PostgreSQL.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_sessions.models import SessionTurn

BARE_WORKFLOW_TYPE = "BenchBareCounter"


@workflow.defn(name=BARE_WORKFLOW_TYPE)
class BareCounterWorkflow:
    """Counts ``bump`` updates until ``stop``; no timers, no activities, no validation."""

    def __init__(self) -> None:
        self._count = 0
        self._stopped = False

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self._stopped)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._count

    @workflow.update(name="bump")
    def bump(self, turn: SessionTurn) -> int:
        del turn
        self._count += 1
        return self._count

    @workflow.signal(name="stop")
    def stop(self) -> None:
        self._stopped = True


BARE_CONTINUING_TYPE = "BenchBareContinuing"


@workflow.defn(name=BARE_CONTINUING_TYPE)
class BareContinuingWorkflow:
    """Counts ``bump`` updates and continues as new after ``every`` of them, handing ``carry``
    (opaque text of the size a session hands over) to the next run: what a bare workflow pays
    for the run bound a session lives under (``bench.can_cost``)."""

    def __init__(self) -> None:
        self._count = 0

    @workflow.run
    async def run(self, every: int, carry: str) -> None:
        await workflow.wait_condition(lambda: self._count >= every)
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(args=[every, carry])

    @workflow.update(name="bump")
    def bump(self, turn: SessionTurn) -> int:
        del turn
        self._count += 1
        return self._count

"""Every activity the ``Session`` workflow calls, each through one typed wrapper.

Activity names are wire contracts (recorded in histories); the options live here, once. A flush
runs as a local activity first (it rides on the workflow task that asks for it: no activity task,
no extra workflow task) and falls back to an ordinary, durably retried activity when the store is
slow or down, so an outage neither holds a workflow task open nor grows history.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import CancelledError, FailureError

with workflow.unsafe.imports_passed_through():
    from durable_sessions.activities.agents import AgentTurnRequest
    from durable_sessions.activities.context import ContextRequest, ContextResult
    from durable_sessions.agents import AgentReply
    from durable_sessions.models import Checkpoint, SessionTurn
    from durable_sessions.stores.base import PersistBatch
    from durable_sessions.workflows.messages import (
        ExistingTurnsRequest,
        GenerationRecord,
        RangeTotals,
        TranscriptTailRequest,
        TurnsPageRequest,
    )

__all__ = [
    "LOCAL_STORE_RETRY",
    "LOCAL_STORE_TIMEOUT",
    "STORE_RETRY",
    "STORE_TIMEOUT",
    "WriteFences",
    "branch_names",
    "compute_context",
    "existing_turn_ids",
    "load_checkpoint",
    "load_transcript_tail",
    "load_turns_page",
    "load_turns_range",
    "persist_batch",
    "range_totals",
    "record_generation",
    "run_agent_turn",
]

STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
)
STORE_TIMEOUT = timedelta(seconds=30)
LOCAL_STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=100),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=1),
    maximum_attempts=3,
)
LOCAL_STORE_TIMEOUT = timedelta(seconds=5)
"""A local flush gives up after this (its retries included) and hands the batch to an ordinary
activity, whose retries wait in the server, not in a workflow task kept open."""
CONTEXT_TIMEOUT = timedelta(seconds=60)
T = TypeVar("T")
CONTEXT_HEARTBEAT = timedelta(seconds=10)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class WriteFences:
    """The fences of a run's store writes (``SessionStore.persist``).

    A write's fence is when the workflow task that asks for it started (``workflow.now()``, in
    microseconds since the epoch), and above the run's previous one: two batches flushed in one
    workflow task are ordered too, so a timed-out attempt of the first landing after the
    second is refused (a retry of the same batch carries the same fence and is accepted). A retried
    workflow task starts at least a task timeout after the one that timed out, and every later
    task after it, so a late write of a dead task carries a lower fence than any write after
    it, and the store refuses it. The floor keeps a live run's fences from going down should
    the server's clock step back between two of its tasks (its own writes would be refused);
    it is carried across continue-as-new. Deterministic: replay sees the same times and makes
    the same calls in the same order.
    """

    def __init__(self, floor: int = 0, clock: Callable[[], datetime] = workflow.now) -> None:
        self.last = floor
        self._clock = clock

    def next(self) -> int:
        now = (self._clock() - _EPOCH) // timedelta(microseconds=1)
        self.last = max(now, self.last + 1)
        return self.last


async def persist_batch(batch: PersistBatch, *, local: bool, session_id: str) -> None:
    """Write a batch of turns, checkpoints and the header (idempotent upserts)."""
    summary = f"flush {len(batch.turns)} turns"
    if local:
        try:
            await workflow.execute_local_activity(
                "persist_batch",
                batch,
                start_to_close_timeout=LOCAL_STORE_TIMEOUT,
                schedule_to_close_timeout=LOCAL_STORE_TIMEOUT,
                retry_policy=LOCAL_STORE_RETRY,
                summary=summary,
            )
            return
        except FailureError as exc:
            # A local activity's failure arrives unwrapped (ApplicationError, TimeoutError),
            # not as an ActivityError; only a cancellation must go on up.
            if isinstance(exc, CancelledError):
                raise
            workflow.logger.warning(
                "local flush failed; retrying it as an activity",
                extra={"session_id": session_id, "turns": len(batch.turns)},
            )
    await workflow.execute_activity(
        "persist_batch",
        batch,
        start_to_close_timeout=STORE_TIMEOUT,
        retry_policy=STORE_RETRY,
        summary=summary,
    )


async def _store_call(name: str, arg: object, result_type: type[T] | None = None) -> T:
    """An ordinary store activity: the one set of options every store read and write uses."""
    result: T = await workflow.execute_activity(
        name,
        arg,
        result_type=result_type,
        start_to_close_timeout=STORE_TIMEOUT,
        retry_policy=STORE_RETRY,
    )
    return result


async def load_checkpoint(checkpoint_id: str) -> Checkpoint | None:
    return await _store_call("load_checkpoint", checkpoint_id, Checkpoint)


async def record_generation(record: GenerationRecord) -> None:
    await _store_call("record_generation", record)


async def load_transcript_tail(request: TranscriptTailRequest) -> list[SessionTurn]:
    return await _store_call("load_transcript_tail", request, list[SessionTurn])


async def range_totals(request: ExistingTurnsRequest) -> RangeTotals:
    return await _store_call("range_totals", request, RangeTotals)


async def branch_names(session_id: str) -> list[str]:
    return await _store_call("branch_names", session_id, list[str])


async def load_turns_page(request: TurnsPageRequest) -> list[SessionTurn]:
    return await _store_call("load_turns_page", request, list[SessionTurn])


async def load_turns_range(session_id: str, generation: int, lo: int, hi: int) -> list[SessionTurn]:
    """The transcript's turns ``lo <= seq < hi`` (of ``generation``), page by page."""
    turns: list[SessionTurn] = []
    offset = lo
    while offset < hi:
        page = await load_turns_page(
            TurnsPageRequest(
                session_id=session_id, generation=generation, turn_count=hi, offset=offset
            )
        )
        if not page:
            break
        turns.extend(page)
        offset = (page[-1].seq or offset) + 1
    return turns


async def existing_turn_ids(request: ExistingTurnsRequest) -> list[str]:
    return await _store_call("existing_turn_ids", request, list[str])


async def compute_context(request: ContextRequest) -> ContextResult:
    result: ContextResult = await workflow.execute_activity(
        "compute_context",
        request,
        result_type=ContextResult,
        start_to_close_timeout=CONTEXT_TIMEOUT,
        # Compaction heartbeats: a worker killed mid-way is retried in seconds, not a minute.
        heartbeat_timeout=CONTEXT_HEARTBEAT,
        retry_policy=RetryPolicy(maximum_attempts=3, non_retryable_error_types=["ValueError"]),
        summary="prune context",
    )
    return result


async def run_agent_turn(
    request: AgentTurnRequest, *, timeout: float, max_attempts: int
) -> AgentReply:
    """One agent turn (bounded retries: an agent that keeps failing is the caller's to handle)."""
    reply: AgentReply = await workflow.execute_activity(
        "run_agent_turn",
        request,
        result_type=AgentReply,
        start_to_close_timeout=timedelta(seconds=timeout),
        retry_policy=RetryPolicy(
            initial_interval=timedelta(milliseconds=200),
            maximum_interval=timedelta(seconds=5),
            maximum_attempts=max_attempts,
        ),
        summary=f"agent {request.agent}",
    )
    return reply

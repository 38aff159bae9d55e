"""How ``SessionManager`` makes one Temporal call: errors, retries, cancellation, bursts.

Private; ``durable_sessions.client`` is the public face. Four concerns live here, apart from
the manager's list of operations:

* **Error translation** (``translate``): every temporalio failure becomes one of our typed
  errors, or ``CancelledError`` when it only says our own caller was cancelled. temporalio turns
  a cancelled update call into ``WorkflowUpdateRPCTimeoutOrCancelledError``, the same error as
  an RPC timeout: its cause tells which (``CancelledError`` vs an ``RPCError``).
  ``WorkerUnavailableError`` means exactly "no worker answered within ``call_timeout``".
* **Retries** (``retry_busy``): ``SessionBusyError`` means nothing was applied (the run was
  between two runs, its workflow task had failed, or the server's limit of updates in flight
  per workflow was reached): retried with jittered backoff until ``call_timeout``.
* **Bursts** (``SessionLimiter``): Temporal admits at most 10 updates in flight per workflow.
  The manager lets at most ``MAX_IN_FLIGHT`` of its own updates per session go at once; the
  rest wait their turn in FIFO order, so one process never trips the server's limit, and
  several processes only meet it as a retried ``SessionBusyError``.
* **Cancellation of writes** (``shielded_write``): a write whose outcome is unknown is never
  reported as failed. A cancelled caller waits (at most ``call_timeout``) for the update in
  flight to be answered, then gets ``CancelledError``; a write not yet sent is withdrawn. The
  OpenAI Agents SDK asks the same of its sessions ("mutation cancellation waits for
  authoritative outcome").
"""

from __future__ import annotations

import asyncio
import json
import random  # noqa: TID251 - client side, not workflow code: jitter for retries
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

from temporalio.client import (
    RPCTimeoutOrCancelledError,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError, TemporalError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from durable_sessions.errors import (
    SessionBusyError,
    SessionError,
    TemporalUnavailableError,
    WorkerUnavailableError,
    error_from_type,
)
from durable_sessions.models import SessionTurn
from durable_sessions.workflows.messages import MAX_BATCH_BYTES, MAX_BATCH_TURNS

__all__ = [
    "MAX_IN_FLIGHT",
    "MAX_UPDATE_PAYLOAD",
    "SessionLimiter",
    "WriteProgress",
    "from_failure",
    "retry_busy",
    "shared_limiter",
    "shielded_write",
    "split_batch",
    "translate",
    "turn_bytes",
]

T = TypeVar("T")

MAX_IN_FLIGHT = 8
"""Updates one manager sends to one session at once (Temporal admits 10 per workflow)."""

RUN_ENDING = "the session's run was ending"
"""A busy answer that always clears: the run continues as new or closes, then the call
reaches the next run (or reads as closed)."""
RUN_ENDING_PATIENCE = 3.0
"""How many ``timeout``s a call keeps retrying while it only meets ``RUN_ENDING``: under a
burst the server can refuse a run's continue-as-new several times in a row (updates admitted
meanwhile), each retry landing in the next refusal's window."""


_BUSY_MESSAGES = (
    # The server's per-workflow limit of updates in flight (10 by default).
    "limit on number of concurrent in-flight updates",
    # The run's workflow task failed (or timed out) and has not been retried yet.
    "workflow task in failed state",
)


def from_failure(session_id: str, cause: BaseException | None) -> SessionError:
    """Our error inside a workflow's failure (an ``ApplicationError`` typed by class name)."""
    while cause is not None:
        if isinstance(cause, ApplicationError):
            details = cause.details[0] if cause.details else None
            err = error_from_type(
                cause.type, cause.message, details if isinstance(details, dict) else None
            )
            if err is not None:
                return err
        cause = cause.__cause__
    return SessionError("the session rejected the call", session_id=session_id)


def _cancelled_here(exc: BaseException) -> bool:
    """True when ``exc`` only reports that the calling task is being cancelled."""
    task = asyncio.current_task()
    return isinstance(exc.__cause__, asyncio.CancelledError) or (
        task is not None and task.cancelling() > 0
    )


def _busy(session_id: str, why: str) -> SessionBusyError:
    return SessionBusyError(f"{why}; retry in a moment", session_id=session_id)


async def translate(
    session_id: str,
    call: Callable[[], Awaitable[T]],
    *,
    unavailable: Callable[[], WorkerUnavailableError],
    missing: Callable[[str], Awaitable[SessionError]],
) -> T:
    """Run a Temporal call; map its failures to our typed errors (see the module docstring)."""
    try:
        return await call()
    except WorkflowUpdateFailedError as exc:
        raise from_failure(session_id, exc.cause) from None
    except WorkflowQueryFailedError as exc:
        raise SessionError(f"query failed: {exc.message}", session_id=session_id) from None
    except WorkflowQueryRejectedError:
        raise SessionError("the session refused the query", session_id=session_id) from None
    except RPCTimeoutOrCancelledError as exc:
        if _cancelled_here(exc):
            raise asyncio.CancelledError() from None
        raise unavailable() from None
    except RPCError as exc:
        message = exc.message.lower()
        if exc.status == RPCStatusCode.RESOURCE_EXHAUSTED and "workflow is closing" in message:
            # The server refused the update while the run tries to close (temporal#5847): not
            # applied; retried, it reaches the next run or reads as closed.
            raise _busy(session_id, RUN_ENDING) from None
        if exc.status == RPCStatusCode.NOT_FOUND:
            # Also "update was aborted by closing workflow": the update reached the run's last
            # workflow task and was not applied. The server gives every resend of its update id
            # the same answer for as long as that run is the session's latest, so the latest
            # run decides (``missing``): running (it continued as new) reads as the run ending,
            # and the call is retried; closed reads as closed, not as busy until the caller
            # gives up.
            raise await missing(exc.message) from None
        if exc.status == RPCStatusCode.UNAVAILABLE and "update was aborted" in message:
            # The server dropped the update before an outcome (e.g. its workflow task was
            # lost); resent with the same update id, it is applied at most once.
            raise _busy(session_id, "the session's update was interrupted") from None
        if any(m in message for m in _BUSY_MESSAGES) or (
            exc.status == RPCStatusCode.FAILED_PRECONDITION and "workflow task" in message
        ):
            raise _busy(session_id, "the session is busy") from None
        if exc.status == RPCStatusCode.RESOURCE_EXHAUSTED:
            # The server's own words (a limit's name, never conversation text) say which limit.
            raise _busy(session_id, f"Temporal is throttling calls ({exc.message[:120]})") from None
        if exc.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
            if _cancelled_here(exc):
                raise asyncio.CancelledError() from None
            raise unavailable() from None  # our own rpc_timeout: nobody answered in time
        raise TemporalUnavailableError(
            f"the Temporal service did not complete the call ({exc.status.name})",
            session_id=session_id,
        ) from None
    except WorkflowAlreadyStartedError:
        raise  # the caller (``create``) turns it into its own error
    except TemporalError as exc:
        raise SessionError(
            f"Temporal call failed ({type(exc).__name__})", session_id=session_id
        ) from None


@dataclass
class WriteProgress:
    """Where a write stands, so a cancelled caller knows whether it may withdraw it."""

    in_flight: int = 0
    """Updates sent and not answered yet: their outcome is unknown."""
    applied: int = 0
    """Updates the session has applied (a batch sent in several updates)."""

    @property
    def withdrawable(self) -> bool:
        return self.in_flight == 0 and self.applied == 0

    @asynccontextmanager
    async def sending(self) -> AsyncIterator[None]:
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1


async def retry_busy(
    call: Callable[[], Awaitable[T]], *, timeout: float, loop: asyncio.AbstractEventLoop
) -> T:
    """``call()``, retried while it raises ``SessionBusyError`` (nothing was applied), with
    jittered exponential backoff, for at most ``timeout`` seconds; up to
    ``RUN_ENDING_PATIENCE`` times that while every refusal says the run was ending."""
    started = loop.time()
    delay = 0.01
    only_run_ending = True
    while True:
        try:
            return await call()
        except SessionBusyError as exc:
            only_run_ending = only_run_ending and exc.message.startswith(RUN_ENDING)
            deadline = started + timeout * (RUN_ENDING_PATIENCE if only_run_ending else 1.0)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise
            # The last pause is cut to the deadline: one more try there, not a give-up early.
            await asyncio.sleep(min(delay * (0.5 + random.random()), remaining))
            delay = min(delay * 2, 0.25)


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: an abandoned write's error is not logged as unhandled


async def shielded_write(
    work: Callable[[WriteProgress], Awaitable[T]], *, settle_timeout: float
) -> T:
    """Run a write so that cancelling its caller never leaves the outcome unknown.

    On cancellation: a write with nothing sent yet (waiting for the limiter, or backing off
    after a refusal) is withdrawn at once. Otherwise the caller waits, through further
    cancellations, up to ``settle_timeout`` seconds for the write to finish (every update of a
    split batch, so the batch is not left half written), then ``CancelledError`` is raised. If
    the write still has not finished then, it carries on in the background; a retry with the
    same turn ids is safe either way.
    """
    progress = WriteProgress()
    task: asyncio.Future[T] = asyncio.ensure_future(work(progress))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done() and progress.withdrawable:
            task.cancel()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settle_timeout
        while not task.done():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            with suppress(asyncio.CancelledError):
                await asyncio.wait({task}, timeout=remaining)
        if task.done():
            _consume(task)
        else:
            task.add_done_callback(_consume)
        raise


@dataclass
class _Gate:
    active: int = 0
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)


class SessionLimiter:
    """At most ``limit`` concurrent holders per session; the others wait in FIFO order.

    Kept per event loop (a manager may be used from several loops, e.g. the OpenAI Agents
    SDK's ``Runner.run_sync`` in threads), and a session's entry is dropped when idle, so ten
    thousand sessions cost nothing between calls.
    """

    def __init__(self, limit: int = MAX_IN_FLIGHT) -> None:
        self.limit = limit
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Gate]] = (
            weakref.WeakKeyDictionary()
        )

    def in_use(self, session_id: str) -> int:
        """Holders on this loop right now (for tests and diagnostics)."""
        gate = self._loops.get(asyncio.get_running_loop(), {}).get(session_id)
        return 0 if gate is None else gate.active

    @asynccontextmanager
    async def slot(self, session_id: str) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        gates = self._loops.setdefault(loop, {})
        gate = gates.setdefault(session_id, _Gate())
        if gate.active < self.limit and not gate.waiters:
            gate.active += 1
        else:
            waiter: asyncio.Future[None] = loop.create_future()
            gate.waiters.append(waiter)
            try:
                await waiter  # a releasing holder hands its slot over (active stays counted)
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._release(gates, session_id, gate)  # handed over, then cancelled
                else:
                    with suppress(ValueError):  # a release may have skipped it already
                        gate.waiters.remove(waiter)
                    self._drop_if_idle(gates, session_id, gate)
                raise
        try:
            yield
        finally:
            self._release(gates, session_id, gate)

    def _release(self, gates: dict[str, _Gate], session_id: str, gate: _Gate) -> None:
        while gate.waiters:
            waiter = gate.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        gate.active -= 1
        self._drop_if_idle(gates, session_id, gate)

    @staticmethod
    def _drop_if_idle(gates: dict[str, _Gate], session_id: str, gate: _Gate) -> None:
        if gate.active == 0 and not gate.waiters and gates.get(session_id) is gate:
            del gates[session_id]


_SHARED: weakref.WeakKeyDictionary[object, dict[int, SessionLimiter]] = weakref.WeakKeyDictionary()


def shared_limiter(client: object, limit: int = MAX_IN_FLIGHT) -> SessionLimiter:
    """The limiter of every manager on this Temporal client (with this limit).

    Why per client and not per manager: the server counts a session's updates in flight
    whoever sends them; managers of one process (say, one per request handler) sharing a
    client share the budget, and only separate processes meet the server's limit (backed off
    as ``SessionBusyError``).
    """
    by_limit = _SHARED.setdefault(client, {})
    limiter = by_limit.get(limit)
    if limiter is None:
        limiter = by_limit[limit] = SessionLimiter(limit)
    return limiter


MAX_UPDATE_PAYLOAD = 256_000
"""Most bytes (text and metadata) the client puts in one ``add_turns`` update.

Why below the workflow's own limits: the worker decodes an update's argument inside the
workflow task, which the SDK's deadlock detector allows 2 s. 500 turns whose metadata repeats
their text (as the adapters' do) made ~400 kB updates whose decode overran those 2 s on a busy
machine, failing the task again at each retry; 256 kB still carries 200 typical agent items."""


def turn_bytes(turn: SessionTurn) -> int:
    """What a turn counts against ``MAX_BATCH_BYTES``: its text in UTF-8."""
    return len(turn.content.encode("utf-8"))


def _payload_bytes(turn: SessionTurn, text_bytes: int) -> int:
    """About what a turn weighs on the wire: its text plus its metadata as JSON."""
    if not turn.metadata:
        return text_bytes
    return text_bytes + len(json.dumps(turn.metadata, ensure_ascii=False, default=str))


def split_batch(
    turns: Sequence[SessionTurn],
    *,
    max_turns: int = MAX_BATCH_TURNS,
    max_bytes: int = MAX_BATCH_BYTES,
    max_payload: int = MAX_UPDATE_PAYLOAD,
) -> list[list[SessionTurn]]:
    """Cut turns, in order, into the fewest runs the workflow accepts in one ``add_turns``
    (``MAX_BATCH_TURNS``, ``MAX_BATCH_BYTES`` of text) and that stay under ``max_payload``.

    A single turn larger than a batch travels alone (the client sends it with ``add_turn``,
    whose own size rule decides whether it is accepted).
    """
    batches: list[list[SessionTurn]] = []
    current: list[SessionTurn] = []
    text = payload = 0
    for turn in turns:
        n = turn_bytes(turn)
        p = _payload_bytes(turn, n)
        full = len(current) >= max_turns or text + n > max_bytes or payload + p > max_payload
        if current and full:
            batches.append(current)
            current, text, payload = [], 0, 0
        current.append(turn)
        text += n
        payload += p
    if current:
        batches.append(current)
    return batches

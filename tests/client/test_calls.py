"""How ``SessionManager`` makes a call (``durable_sessions._calls``), without Temporal.

Error translation is fed the exceptions temporalio raises; the limiter, the busy retries and
the cancellation rules of writes run on plain coroutines.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from durable_sessions._calls import (
    RUN_ENDING,
    SessionLimiter,
    WriteProgress,
    retry_busy,
    shared_limiter,
    shielded_write,
    split_batch,
    translate,
)
from durable_sessions._reads import RecentWindow, SessionReads, window_tail
from durable_sessions.errors import (
    SessionBusyError,
    SessionClosedError,
    SessionError,
    SessionNotFoundError,
    TemporalUnavailableError,
    WorkerUnavailableError,
)
from durable_sessions.models import SessionState, SessionTurn
from durable_sessions.workflows.messages import MAX_BATCH_BYTES, MAX_BATCH_TURNS


def _unavailable() -> WorkerUnavailableError:
    return WorkerUnavailableError("no worker", session_id="s")


async def _missing(message: str) -> SessionError:
    return SessionNotFoundError("no such session", session_id="s")


async def _translated(exc: BaseException) -> BaseException:
    async def call() -> None:
        raise exc

    try:
        await translate("s", call, unavailable=_unavailable, missing=_missing)
    except BaseException as err:
        return err
    raise AssertionError("nothing raised")


def _rpc(status: RPCStatusCode, message: str) -> RPCError:
    return RPCError(message, status, b"")


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (
            RPCStatusCode.RESOURCE_EXHAUSTED,
            "limit on number of concurrent in-flight updates has been reached (10)",
            SessionBusyError,
        ),
        (RPCStatusCode.FAILED_PRECONDITION, "Workflow Task in failed state.", SessionBusyError),
        (RPCStatusCode.UNAVAILABLE, "workflow update was aborted", SessionBusyError),
        (RPCStatusCode.NOT_FOUND, "workflow not found", SessionNotFoundError),
        (RPCStatusCode.DEADLINE_EXCEEDED, "deadline", WorkerUnavailableError),
        (RPCStatusCode.UNAVAILABLE, "connection refused", TemporalUnavailableError),
        (RPCStatusCode.INTERNAL, "boom", TemporalUnavailableError),
    ],
)
async def test_rpc_errors_become_typed_errors(
    status: RPCStatusCode, message: str, expected: type[SessionError]
) -> None:
    err = await _translated(_rpc(status, message))
    assert type(err) is expected
    assert err.__cause__ is None  # no raw temporalio exception reaches the caller


async def test_a_run_that_is_closing_reads_as_run_ending() -> None:
    err = await _translated(
        _rpc(
            RPCStatusCode.RESOURCE_EXHAUSTED,
            "workflow operation can not be applied because workflow is closing",
        )
    )
    assert type(err) is SessionBusyError
    assert err.message.startswith(RUN_ENDING)


@pytest.mark.parametrize(
    "latest",
    [
        SessionBusyError(f"{RUN_ENDING}; retry in a moment", session_id="s"),
        SessionClosedError("session is expired", session_id="s", field="status"),
    ],
)
async def test_an_update_aborted_by_its_closing_run_reads_as_the_latest_run_says(
    latest: SessionError,
) -> None:
    """The server answers every resend of an update id aborted by a closing run with the
    same abort, so "aborted by closing" alone cannot say whether to retry: after a
    continue-as-new the next run takes the resend; after a close nothing ever will (a TTL
    expiry read as busy for the caller's whole patience, 1 run in 30 by hand). What the
    session's latest run is decides (``missing``)."""
    asked: list[str] = []

    async def missing(message: str) -> SessionError:
        asked.append(message)
        return latest

    async def call() -> None:
        raise _rpc(RPCStatusCode.NOT_FOUND, "workflow update was aborted by closing workflow")

    with pytest.raises(type(latest)) as raised:
        await translate("s", call, unavailable=_unavailable, missing=missing)
    assert raised.value is latest and raised.value.__cause__ is None
    assert asked == ["workflow update was aborted by closing workflow"]


async def test_an_update_rpc_timeout_is_worker_unavailable() -> None:
    timeout = WorkflowUpdateRPCTimeoutOrCancelledError()
    timeout.__cause__ = _rpc(RPCStatusCode.DEADLINE_EXCEEDED, "deadline")
    assert type(await _translated(timeout)) is WorkerUnavailableError


async def test_an_update_cancelled_by_its_caller_is_cancelled_not_unavailable() -> None:
    cancelled = WorkflowUpdateRPCTimeoutOrCancelledError()
    cancelled.__cause__ = asyncio.CancelledError()
    assert type(await _translated(cancelled)) is asyncio.CancelledError


# ---------------------------------------------------------------- limiter


async def test_limiter_admits_at_most_limit_and_serves_waiters_in_order() -> None:
    limiter = SessionLimiter(2)
    order: list[int] = []
    gate = asyncio.Event()

    async def holder(i: int) -> None:
        async with limiter.slot("s"):
            order.append(i)
            assert limiter.in_use("s") <= 2
            await gate.wait()

    tasks = [asyncio.create_task(holder(i)) for i in range(6)]
    await asyncio.sleep(0.01)
    assert order == [0, 1] and limiter.in_use("s") == 2
    async with limiter.slot("other"):  # sessions do not share a budget
        pass
    gate.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4, 5]
    assert limiter.in_use("s") == 0
    assert not limiter._loops[asyncio.get_running_loop()]  # idle sessions cost nothing


async def test_a_cancelled_waiter_gives_up_its_place_without_leaking_a_slot() -> None:
    limiter = SessionLimiter(1)
    release = asyncio.Event()

    async def hold() -> None:
        async with limiter.slot("s"):
            await release.wait()

    first = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(hold())
    third = asyncio.create_task(hold())
    await asyncio.sleep(0.01)
    waiting.cancel()
    release.set()
    await asyncio.gather(first, third)
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert limiter.in_use("s") == 0


class _Client:
    """Stands for a Temporal client: only its identity matters here."""


def test_managers_of_one_client_share_a_limiter() -> None:
    client_a, client_b = _Client(), _Client()
    assert shared_limiter(client_a) is shared_limiter(client_a)
    assert shared_limiter(client_a) is not shared_limiter(client_b)
    assert shared_limiter(client_a, 3).limit == 3


# ---------------------------------------------------------------- retries


async def test_busy_is_retried_until_it_succeeds_or_the_time_is_up() -> None:
    loop = asyncio.get_running_loop()
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 4:
            raise SessionBusyError("busy")
        return "ok"

    assert await retry_busy(flaky, timeout=5, loop=loop) == "ok"
    assert calls == 4

    async def always_busy() -> str:
        raise SessionBusyError("busy")

    started = loop.time()
    with pytest.raises(SessionBusyError):
        await retry_busy(always_busy, timeout=0.2, loop=loop)
    assert loop.time() - started < 0.5


async def test_retry_busy_waits_longer_while_the_run_is_only_ending() -> None:
    """A run refused its continue-as-new again and again under a burst: the call keeps
    retrying past ``timeout`` (up to ``RUN_ENDING_PATIENCE`` times it), then reaches the next
    run; any other busy answer on the way brings the deadline back to ``timeout``."""
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def ending_for(seconds: float) -> str:
        if loop.time() - started < seconds:
            raise SessionBusyError(f"{RUN_ENDING}; retry in a moment")
        return "next run"

    # Several times: the backoff is jittered, and a pause that would overshoot the deadline
    # must be cut to it (one more try there), never taken as a reason to give up early.
    for _ in range(5):
        started = loop.time()
        assert await retry_busy(lambda: ending_for(0.55), timeout=0.2, loop=loop) == "next run"
        assert loop.time() - started < 0.6 + 0.3

    started = loop.time()
    with pytest.raises(SessionBusyError):
        await retry_busy(lambda: ending_for(60), timeout=0.1, loop=loop)
    assert 0.1 < loop.time() - started < 0.3 + 0.3

    calls = 0

    async def mixed() -> str:
        nonlocal calls
        calls += 1
        message = RUN_ENDING if calls == 1 else "the session is busy"
        raise SessionBusyError(f"{message}; retry in a moment")

    started = loop.time()
    with pytest.raises(SessionBusyError):
        await retry_busy(mixed, timeout=0.2, loop=loop)
    assert loop.time() - started < 0.2 + 0.3


# ---------------------------------------------------------------- cancellation of writes


async def test_a_cancelled_write_in_flight_waits_for_its_outcome_then_raises_cancelled() -> None:
    answered = asyncio.Event()
    done: list[str] = []

    async def write(progress: WriteProgress) -> str:
        async with progress.sending():
            await asyncio.sleep(0.1)  # the update in flight
        done.append("stored")
        answered.set()
        return "receipt"

    task = asyncio.create_task(shielded_write(write, settle_timeout=5))
    await asyncio.sleep(0.02)
    task.cancel()
    task.cancel()  # a second cancellation does not cut the wait short
    with pytest.raises(asyncio.CancelledError):
        await task
    assert done == ["stored"]  # the outcome was known before CancelledError


async def test_asyncio_wait_for_times_out_with_timeout_error_after_the_outcome() -> None:
    done: list[str] = []

    async def write(progress: WriteProgress) -> str:
        async with progress.sending():
            await asyncio.sleep(0.1)
        done.append("stored")
        return "receipt"

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(shielded_write(write, settle_timeout=5), 0.02)
    assert done == ["stored"]


async def test_a_write_not_sent_yet_is_withdrawn_at_once() -> None:
    sent: list[str] = []
    never = asyncio.Event()

    async def write(progress: WriteProgress) -> str:
        await never.wait()  # queued behind the limiter, say
        async with progress.sending():
            sent.append("sent")
        return "receipt"

    task = asyncio.create_task(shielded_write(write, settle_timeout=5))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    never.set()
    await asyncio.sleep(0.01)
    assert sent == []


async def test_the_wait_for_an_outcome_is_bounded() -> None:
    async def write(progress: WriteProgress) -> str:
        async with progress.sending():
            await asyncio.sleep(10)
        return "receipt"

    task = asyncio.create_task(shielded_write(write, settle_timeout=0.1))
    await asyncio.sleep(0.01)
    started = asyncio.get_running_loop().time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert asyncio.get_running_loop().time() - started < 1


# ---------------------------------------------------------------- batches and windows


def _turn(content: str = "x", seq: int | None = None) -> SessionTurn:
    return SessionTurn(role="user", content=content, seq=seq)


def test_batches_are_cut_by_count_and_by_bytes_in_order() -> None:
    turns = [_turn(str(i)) for i in range(MAX_BATCH_TURNS * 2 + 1)]
    batches = split_batch(turns)
    assert [len(b) for b in batches] == [MAX_BATCH_TURNS, MAX_BATCH_TURNS, 1]
    assert [t for b in batches for t in b] == turns

    big = [_turn("é" * 30_000) for _ in range(10)]  # 60 kB of UTF-8 each
    batches = split_batch(big)
    assert all(sum(len(t.content.encode()) for t in b) <= MAX_BATCH_BYTES for b in batches)
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    # Metadata counts against the client's payload budget (adapters repeat the text there).
    heavy = [
        SessionTurn(role="user", content="x" * 1_000, metadata={"item": "y" * 9_000})
        for _ in range(60)
    ]
    cut = split_batch(heavy)
    assert [len(b) for b in cut] == [25, 25, 10]  # 25 x ~10 kB per update: under 256 kB
    assert sum(len(t.content) for b in cut for t in b) == 60_000
    # A turn larger than a batch travels alone (the client sends it with add_turn).
    oversized = [_turn("y"), _turn("x" * (MAX_BATCH_BYTES + 1)), _turn("z")]
    assert [len(b) for b in split_batch(oversized)] == [1, 1, 1]
    assert split_batch([]) == []


def test_the_recent_window_answers_only_when_it_holds_the_last_turns() -> None:
    window = [_turn(str(s), s) for s in range(80, 100)]
    assert window_tail(window, 100, 5) == window[-5:]
    assert window_tail(window, 100, 20) == window
    assert window_tail(window, 100, 21) is None  # not all in the window
    assert window_tail(window, 101, 5) is None  # a newer turn is missing
    gap = window[:10] + window[11:]
    assert window_tail(gap, 100, 15) is None  # not contiguous
    assert window_tail(gap, 100, 5) == window[-5:]
    assert window_tail([], 0, 5) == []
    assert window_tail([], 3, 5) is None


# ---------------------------------------------------------------- tail: one query, or two


class _FakeReads(SessionReads):
    """``SessionReads`` with scripted queries (no Temporal): counts what is asked."""

    def __init__(self, recent: list[SessionTurn], turn_count: int, *, combined: bool) -> None:
        self.recent, self.turn_count, self.combined = recent, turn_count, combined
        self.asked: list[str] = []

    async def _query(self, session_id: str, name: str, result_type: type[Any]) -> Any:
        self.asked.append(name)
        if name == "recent_window":
            if not self.combined:
                raise SessionError(
                    "query failed: Query handler for 'recent_window' expected but not found"
                )
            return RecentWindow(turn_count=self.turn_count, turns=self.recent)
        if name == "state":
            now = datetime.now(UTC)
            return SessionState(
                session_id=session_id,
                user_id="u",
                turn_count=self.turn_count,
                created_at=now,
                updated_at=now,
            )
        return self.recent


async def test_tail_reads_the_window_with_one_query_when_workers_have_it() -> None:
    window = [_turn(str(s), s) for s in range(80, 100)]
    reads = _FakeReads(window, 100, combined=True)
    assert await reads.tail("s", 5) == window[-5:]
    assert reads.asked == ["recent_window"]


async def test_tail_falls_back_to_two_queries_on_older_workers_and_remembers() -> None:
    window = [_turn(str(s), s) for s in range(80, 100)]
    reads = _FakeReads(window, 100, combined=False)
    assert await reads.tail("s", 5) == window[-5:]
    assert await reads.tail("s", 3) == window[-3:]
    assert reads.asked == ["recent_window", "state", "recent_turns", "state", "recent_turns"]

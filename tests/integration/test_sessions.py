"""End-to-end behaviour of sessions on the real dev server with a real store."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from durable_sessions.client import SessionManager
from durable_sessions.errors import (
    InvalidTransitionError,
    InvalidTurnError,
    SessionCapacityError,
    SessionClosedError,
    SessionNotFoundError,
    WorkerUnavailableError,
)
from durable_sessions.models import SessionConfig, SessionStatus, SessionTurn
from durable_sessions.stores.base import PersistBatch, SessionStore
from durable_sessions.worker import create_worker
from tests.helpers import assert_eventually
from tests.integration.conftest import Stack


def user_turn(text: str, **kw: object) -> SessionTurn:
    return SessionTurn(role="user", content=text, **kw)  # type: ignore[arg-type]


async def test_lifecycle_active_suspended_active_closed(stack: Stack) -> None:
    m = stack.manager
    s = await m.create("alice", {"topic": "billing"})
    await m.add_turn(s.session_id, user_turn("first"))

    st = await m.suspend(s.session_id)
    assert st.status is SessionStatus.SUSPENDED
    with pytest.raises(InvalidTransitionError):
        await m.add_turn(s.session_id, user_turn("while suspended"))
    with pytest.raises(InvalidTransitionError):
        await m.suspend(s.session_id)

    st = await m.resume(s.session_id)
    assert st.status is SessionStatus.ACTIVE
    with pytest.raises(InvalidTransitionError):
        await m.resume(s.session_id)
    await m.add_turn(s.session_id, SessionTurn(role="assistant", content="second"))

    st = await m.close(s.session_id)
    assert st.status is SessionStatus.CLOSED
    assert st.turn_count == 2
    with pytest.raises(SessionClosedError):
        await m.add_turn(s.session_id, user_turn("after close"))
    with pytest.raises(SessionClosedError):
        await m.resume(s.session_id)

    # Persisted reads work once the workflow is gone.
    got = await m.get(s.session_id)
    assert got.status is SessionStatus.CLOSED
    assert [t.content for t in await m.history(s.session_id)] == ["first", "second"]
    reasons = [c.reason for c in await m.list_checkpoints(s.session_id)]
    assert reasons[-1] == "close"
    listed = await m.list_sessions("alice")
    assert [x.session_id for x in listed] == [s.session_id]
    assert await m.list_sessions("alice", SessionStatus.ACTIVE) == []


async def test_ttl_expiry(stack: Stack) -> None:
    m = stack.manager
    s = await m.create("bob", ttl=1.5)
    await m.add_turn(s.session_id, user_turn("hello"))

    async def expired() -> None:
        assert (await m.get(s.session_id)).status is SessionStatus.EXPIRED

    await assert_eventually(expired, timeout=15)
    with pytest.raises(SessionClosedError):
        await m.add_turn(s.session_id, user_turn("too late"))
    cps = await m.list_checkpoints(s.session_id)
    assert cps[-1].reason == "expire"
    assert cps[-1].turn_count == 1
    assert [t.content for t in await m.history(s.session_id)] == ["hello"]


async def test_turns_reset_ttl(stack: Stack) -> None:
    m = stack.manager
    s = await m.create("bob", ttl=2.0)
    for i in range(5):  # 5 x 0.8 s = 4 s > TTL, but no gap exceeds it
        await m.add_turn(s.session_id, user_turn(f"keepalive {i}"))
        await asyncio.sleep(0.8)
    assert (await m.get(s.session_id)).status is SessionStatus.ACTIVE


async def test_ttl_expiry_across_worker_restart(
    client: Client, stack: Stack, task_queue: str
) -> None:
    other_queue = task_queue + "-restart"
    m = SessionManager(client, stack.store, SessionConfig(flush_interval=0.2), other_queue)
    async with create_worker(client, stack.store, task_queue=other_queue):
        s = await m.create("carol", ttl=2.0)
        await m.add_turn(s.session_id, user_turn("before the crash"))
    # No worker while the deadline passes.
    await asyncio.sleep(3.0)
    async with create_worker(client, stack.store, task_queue=other_queue):

        async def expired() -> None:  # persisted, not only decided
            stored = await stack.store.get_session(s.session_id)
            assert stored is not None and stored.status is SessionStatus.EXPIRED

        await assert_eventually(expired, timeout=20)
    assert [t.content for t in await m.history(s.session_id)] == ["before the crash"]


async def test_retried_turn_is_stored_once(stack: Stack) -> None:
    m = stack.manager
    s = await m.create("dave")
    turn = user_turn("only once")
    first = await m.add_turn(s.session_id, turn)
    again = await m.add_turn(s.session_id, turn)
    await m.send_turn(s.session_id, turn)  # the signal path dedups too
    await m.add_turn(s.session_id, user_turn("next"))
    assert first.seq == again.seq == 0
    history = await m.history(s.session_id)
    assert [t.content for t in history] == ["only once", "next"]
    assert (await m.get(s.session_id)).turn_count == 2


async def test_a_turn_signal_the_server_refuses_as_busy_is_resent(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``send_turn`` while the server refuses signals to the session for a moment (its run
    closing, temporal#5847; a rate limit): the refusal delivered nothing, so the signal is
    resent until it lands, as updates are, instead of the caller getting a busy error for a
    fire-and-forget call."""
    m = stack.manager
    s = await m.create("signals")
    refusals = 3
    real = WorkflowHandle.signal

    async def refusing(self: WorkflowHandle[Any, Any], *args: Any, **kwargs: Any) -> None:
        nonlocal refusals
        if refusals:
            refusals -= 1
            raise RPCError(
                "workflow operation can not be applied because workflow is closing",
                RPCStatusCode.RESOURCE_EXHAUSTED,
                b"",
            )
        await real(self, *args, **kwargs)

    monkeypatch.setattr(WorkflowHandle, "signal", refusing)
    turn = user_turn("sent while refused")
    await m.send_turn(s.session_id, turn)
    assert refusals == 0

    async def landed() -> None:
        assert [t.turn_id for t in await m.history(s.session_id)] == [turn.turn_id]

    await assert_eventually(landed)


async def test_500_turns_from_10_concurrent_clients(stack: Stack) -> None:
    m = stack.manager
    s = await m.create(
        "erin", config=SessionConfig(flush_interval=0.2, auto_checkpoint_interval=50)
    )

    async def client_loop(c: int) -> list[int]:
        seqs = []
        for i in range(50):
            stored = await m.add_turn(s.session_id, user_turn(f"c{c}-{i}"))
            assert stored.seq is not None
            seqs.append(stored.seq)
        return seqs

    results = await asyncio.gather(*(client_loop(c) for c in range(10)))
    for seqs in results:
        assert seqs == sorted(seqs)
    history = await m.history(s.session_id)
    assert [t.seq for t in history] == list(range(500))
    contents = [t.content for t in history]
    assert len(set(contents)) == 500
    for c in range(10):  # each client's turns appear in the order it sent them
        mine = [x for x in contents if x.startswith(f"c{c}-")]
        assert mine == [f"c{c}-{i}" for i in range(50)]

    async def flushed() -> None:
        stored = await stack.store.get_session(s.session_id)
        assert stored is not None and stored.turn_count == 500

    await assert_eventually(flushed)


async def test_send_turn_signal(stack: Stack) -> None:
    m = stack.manager
    s = await m.create("frank")
    for i in range(5):
        await m.send_turn(s.session_id, user_turn(f"signal {i}"))

    async def arrived() -> None:
        assert [t.content for t in await m.history(s.session_id)] == [
            f"signal {i}" for i in range(5)
        ]

    await assert_eventually(arrived)


async def test_bad_input_typed_errors_and_session_keeps_working(stack: Stack) -> None:
    m = stack.manager
    cfg = SessionConfig(max_turns=3, max_turn_bytes=1000, flush_interval=0.2)
    s = await m.create("gina", config=cfg)
    sid = s.session_id

    # Client-side validation names the field before anything is sent.
    with pytest.raises(ValidationError) as exc_info:
        SessionTurn(role="robot", content="x")  # type: ignore[arg-type]
    assert "role" in str(exc_info.value)
    with pytest.raises(ValidationError) as exc_info:
        SessionTurn(role="user", content="")
    assert "content" in str(exc_info.value)

    # The workflow's validator rejects what reaches it, with typed errors naming the field.
    with pytest.raises(InvalidTurnError) as too_big:
        await m.add_turn(sid, user_turn("x" * 1001))
    assert too_big.value.field == "content"
    assert "x" * 20 not in str(too_big.value)  # no content in error messages

    # Any client (not only ours) gets typed rejections naming the field, never echoing content.
    handle = stack.client.get_workflow_handle(sid)
    for raw, field in (
        ({"role": "robot", "content": "secret words"}, "role"),
        ({"role": "user", "content": ""}, "content"),
    ):
        with pytest.raises(WorkflowUpdateFailedError) as raw_exc:
            await handle.execute_update("add_turn", raw, rpc_timeout=timedelta(seconds=10))
        cause = raw_exc.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.type == "InvalidTurnError"
        assert cause.details[0]["field"] == field
        assert "secret" not in cause.message
    # A bad signal is dropped and logged; it never fails the workflow task.
    await handle.signal("add_turn", {"role": "robot", "content": "hi"})
    await handle.signal("add_turn", {"role": "user", "content": "y" * 2000})

    for i in range(3):
        await m.add_turn(sid, user_turn(f"ok {i}"))
    with pytest.raises(SessionCapacityError) as cap:
        await m.add_turn(sid, user_turn("one too many"))
    assert cap.value.field == "max_turns"
    assert [t.content for t in await m.history(sid)] == ["ok 0", "ok 1", "ok 2"]

    with pytest.raises(SessionNotFoundError):
        await m.add_turn("no-such-session-" + uuid.uuid4().hex, user_turn("hi"))
    with pytest.raises(SessionNotFoundError):
        await m.get("no-such-session-" + uuid.uuid4().hex)
    with pytest.raises(SessionNotFoundError):
        await m.send_turn("no-such-session-" + uuid.uuid4().hex, user_turn("hi"))

    await m.close(sid)
    with pytest.raises(SessionClosedError):
        await m.send_turn(sid, user_turn("hi"))
    with pytest.raises(SessionClosedError):
        await m.close(sid)


async def test_no_worker_fails_fast_naming_the_task_queue(client: Client, stack: Stack) -> None:
    queue = "nobody-polls-" + uuid.uuid4().hex[:8]
    m = SessionManager(client, stack.store, task_queue=queue, call_timeout=1.0)
    # ``create`` needs no worker (the client stores the header and starts the run); the first
    # call that needs the session's answer fails fast, naming the queue nobody polls.
    s = await m.create("henry")
    assert await stack.store.get_session(s.session_id) == s
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(WorkerUnavailableError) as exc_info:
        await m.add_turn(s.session_id, SessionTurn(role="user", content="anyone?"))
    assert loop.time() - started < 5
    assert queue in str(exc_info.value)


class _HeaderWriteFails:
    """The manager's view of the store, whose header write fails (the worker's store works)."""

    def __init__(self, inner: SessionStore) -> None:
        self.inner = inner
        self.failed = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def persist(self, batch: PersistBatch) -> bool:
        self.failed += 1
        raise ConnectionError("injected: the store is unreachable from this client")


async def test_create_stores_the_header_itself_or_has_the_run_store_it(stack: Stack) -> None:
    """``create`` writes the header from the client and starts the run without waiting for it;
    when that write fails, the run stores the header before ``create`` returns."""
    s = await stack.manager.create("ivy", {"topic": "fast path"})
    assert await stack.store.get_session(s.session_id) == s
    history = await stack.client.get_workflow_handle(s.session_id).fetch_history()
    assert not any(e.marker_recorded_event_attributes.marker_name for e in history.events)

    broken = _HeaderWriteFails(stack.store)
    m = SessionManager(stack.client, broken, task_queue=stack.task_queue)  # type: ignore[arg-type]
    s = await m.create("ivy", {"topic": "fallback"})
    assert broken.failed == 1
    header = await stack.store.get_session(s.session_id)
    assert header is not None and header.metadata == {"topic": "fallback"}
    await stack.manager.add_turn(s.session_id, SessionTurn(role="user", content="still fine"))
    assert [t.content for t in await stack.manager.history(s.session_id)] == ["still fine"]


async def test_workers_apply_each_activation_as_one_batch(stack: Stack) -> None:
    """A worker from ``create_worker`` (through ``DurableSessionsPlugin``) runs sessions with
    the SDK's single-batch activations: without them, an update rejected by its validator in
    the same workflow task as an activity's result reorders commands on replay (the model
    test's replay check found it). The flag is recorded in the session's first task."""
    m = stack.manager
    s = await m.create("flags")
    await m.add_turn(s.session_id, SessionTurn(role="user", content="hello"))
    history = await m.client.get_workflow_handle(s.session_id).fetch_history()
    completed = [
        e.workflow_task_completed_event_attributes.sdk_metadata
        for e in history.events
        if e.HasField("workflow_task_completed_event_attributes")
    ]
    assert 2 in completed[0].lang_used_flags

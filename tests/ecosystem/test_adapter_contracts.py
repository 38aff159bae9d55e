"""The five behaviours of issue 17 where the adapters differed from the frameworks' own sessions.

1. Cancellation and timeouts mean what they mean in asyncio (``SessionManager`` and adapters).
2. One session object used from several event loops (threads running their own loops).
3. ``pop_item`` is atomic (concurrent pops; pops racing appends).
4. ``session_settings`` given as a dict is converted and checked.
5. LangChain's sync ``history.messages`` inside a running event loop: see
   ``test_langchain.py::test_sync_api_inside_a_running_loop_works``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from agents.memory import SessionSettings
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from durable_sessions.adapters import DurableAgentsSession
from durable_sessions.client import SessionManager
from durable_sessions.errors import WorkerUnavailableError
from durable_sessions.models import SessionConfig
from durable_sessions.plugin import DurableSessionsPlugin
from durable_sessions.stores.base import SessionStore
from durable_sessions.worker import create_worker
from tests.processes import PgWorker


@pytest_asyncio.fixture(loop_scope="session")
async def manager(
    temporal_env: WorkflowEnvironment, store: SessionStore, task_queue: str
) -> AsyncIterator[SessionManager]:
    async with Worker(
        temporal_env.client, task_queue=task_queue, plugins=[DurableSessionsPlugin(store)]
    ):
        yield SessionManager(
            temporal_env.client, store, SessionConfig(flush_interval=0.2), task_queue
        )


def _items(n: int, prefix: str = "item") -> list[Any]:
    return [{"role": "user", "content": f"{prefix} {i}"} for i in range(n)]


# ---------------------------------------------------------------- 1. cancellation and timeouts


async def _without_worker(
    temporal_env: WorkflowEnvironment, store: SessionStore, task_queue: str, call_timeout: float
) -> tuple[SessionManager, DurableAgentsSession]:
    """A session whose worker has stopped: an update sent now is in flight until a worker
    comes back (deterministic, unlike racing a running worker)."""
    manager = SessionManager(
        temporal_env.client, store, SessionConfig(), task_queue, call_timeout=call_timeout
    )
    async with create_worker(temporal_env.client, store, task_queue=task_queue):
        session = await DurableAgentsSession.create(manager, "cancel-user")
    return manager, session


@pytest.mark.parametrize("how", ["cancel", "wait_for"])
async def test_a_cancelled_add_items_waits_for_the_outcome_then_raises(
    temporal_env: WorkflowEnvironment, store: SessionStore, task_queue: str, how: str
) -> None:
    """Mongo suite contract: "mutation cancellation waits for authoritative outcome". The
    items are then stored once, all 40 (one all-or-nothing update), and no
    ``WorkerUnavailableError`` says otherwise."""
    _, session = await _without_worker(temporal_env, store, task_queue, call_timeout=20)
    items = _items(40)
    adding = session.add_items(items)
    write = asyncio.ensure_future(adding if how == "cancel" else asyncio.wait_for(adding, 0.3))
    await asyncio.sleep(0.3)  # the update is sent, and nobody answers it
    if how == "cancel":
        write.cancel()
    await asyncio.sleep(0.2)
    assert not write.done()  # still waiting for the session's answer
    async with create_worker(temporal_env.client, store, task_queue=task_queue):
        with pytest.raises(asyncio.CancelledError if how == "cancel" else TimeoutError):
            await write
        assert await session.get_items() == items


async def test_worker_unavailable_only_when_no_worker_answered(
    temporal_env: WorkflowEnvironment, store: SessionStore, task_queue: str
) -> None:
    manager, session = await _without_worker(temporal_env, store, task_queue, call_timeout=1)
    with pytest.raises(WorkerUnavailableError):
        await session.add_items(_items(1))
    # A read that nobody answers is not a cancellation either.
    with pytest.raises(WorkerUnavailableError):
        await manager.recent_turns(session.session_id)


async def test_a_write_cancelled_before_it_was_sent_is_withdrawn(manager: SessionManager) -> None:
    """Calls queued behind the per-session limiter are withdrawn when cancelled: nothing of
    them is stored, and the others are unaffected."""
    session = await DurableAgentsSession.create(manager, "cancel-user")
    manager_small = SessionManager(
        manager.client, manager.store, manager.config, manager.task_queue, max_in_flight=1
    )
    small = DurableAgentsSession(manager_small, session.session_id)
    first = asyncio.create_task(small.add_items(_items(1, "first")))
    await asyncio.sleep(0)
    queued = asyncio.create_task(small.add_items(_items(1, "queued")))
    await asyncio.sleep(0)
    queued.cancel()
    await first
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert [i["content"] for i in await session.get_items()] == ["first 0"]


# ---------------------------------------------------------------- 2. several event loops


async def test_one_session_from_many_threads_each_with_its_own_loop(
    temporal_env: WorkflowEnvironment, pg_worker: PgWorker, task_queue: str
) -> None:
    """SDK ``test_sqlite_session_concurrent_access``: threads each run ``add_items`` on a new
    event loop while this loop is blocked waiting for them (the worker is another process)."""
    manager = SessionManager(
        temporal_env.client, pg_worker.store, SessionConfig(flush_interval=0.2), task_queue
    )
    session = await DurableAgentsSession.create(manager, "threads-user")
    items = _items(10, "Message")

    def add_item(item: Any) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(session.add_items([item]))
        finally:
            loop.close()

    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as executor:
        list(executor.map(add_item, items))  # blocks this loop, as the SDK's test does

    contents = {i["content"] for i in await session.get_items()}
    assert contents == {f"Message {i}" for i in range(10)}

    # Reads from other loops too (they hop to the manager's loop for the store).
    def read() -> int:
        return len(asyncio.run(session.get_items()))

    assert await asyncio.to_thread(read) == 10


# ---------------------------------------------------------------- 3. atomic pop


async def test_concurrent_pops_return_distinct_items(manager: SessionManager) -> None:
    session = await DurableAgentsSession.create(manager, "pop-user")
    items = _items(10)
    await session.add_items(items)
    popped = await asyncio.gather(*(session.pop_item() for _ in range(12)))
    got = [p for p in popped if p is not None]
    assert sorted(i["content"] for i in got) == sorted(i["content"] for i in items)
    assert popped.count(None) == 2
    assert await session.get_items() == []


async def test_pops_racing_appends_never_drop_an_appended_item(manager: SessionManager) -> None:
    session = await DurableAgentsSession.create(manager, "pop-user")
    await session.add_items(_items(20, "old"))
    results = await asyncio.gather(
        *(session.pop_item() for _ in range(10)),
        *(session.add_items([item]) for item in _items(10, "new")),
    )
    popped = [r for r in results[:10] if r is not None]
    remaining = await session.get_items()
    assert len(popped) == 10
    # Every item is either still there or was returned by exactly one pop.
    everything = sorted(i["content"] for i in [*remaining, *popped])
    assert everything == sorted(i["content"] for i in [*_items(20, "old"), *_items(10, "new")])


# ---------------------------------------------------------------- 4. session_settings


async def test_session_settings_as_a_dict_are_converted_and_checked(
    manager: SessionManager,
) -> None:
    state = await manager.create("settings-user")
    session = DurableAgentsSession(manager, state.session_id, session_settings={"limit": 2})
    assert isinstance(session.session_settings, SessionSettings)
    assert session.session_settings.limit == 2
    await session.add_items(_items(5))
    assert [i["content"] for i in await session.get_items()] == ["item 3", "item 4"]
    with pytest.raises(TypeError, match="limitt"):
        DurableAgentsSession(manager, state.session_id, session_settings={"limitt": 1})

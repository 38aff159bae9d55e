"""The worker: runs ``Session`` workflows and their activities against one store.

``create_worker`` builds a ``temporalio`` ``Worker`` for a client from ``durable_sessions.connect``;
``python -m durable_sessions.worker`` (or ``durable-sessions worker``) runs one from environment
settings and shuts down gracefully on SIGTERM / Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import signal
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from durable_sessions._sticky import release_dead_sticky_queues
from durable_sessions.agents import Agent
from durable_sessions.config import Settings
from durable_sessions.encryption import encrypt_store
from durable_sessions.errors import StoreUnavailableError, TemporalUnavailableError
from durable_sessions.plugin import PASSTHROUGH_MODULES, WORKFLOWS, DurableSessionsPlugin
from durable_sessions.stores.base import SessionStore
from durable_sessions.stores.memory import InMemorySessionStore
from durable_sessions.workflows.messages import DEFAULT_TASK_QUEUE

__all__ = [
    "STICKY_QUEUE_TIMEOUT",
    "WORKFLOWS",
    "create_worker",
    "load_agents",
    "main",
    "run_worker",
    "settle_heap",
    "workflow_runner",
]

log = logging.getLogger("durable_sessions.worker")


def workflow_runner(*, sandboxed: bool = False) -> WorkflowRunner:
    """How a worker runs our workflow code: without the sandbox unless ``sandboxed``.

    Why not sandboxed by default: the sandbox doubles what every workflow activation costs
    (measured on a cold session's replay of a 170-event run: 130-158 ms sandboxed, 75-81 ms
    without; ``bench/profile_cold.py``). After a deploy every session replays at once, and that
    cost decided whether the replays fit in the workflow-task timeout. Our workflow code is
    deterministic without it: ``tests/unit/test_workflow_determinism.py`` keeps clocks,
    randomness, threads and I/O out of ``workflows/`` and the ``core/`` modules they import, and
    the replay tests run every recorded history through the sandbox (``sandboxed=True``), which
    fails on any restricted call. Sandboxed, our modules and
    pydantic are passed through (imported once, not per run).
    """
    if not sandboxed:
        return UnsandboxedWorkflowRunner()
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    )


STICKY_QUEUE_TIMEOUT = timedelta(seconds=3)
WORKFLOW_TASK_SLOTS = 16
"""Workflow tasks a worker runs at once (the SDK's default is 100). Python runs them on one core
at a time: when a deploy leaves every session cold, 100 replays at once each take 100 times
longer and overran the 2 s workflow-task timeout, so they were retried and replayed again (the
storm seen after restarts). 16 keeps a burst of cold replays of bounded runs inside the timeout
while the rest wait in the server's queue (no timeout limits that wait); fewer starved hot
sessions, whose local-activity flushes hold a slot while the store answers (4 slots halved
bench_turns' 20-session throughput)."""


def create_worker(
    client: Client,
    store: SessionStore | None = None,
    *,
    task_queue: str = DEFAULT_TASK_QUEUE,
    agents: Sequence[Agent] = (),
    sandboxed: bool = False,
    **worker_kwargs: Any,
) -> Worker:
    """A worker for sessions on ``task_queue``. ``store`` defaults to an in-memory store.

    ``sandboxed=True`` runs the workflows in Temporal's sandbox (see ``workflow_runner``: about
    twice the CPU per workflow task); a ``workflow_runner`` in ``worker_kwargs`` wins over both.

    A thin use of ``DurableSessionsPlugin``: the plugin (given to this worker only) brings the
    workflows, activities and sandbox pass-throughs; ``client`` must already use pydantic
    payloads (``durable_sessions.connect``). The store must be set up (``await store.setup()``)
    before the worker runs. When the client encrypts, so does the store (``encrypt_store``):
    turn text and metadata at rest are sealed with the same per-session keys as the history.
    """
    if any(isinstance(p, DurableSessionsPlugin) for p in client.config()["plugins"]):
        raise ValueError(
            "this client already carries DurableSessionsPlugin; its workers inherit it: use "
            "temporalio.worker.Worker(client, task_queue=...) instead of create_worker"
        )
    store = encrypt_store(client, store or InMemorySessionStore())
    # A workflow task routed to a worker that died waits this long on that worker's own (sticky)
    # queue before any worker may take it: the SDK's 10 s is 10 s of a session not answering.
    worker_kwargs.setdefault("sticky_queue_schedule_to_start_timeout", STICKY_QUEUE_TIMEOUT)
    worker_kwargs.setdefault("max_concurrent_workflow_tasks", WORKFLOW_TASK_SLOTS)
    worker_kwargs.setdefault("workflow_runner", workflow_runner(sandboxed=sandboxed))
    plugin = DurableSessionsPlugin(store, agents, setup_store=False)
    plugins = [plugin, *worker_kwargs.pop("plugins", ())]
    return Worker(client, task_queue=task_queue, plugins=plugins, **worker_kwargs)


def settle_heap() -> None:
    """Freeze what start-up built, so the garbage collector never walks it again.

    Why: every full collection walks every tracked object, and most of a worker's are the
    modules and classes imported at start-up (temporalio, pydantic, asyncpg, ours), which live
    as long as the process. A full collection pauses the process, and the call in flight pays
    the pause whole. In a smoke run of ``bench_scale`` (3,000 sessions, a cache of 200) our worker
    made 10-12 full collections in 5 minutes of 125-135 ms each; with start-up frozen, 13 of
    50-84 ms, and the same peak RSS (138 MB). Collection thresholds stay CPython's: raising the
    young one as well removed the full collections of that run but grew its RSS by a quarter
    (cyclic garbage waits longer), so it was not kept. For the worker processes we start
    (``python -m durable_sessions.worker``, ``dev``); a library caller's process keeps its own
    settings.
    """
    gc.collect()
    gc.freeze()


def load_agents(spec: str | None) -> list[Agent]:
    """Agents from ``module:attribute`` references (comma-separated). The attribute may be an
    agent, a list of agents, or a callable returning either."""
    agents: list[Agent] = []
    for ref in (spec or "").split(","):
        ref = ref.strip()
        if not ref:
            continue
        module_name, _, attr = ref.partition(":")
        obj: Any = getattr(importlib.import_module(module_name), attr or "agents")
        if callable(obj) and not isinstance(obj, Agent):
            obj = obj()
        agents.extend(obj if isinstance(obj, list | tuple) else [obj])
    return agents


async def run_worker(settings: Settings | None = None) -> None:
    """Run one worker from settings until SIGTERM or SIGINT."""
    from durable_sessions.runtime import (
        client_from_settings,
        keystore_from_settings,
        store_from_settings,
    )

    settings = settings or Settings()
    store = store_from_settings(settings)
    try:
        await store.setup()
    except StoreUnavailableError as exc:
        raise SystemExit(f"error: {exc}") from None
    from durable_sessions.metrics import runtime_with_metrics, tracing_interceptors

    connect_kwargs: dict[str, Any] = {"interceptors": tracing_interceptors(settings.tracing)}
    if settings.metrics_port:
        connect_kwargs["runtime"] = runtime_with_metrics(settings.metrics_port)
    keystore = keystore_from_settings(settings, store)
    try:
        client = await client_from_settings(settings, keystore=keystore, **connect_kwargs)
    except TemporalUnavailableError as exc:
        await store.close()
        raise SystemExit(f"error: {exc}") from None
    kwargs: dict[str, Any] = {"max_cached_workflows": settings.max_cached_workflows}
    if settings.max_concurrent_workflow_tasks:
        kwargs["max_concurrent_workflow_tasks"] = settings.max_concurrent_workflow_tasks
    if settings.max_concurrent_activities:
        kwargs["max_concurrent_activities"] = settings.max_concurrent_activities
    worker = create_worker(
        client,
        store,
        task_queue=settings.task_queue,
        agents=load_agents(settings.agents),
        sandboxed=settings.sandbox,
        **kwargs,
    )
    # Before saying "polling" (tests and supervisors wait for it): the plugin's own run of this
    # when the worker starts is then the same, finished sweep.
    await release_dead_sticky_queues(client, settings.task_queue)
    settle_heap()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    log.info(
        "worker polling task queue %r on %s (namespace %r)",
        settings.task_queue,
        settings.temporal_address,
        settings.namespace,
    )
    async with worker:
        await stop.wait()
        log.info("shutting down: finishing in-flight tasks")
    await store.close()
    if keystore is not None:
        await keystore.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(run_worker())


if __name__ == "__main__":
    from durable_sessions._process import run_as_process

    run_as_process(main)

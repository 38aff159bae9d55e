"""``DurableSessionsPlugin``: durable sessions as one object on a user's own client and worker.

Why a plugin: Temporal users already have a ``Client.connect(...)`` and a ``Worker(...)`` of
their own, with their own workflows, interceptors and settings. Asking them to switch to our
``connect()`` / ``create_worker()`` makes us the owner of their process. A
``temporalio.plugin.SimplePlugin`` is the SDK's way to package what we need instead (as the
OpenAI Agents and pydantic-ai integrations do), so it composes with everything else::

    store = PostgresSessionStore(dsn)
    plugin = DurableSessionsPlugin(store, agents=[MyAgent()])
    client = await Client.connect("localhost:7233", plugins=[plugin])
    worker = Worker(client, task_queue="durable-sessions", workflows=[MyOwnWorkflow])
    manager = SessionManager(client, store, task_queue="durable-sessions")

What the plugin brings:

* on the client: pydantic payloads (those of ``pydantic_data_converter``, through the cheaper
  ``durable_sessions.converter``). An existing payload codec
  (encryption) or failure converter on the client is kept; only the payload converter is
  switched to pydantic, which our models need.
* on every worker made from that client (temporalio 1.35 hands client plugins that are also
  worker plugins to each ``Worker``): the ``Session`` workflow, the persistence, context and
  agent-turn activities bound to ``store``, the sandbox pass-throughs for our modules and
  pydantic, added to whatever sandbox runner the worker already has, and (unless the worker has
  a ``workflow_task_executor`` of its own) ``InlineActivations``, which runs our workflows'
  activations on the worker's event loop and everybody else's in threads.
* on a ``Replayer`` given the plugin: the same workflows, converter and runner.

Put the plugin on the client only. Giving it to the client *and* the worker registers
everything twice (temporalio warns, then refuses the duplicate workflow). A worker-only plugin
(``Worker(client, ..., plugins=[plugin])``) works when the client already speaks pydantic
(``durable_sessions.connect`` or a client with the plugin's converter); otherwise the worker
refuses to start with an explanation, because it cannot change its client's converter.

The server must know the ``SessionUserId`` and ``SessionStatus`` keyword search attributes
(``temporal server start-dev --search-attribute SessionUserId=Keyword ...``, or
``temporal operator search-attribute create``); that is server configuration, not something a
plugin can safely do for every deployment (Temporal Cloud registers them through its own API).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import inspect
import logging
import weakref
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, TypeVar, cast

from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import DataConverter
from temporalio.plugin import SimplePlugin
from temporalio.worker import Worker, WorkerConfig, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from durable_sessions import metrics
from durable_sessions._sticky import polling, release_dead_sticky_queues
from durable_sessions.activities.agents import AgentActivities
from durable_sessions.activities.context import ContextActivities
from durable_sessions.activities.persistence import PersistenceActivities
from durable_sessions.agents import Agent
from durable_sessions.converter import SharedPydanticPayloadConverter, session_data_converter
from durable_sessions.models import CompactionConfig
from durable_sessions.stores.base import SessionStore
from durable_sessions.workflows.session import SessionWorkflow

__all__ = [
    "PASSTHROUGH_MODULES",
    "PLUGIN_NAME",
    "WORKFLOWS",
    "DurableSessionsPlugin",
    "InlineActivations",
    "single_batch_activations",
    "skip_idle_payload_visits",
    "with_passthrough",
    "with_pydantic_payloads",
]

PLUGIN_NAME = "durable_sessions.DurableSessionsPlugin"
log = logging.getLogger(__name__)
T = TypeVar("T")

PASSTHROUGH_MODULES: tuple[str, ...] = (
    "durable_sessions",
    "pydantic",
    "pydantic_core",
    "annotated_types",
)
"""Modules the workflow sandbox imports once instead of per run: ours (models, messages, the
pure core) are deterministic, and pydantic is expensive to re-import for every workflow."""

WORKFLOWS: list[type] = [SessionWorkflow]
"""Our workflow classes, registered by the plugin (and so by ``create_worker``). Defined here,
not in ``durable_sessions.worker``: the worker imports the plugin, never the other way round."""


def with_pydantic_payloads(existing: DataConverter | None) -> DataConverter:
    """The client's converter with pydantic payloads, keeping its codec and failure converter.

    Why not simply ``pydantic_data_converter``: a client configured with encryption (a payload
    codec) must stay encrypted; replacing its whole converter would silently send plaintext.
    """
    if existing is None:
        return session_data_converter
    own = existing.payload_converter_class
    if issubclass(own, PydanticPayloadConverter) and own is not PydanticPayloadConverter:
        return existing  # ours already, or the user's own subclass with its own options
    return dataclasses.replace(existing, payload_converter_class=SharedPydanticPayloadConverter)


def with_passthrough(runner: WorkflowRunner | None) -> WorkflowRunner:
    """Add our sandbox pass-throughs to the worker's runner instead of replacing it.

    Why: the user (or another plugin, e.g. OpenTelemetry) may have configured the sandbox
    already; a fresh runner would drop their restrictions. A non-sandboxed runner needs nothing.
    """
    if runner is None:
        runner = SandboxedWorkflowRunner()
    if isinstance(runner, SandboxedWorkflowRunner):
        return dataclasses.replace(
            runner, restrictions=runner.restrictions.with_passthrough_modules(*PASSTHROUGH_MODULES)
        )
    return runner


class DurableSessionsPlugin(SimplePlugin):
    """Durable sessions for your own Temporal client and workers (see the module docstring).

    Args:
        store: Where the workers persist sessions. The ``SessionManager`` that talks to these
            workers must be given the same store (it reads history from it directly).
        agents: Agents the workers can run in group sessions, by name (and as compaction
            summarizers, ``CompactionConfig.summarizer``).
        setup_store: Run ``await store.setup()`` (idempotent) before each worker starts
            polling, so a plain ``Worker`` never runs activities against an unmigrated store.
        compaction: Compaction for every session whose own ``SessionConfig.compaction`` is
            None (default None: only sessions that ask are compacted).
        release_dead_sticky: Before polling, release the sticky queues of this host's workers
            that died without shutting down (kill -9, a crash), found in recent sessions'
            histories, so their sessions' next tasks do not wait out the sticky timeout on a
            queue nobody polls (``durable_sessions._sticky``).
    """

    def __init__(
        self,
        store: SessionStore,
        agents: Sequence[Agent] = (),
        *,
        setup_store: bool = True,
        compaction: CompactionConfig | None = None,
        release_dead_sticky: bool = True,
    ) -> None:
        self.store = store
        self.release_dead_sticky = release_dead_sticky
        self.agents: list[Agent] = list(agents)
        self._executors: weakref.WeakSet[InlineActivations] = weakref.WeakSet()
        """The executors this plugin gave workers: it shuts each down with its worker."""
        self.setup_store = setup_store
        activities: list[Callable[..., Any]] = [
            *PersistenceActivities(store).all(),
            *ContextActivities(
                store, on_prune=metrics.record_prune, agents=self.agents, compaction=compaction
            ).all(),
            *AgentActivities(store, self.agents).all(),
        ]
        super().__init__(
            PLUGIN_NAME,
            data_converter=with_pydantic_payloads,
            activities=activities,
            workflows=list(WORKFLOWS),
            workflow_runner=with_passthrough,
        )

    def configure_worker(self, config: WorkerConfig) -> WorkerConfig:
        """Add our workflows and activities; refuse a client whose payloads are not pydantic.

        Why refuse: a worker uses its client's data converter and a worker plugin cannot change
        it. Without pydantic payloads every session call would fail later with an obscure
        decoding error inside a workflow task; failing here names the fix.
        """
        client = config.get("client")
        if client is not None:
            converter = client.data_converter
            if not issubclass(converter.payload_converter_class, PydanticPayloadConverter):
                raise ValueError(
                    "DurableSessionsPlugin needs a client with pydantic payloads: add the plugin "
                    "to Client.connect(..., plugins=[plugin]) (workers inherit it; do not also "
                    "pass it to Worker) or connect with durable_sessions.connect()"
                )
        if config.get("workflow_task_executor") is None:
            slots = config.get("max_concurrent_workflow_tasks") or DEFAULT_WORKFLOW_TASK_THREADS
            executor = InlineActivations(WORKFLOWS, max_workers=slots)
            self._executors.add(executor)
            config["workflow_task_executor"] = executor
        return super().configure_worker(config)

    async def run_worker(self, worker: Worker, next: Callable[[Worker], Awaitable[None]]) -> None:
        """Set the store up before polling (when ``setup_store``), release the sticky queues of
        this host's workers that died without shutting down (``_sticky``; when
        ``release_dead_sticky``), then run the worker with
        single-batch activations (``single_batch_activations``), no idle payload walks
        (``skip_idle_payload_visits``) and, unless the worker was given an executor of its own,
        our workflows' activations on its event loop (``InlineActivations``)."""
        if self.setup_store:
            await self.store.setup()
        config = worker.config(active_config=True)
        if self.release_dead_sticky:
            client = config["client"]
            await release_dead_sticky_queues(
                client, config["task_queue"], config.get("identity") or client.identity
            )
        single_batch_activations(worker)
        skip_idle_payload_visits()
        try:
            with polling(config["task_queue"]):
                await super().run_worker(worker, next)
        finally:
            # The SDK shuts down only an executor it made itself; one this plugin made is ours
            # (one the user gave, even an ``InlineActivations``, stays theirs).
            executor = config.get("workflow_task_executor")
            if isinstance(executor, InlineActivations) and executor in self._executors:
                executor.shutdown(wait=False)


_PAYLOAD_VISITS_SKIPPED = False


def skip_idle_payload_visits() -> bool:
    """Skip the SDK's payload walks over an activation and its completion when they can do
    nothing: no payload codec and no external storage. Whether the skip is in place.

    temporalio 1.35 walks every workflow activation three times before the workflow sees it
    (reference payloads, external storage, codec) and every completion three times after,
    in Python over the protobuf, awaiting per payload, even when the data converter has no
    codec and no external storage, and each walk then hands every payload back unchanged. On a
    cold call that is 20-25% of replaying a short session run (bench/RESULTS.md, "Cold path
    profile", session 15). With a codec (``durable_sessions.encryption``) or external storage
    the SDK's own walks run as before; the decision is made per activation from the converter
    the SDK passes, so other workers in the process are unaffected. What is lost without
    a codec or storage: the SDK's check that no payload is an external-storage reference,
    which only a worker of another configuration could have written; decoding such a payload
    then fails in the payload converter instead."""
    global _PAYLOAD_VISITS_SKIPPED
    if _PAYLOAD_VISITS_SKIPPED:
        return True
    try:
        import temporalio.bridge.worker as bridge_worker
        from temporalio.converter._extstore import StorageOperationMetrics

        decode, encode = bridge_worker.decode_activation, bridge_worker.encode_completion
        for walk, headers in ((decode, "decode_headers"), (encode, "encode_headers")):
            names = list(inspect.signature(walk).parameters)[1:]
            if names != ["data_converter", headers, "storage_concurrency_limit"]:
                raise RuntimeError(f"{walk.__name__}{inspect.signature(walk)}")
    except (ImportError, AttributeError, RuntimeError) as exc:  # a newer or older SDK
        log.warning("could not skip idle payload visits: %s", exc)
        return False

    def skipping(walk: Callable[..., Awaitable[StorageOperationMetrics]]) -> Any:
        @functools.wraps(walk)
        async def maybe_walk(
            proto: Any, data_converter: DataConverter, *args: Any, **options: Any
        ) -> StorageOperationMetrics:
            codec = data_converter.payload_codec
            if codec is None and getattr(data_converter, "external_storage", None) is None:
                return StorageOperationMetrics()
            return await walk(proto, data_converter, *args, **options)

        return maybe_walk

    bridge_worker.decode_activation = skipping(decode)
    bridge_worker.encode_completion = skipping(encode)
    _PAYLOAD_VISITS_SKIPPED = True
    return True


def single_batch_activations(worker: Worker) -> bool:
    """Have ``worker`` apply every job of a workflow activation before running workflow code
    (the SDK's workflow logic flag 2, recorded in history per task; off by default in
    temporalio 1.35, which plans to turn it on after two releases). Whether it is on.

    Why: without it, the SDK runs signal and update handlers, then checks every
    ``wait_condition``, and only then applies the activation's other jobs (a timer firing, an
    activity's result). An update rejected by its validator leaves nothing in history, so on
    replay that activation holds only the other jobs, and a condition that was already true
    (one that reads the history length or the time, as a session's idle and flush checks do)
    runs after them instead of before: different commands, a nondeterminism error on the next
    cache miss. The model test (tests/faults) found it about once in 70 schedules by replaying
    every history. Histories recorded without the flag keep replaying the old way."""
    try:
        from temporalio.worker._workflow_instance import _WorkflowLogicFlag

        flag = _WorkflowLogicFlag.PROCESS_WORKFLOW_ACTIVATION_JOBS_AS_SINGLE_BATCH
        worker._set_default_workflow_logic_flag(flag, enabled=True)
    except (ImportError, AttributeError, RuntimeError) as exc:  # a newer or older SDK
        log.warning("could not turn on single-batch workflow activations: %s", exc)
        return False
    return True


DEFAULT_WORKFLOW_TASK_THREADS = 500
"""The SDK's own pool size when a worker sets no ``max_concurrent_workflow_tasks``."""


class InlineActivations(concurrent.futures.ThreadPoolExecutor):
    """A worker's workflow-task executor that runs activations of ``inline`` workflow classes
    (ours) on the worker's event loop, and every other workflow's in threads, as the SDK does.

    temporalio 1.35 hands each workflow activation to a thread of this pool and awaits it, so
    that it can report workflow code that does not yield within 2 s ("potential deadlock").
    The hand-over costs two thread switches and the GIL passed back and forth on every
    activation, and a cold call is several activations (its run's replay, the update, the
    flush timer and its local activity): without it a live worker spent 8-17% less CPU per
    cold call, and a cold call's median latency fell by about 4 ms (bench/RESULTS.md,
    "Scale", session 17).
    Our workflow code never blocks: no I/O (activities do that), no locks, no sleeps,
    bounded work per activation (a replay is many short activations, each handed over on
    its own, so the loop runs between them). What is lost for our workflows is the deadlock
    report, which such code cannot trigger; a bug that looped forever would stall the whole
    worker process instead of one workflow's thread. Other workflows on the same worker keep
    their threads and their deadlock detection.

    Each inline activation runs from ``loop.call_soon`` (not inside ``submit``): ``submit``
    is called while the SDK's own asyncio task is mid-step, and the activation steps the
    workflow's tasks on the workflow's own loop, which the SDK then unregisters as the running
    loop; so the main loop is registered again after each one (as the SDK's debug mode does).
    Its result comes back in an asyncio future, as in that debug mode (``submit`` returns it
    where a thread pool returns a ``concurrent.futures.Future``: ``loop.run_in_executor``,
    which is how the SDK calls it, accepts either). To opt out, give the worker an executor
    of your own (``workflow_task_executor=``)."""

    def __init__(self, inline: Collection[type], *, max_workers: int) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix="temporal_workflow_")
        self.inline = frozenset(inline)
        """The workflow classes whose activations run on the event loop."""

    def _runs_inline(self, fn: Callable[..., Any]) -> bool:
        # ``fn`` is the SDK's ``_RunningWorkflow.activate``; anything else, or an SDK whose
        # names moved, runs in a thread as before.
        instance = getattr(getattr(fn, "__self__", None), "instance", None)
        workflow_class = getattr(getattr(instance, "_defn", None), "cls", None)
        return workflow_class in self.inline

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or not self._runs_inline(fn):
            return super().submit(fn, *args, **kwargs)
        # An asyncio future, which ``loop.run_in_executor`` (how the SDK calls ``submit``) hands
        # back as it is: a ``concurrent.futures.Future`` would be chained to one, and its result
        # passed over with ``call_soon_threadsafe``, a write to the loop's self-pipe and a wake-up
        # of its selector on every activation, for a result already on the loop's thread.
        future: asyncio.Future[T] = loop.create_future()

        def run() -> None:
            if future.cancelled():
                return
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # handed to the awaiting SDK code, as a thread would
                future.set_exception(exc)
            finally:
                asyncio.events._set_running_loop(loop)

        loop.call_soon(run)
        return cast("concurrent.futures.Future[T]", future)

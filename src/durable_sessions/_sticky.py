"""Release the sticky queues of this host's workers that died without shutting down.

Private; the plugin runs it once before a worker starts polling.

Why: a worker that completes a workflow task asks the server to send that workflow's next task
to a queue of its own (its *sticky* queue, named ``<identity>-<uuid>``), where it still holds the
workflow in its cache. A worker stopped gracefully tells the server it has gone
(``ShutdownWorker``), and the next tasks go to the shared task queue. A worker killed (kill -9,
OOM, a crash, a container restarted at once) cannot: each of its sessions' next task then waits
on the dead queue for ``sticky_queue_schedule_to_start_timeout`` (3 s in our workers), and shows
in the session's history as a timed-out workflow task. After a crash-restart every session the
old worker served pays that once, all at the same moment.

The new worker cannot know the dead one's queue name (the SDK draws its uuid), but the sessions'
histories name it: a workflow task scheduled on a sticky queue records the queue. So before
polling, a worker reads the tail of the history of a few recently started sessions on its task
queue, and releases (``ShutdownWorker``) each sticky queue found there that is certainly dead:

* its identity is ``<pid>@<this host>`` and no process ``pid`` runs here; or
* its identity is this process's own (a container restarted keeps its host name and, often,
  pid 1), no worker of this process polls the task queue yet, and no task on it was started
  since this process started (a twin with our identity, e.g. containers given one host name,
  that is busy is left alone).

Queues of other hosts are left alone: nothing here can tell a dead one from a busy one, and the
server routes around a sticky queue nobody has polled for 10 s by itself. Everything here is
best effort: any failure (an old server without ``ShutdownWorker``, visibility that cannot filter
by task queue, a timeout) is logged and the worker starts as it would have.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import re
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, TaskQueueKind
from temporalio.api.workflowservice.v1 import (
    GetWorkflowExecutionHistoryReverseRequest,
    ShutdownWorkerRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

__all__ = [
    "StickyQueue",
    "dead_sticky_queues",
    "is_dead",
    "polling",
    "release_dead_sticky_queues",
]

log = logging.getLogger(__name__)

PROCESS_STARTED = time.time()
"""About when this process started (this module is imported as the worker starts): a sticky
queue of this process's own identity that no task was started from since belongs to an earlier
process."""
CLOCK_MARGIN = 0.5
"""Seconds of clock difference between this host and the Temporal server tolerated."""
SAMPLE = 20
"""Sessions whose history tails are read: one dead worker served most of them."""
TAIL_EVENTS = 12
"""Events read from the end of each history (a few workflow tasks)."""
TIMEOUT = 3.0
"""The whole sweep gives up after this many seconds (the worker then starts as usual)."""

_STICKY_NAME = re.compile(r"^(?P<identity>.+)-[0-9a-f]{32}$")
_IDENTITY = re.compile(r"^(?P<pid>\d+)@(?P<host>.+)$")


@dataclass(frozen=True)
class StickyQueue:
    """A sticky queue seen in a session's history, and when a worker last took a task from it."""

    name: str
    last_started: float
    """Unix time of the last workflow task started from it in the histories read (0 when the
    tails hold only tasks scheduled on it and never started)."""


_polling: collections.Counter[str] = collections.Counter()
"""Task queues that workers of this process poll (``polling``): a sticky queue of this
process's own identity may be one of theirs."""


@contextlib.contextmanager
def polling(task_queue: str) -> Iterator[None]:
    """Mark a worker of this process as polling ``task_queue`` while the block runs."""
    _polling[task_queue] += 1
    try:
        yield
    finally:
        _polling[task_queue] -= 1


def _pid_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def is_dead(
    queue: StickyQueue,
    identity: str,
    *,
    started: float = PROCESS_STARTED,
    polled_here: bool = False,
) -> bool:
    """Whether ``queue`` certainly belongs to a worker that is gone (see the module docstring);
    ``identity`` is this worker's, ``polled_here`` whether a worker of this process already
    polls the task queue."""
    match = _STICKY_NAME.match(queue.name)
    own = _IDENTITY.match(identity)
    if match is None or own is None:
        return False  # a custom identity: nothing to compare
    theirs = _IDENTITY.match(match["identity"])
    if theirs is None or theirs["host"] != own["host"]:
        return False  # another host's worker: cannot tell dead from busy
    if match["identity"] == identity:  # an earlier process with our identity, or a twin
        return not polled_here and queue.last_started < started - CLOCK_MARGIN
    return int(theirs["pid"]) != os.getpid() and not _pid_runs(int(theirs["pid"]))


async def _tail_sticky_queues(
    client: Client, workflow_id: str, run_id: str | None
) -> list[StickyQueue]:
    response = await client.workflow_service.get_workflow_execution_history_reverse(
        GetWorkflowExecutionHistoryReverseRequest(
            namespace=client.namespace,
            execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id or ""),
            maximum_page_size=TAIL_EVENTS,
        )
    )
    sticky: dict[int, str] = {}  # scheduled event id -> sticky queue
    started: dict[int, float] = {}  # scheduled event id -> when its task was started
    for event in response.history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            queue = event.workflow_task_scheduled_event_attributes.task_queue
            if queue.kind == TaskQueueKind.TASK_QUEUE_KIND_STICKY:
                sticky[event.event_id] = queue.name
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            scheduled = event.workflow_task_started_event_attributes.scheduled_event_id
            started[scheduled] = event.event_time.seconds + event.event_time.nanos / 1e9
    last: dict[str, float] = {}
    for scheduled, name in sticky.items():
        last[name] = max(last.get(name, 0.0), started.get(scheduled, 0.0))
    return [StickyQueue(name, when) for name, when in last.items()]


async def dead_sticky_queues(client: Client, task_queue: str, identity: str) -> list[str]:
    """Names of the dead sticky queues found in the history tails of up to ``SAMPLE`` recently
    started running workflows on ``task_queue``."""
    escaped = task_queue.replace("\\", "\\\\").replace("'", "\\'")
    query = f"TaskQueue = '{escaped}' AND ExecutionStatus = 'Running'"
    workflows = client.list_workflows(query, limit=SAMPLE, page_size=SAMPLE)
    runs = [(w.id, w.run_id) async for w in workflows]
    tails = await asyncio.gather(
        *(_tail_sticky_queues(client, wid, rid) for wid, rid in runs), return_exceptions=True
    )
    last_started: dict[str, float] = {}
    for tail in tails:
        if isinstance(tail, BaseException):
            continue  # a run that just ended, say: the others are enough
        for queue in tail:
            last_started[queue.name] = max(last_started.get(queue.name, 0.0), queue.last_started)
    polled_here = _polling[task_queue] > 0
    return sorted(
        name
        for name, when in last_started.items()
        if is_dead(StickyQueue(name, when), identity, polled_here=polled_here)
    )


async def _sweep(client: Client, task_queue: str, identity: str) -> list[str]:
    try:
        async with asyncio.timeout(TIMEOUT):
            dead = await dead_sticky_queues(client, task_queue, identity)
            for name in dead:
                await client.workflow_service.shutdown_worker(
                    ShutdownWorkerRequest(
                        namespace=client.namespace,
                        sticky_task_queue=name,
                        identity=identity,
                        reason="durable-sessions: its worker stopped without shutting down",
                    )
                )
                log.info(
                    "released sticky queue %s of a worker that stopped without shutting down: "
                    "its sessions' next tasks go to task queue %r at once",
                    name,
                    task_queue,
                )
            return dead
    except Exception as exc:  # best effort: the worker starts as it would have
        unimplemented = isinstance(exc, RPCError) and exc.status == RPCStatusCode.UNIMPLEMENTED
        log.log(
            logging.DEBUG if unimplemented else logging.INFO,  # e.g. the time-skipping server
            "could not look for dead workers' sticky queues (%s: %s)",
            type(exc).__name__,
            exc,
        )
        return []


_sweeps: weakref.WeakKeyDictionary[Client, dict[str, asyncio.Future[list[str]]]] = (
    weakref.WeakKeyDictionary()
)


async def release_dead_sticky_queues(
    client: Client, task_queue: str, identity: str | None = None
) -> list[str]:
    """Release this host's dead workers' sticky queues for ``task_queue`` (see the module
    docstring); returns their names. Runs once per client and task queue: later calls (a worker
    of the same client started again) share the first one's result."""
    me = identity or client.identity
    per_client = _sweeps.setdefault(client, {})
    sweep = per_client.get(task_queue)
    if sweep is None or sweep.get_loop() is not asyncio.get_running_loop():
        sweep = per_client[task_queue] = asyncio.ensure_future(_sweep(client, task_queue, me))
    return await asyncio.shield(sweep)

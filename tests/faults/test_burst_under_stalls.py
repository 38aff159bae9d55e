"""Bursts on one session while its worker is starved: the worker process is frozen (SIGSTOP)
for 2.1-2.8 s again and again, past the 2 s workflow task timeout, while 100 ``add_turn``
calls from four clients (more than the server's 10 updates in flight) arrive.

A frozen worker wakes up to finish tasks the server has already given up on ("Task not found
when completing"; a burst alone brings such tasks too, as the server aborts updates): their
local-activity flushes may have written turns at the seqs that task gave them, and the
retried task may give those seqs to other turns (a run of the same task too, fenced alike:
``PersistBatch.fence_tiebreak``). Every call must still be acknowledged once, and the store
must hold exactly the acknowledged turns at their seqs (no turn twice, none missing): the write
fences and the stray cleanup at work under overload. The test checks that workflow tasks did
time out, so it cannot pass without exercising them.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from durable_sessions.client import SessionManager
from durable_sessions.models import SessionConfig, SessionTurn
from durable_sessions.stores.base import read_transcript
from tests.helpers import assert_eventually
from tests.processes import PgWorker

pytestmark = pytest.mark.slow

CALLS = 100
CLIENTS = 4
BURSTS = 3


async def _freezer(pid: int, stop: asyncio.Event, rng: random.Random) -> int:
    """Freeze the worker, again and again, each time past the task timeout, until ``stop``;
    how many times."""
    frozen = 0
    await asyncio.sleep(rng.uniform(0.02, 0.2))
    while not stop.is_set():
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(rng.uniform(2.1, 2.8))
        finally:
            os.kill(pid, signal.SIGCONT)
        frozen += 1
        await asyncio.sleep(rng.uniform(0.05, 0.6))
    return frozen


async def _burst(managers: list[SessionManager], pg_worker: PgWorker, seed: int) -> str:
    """One burst on a new session while the worker is frozen again and again; its id."""
    session_id = (await managers[0].create("starved")).session_id
    turns = [SessionTurn(role="user", content=f"turn {i}") for i in range(CALLS)]
    proc = pg_worker.worker.proc
    assert proc is not None
    stop = asyncio.Event()
    freezer = asyncio.create_task(_freezer(proc.pid, stop, random.Random(seed)))
    try:
        stored = await asyncio.gather(
            *(managers[i % CLIENTS].add_turn(session_id, t) for i, t in enumerate(turns))
        )
    finally:
        stop.set()
        frozen = await freezer
    assert frozen > 0

    assert [s.turn_id for s in stored] == [t.turn_id for t in turns]
    assert sorted(s.seq for s in stored if s.seq is not None) == list(range(CALLS))
    expected = sorted((s.seq, s.turn_id) for s in stored)

    history = [(t.seq, t.turn_id) for t in await managers[0].history(session_id)]
    if history != expected and os.environ.get("BURST_DIAG"):
        await _diagnose(managers[0], pg_worker, session_id, expected, history)
    assert history == expected

    async def flushed() -> None:
        rows = await read_transcript(pg_worker.store, session_id)
        assert [(t.seq, t.turn_id) for t in rows] == expected

    await assert_eventually(flushed, timeout=20)
    return session_id


async def _diagnose(
    manager: SessionManager,
    pg_worker: PgWorker,
    session_id: str,
    expected: object,
    history: object,
) -> None:
    """Keep what explains a failed burst under ``$BURST_DIAG/<session id>``: the run's
    history, the stored rows, what ``history`` read and what was acknowledged, the worker log."""
    out = Path(os.environ["BURST_DIAG"]) / session_id
    out.mkdir(parents=True, exist_ok=True)
    handle = manager.client.get_workflow_handle(session_id)
    hist = await handle.fetch_history()
    (out / "history.json").write_text(hist.to_json())
    rows = await read_transcript(pg_worker.store, session_id)
    (out / "rows.json").write_text(json.dumps([(t.seq, t.turn_id) for t in rows]))
    (out / "expected.json").write_text(json.dumps(expected))
    (out / "history-read.json").write_text(json.dumps(history))
    log = pg_worker.worker.log_dir / f"worker-{pg_worker.worker.starts}.log"
    (out / "worker.log").write_bytes(log.read_bytes())
    print("DIAG", out)


async def test_bursts_on_a_starved_worker_store_each_turn_once(
    temporal_env: WorkflowEnvironment, pg_worker: PgWorker, task_queue: str
) -> None:
    target = temporal_env.client.service_client.config.target_host
    clients = [
        await Client.connect(target, data_converter=temporal_env.client.data_converter)
        for _ in range(CLIENTS)
    ]
    managers = [
        SessionManager(
            c, pg_worker.store, SessionConfig(flush_interval=0.2), task_queue, call_timeout=30
        )
        for c in clients
    ]
    timeouts = 0
    for seed in range(BURSTS):
        session_id = await _burst(managers, pg_worker, seed)
        handle = temporal_env.client.get_workflow_handle(session_id)
        events = [e.event_type async for e in handle.fetch_history_events()]
        timeouts += events.count(EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT)
    print(f"{BURSTS} bursts: {timeouts} workflow task timeouts")
    assert timeouts > 0, "no workflow task timed out: the test did not starve the worker"

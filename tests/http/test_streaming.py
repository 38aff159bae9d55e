"""Streamed agent turns: chunks reach an SSE client as the agent yields them, never go into
workflow history one by one, and survive a worker killed mid-stream (restart event, whole turn
stored once)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from durable_sessions.client import SessionManager
from durable_sessions.group import GroupSession
from durable_sessions.http import create_app
from durable_sessions.models import SessionConfig
from durable_sessions.stores.postgres import PostgresSessionStore
from durable_sessions.streaming import SessionEvent
from durable_sessions.worker import create_worker
from tests.http.conftest import API_KEYS, FAST_EVENTS, KEY_A, auth, serve
from tests.http.streaming_agents import ChunkAgent, PlainAgent
from tests.integration.conftest import Stack
from tests.processes import WorkerProcess

FIRST_CHUNK_BUDGET = 0.3


@dataclass
class SseLog:
    events: list[tuple[str, dict[str, Any], float]] = field(default_factory=list)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [d for k, d, _ in self.events if k == kind]


async def read_sse(url: str, path: str, log: SseLog, stop: asyncio.Event) -> None:
    async with (
        httpx.AsyncClient(base_url=url, headers=auth(KEY_A), timeout=30) as http,
        http.stream("GET", path) as r,
    ):
        assert r.status_code == 200
        kind, data = "", ""
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and kind:
                log.events.append((kind, json.loads(data), time.time()))
                kind, data = "", ""
            if stop.is_set():
                return


async def wait_for(check: Callable[[], bool], timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


TYPES: list[list[str]] = []
NOISE = ("EVENT_TYPE_WORKFLOW_TASK_", "EVENT_TYPE_TIMER_", "EVENT_TYPE_MARKER_RECORDED")


async def history_length(client: Client, session_id: str) -> int:
    history = await client.get_workflow_handle(session_id).fetch_history()
    TYPES.append([EventType.Name(e.event_type) for e in history.events])
    return len(history.events)


async def test_streamed_turn_reaches_sse_client_live_and_history_stays_flat(
    stack: Stack, task_queue: str
) -> None:
    tq = f"{task_queue}-stream"
    streamer, plain = ChunkAgent("streamer", chunks=50, delay=0.02), PlainAgent()
    manager = SessionManager(stack.client, stack.store, SessionConfig(flush_interval=0.2), tq)
    app = create_app(manager, API_KEYS, events=FAST_EVENTS)
    worker = create_worker(stack.client, stack.store, task_queue=tq, agents=[plain, streamer])  # type: ignore[arg-type]
    async with worker, serve(app) as url:
        group = await GroupSession.create(manager, "alice")
        await group.add_agent("plain")
        await group.add_agent("streamer")
        log, stop = SseLog(), asyncio.Event()
        reader = asyncio.create_task(
            read_sse(url, f"/sessions/{group.session_id}/events", log, stop)
        )
        await wait_for(lambda: bool(log.of("status")))

        before = await history_length(stack.client, group.session_id)
        await group.tick()  # plain
        after_plain = await history_length(stack.client, group.session_id)
        turn = await group.tick()  # streamer: 50 chunks
        after_stream = await history_length(stack.client, group.session_id)
        for _ in range(200):
            if any(t["turn_id"] == turn.turn_id for t in log.of("turn")):
                break
            await asyncio.sleep(0.05)
        stop.set()
        reader.cancel()
        stored = [t for t in await manager.history(group.session_id) if t.agent == "streamer"]

    deltas = log.of("delta")
    assert deltas, log.events
    received = {d["index"]: t for k, d, t in log.events if k == "delta"}
    first_yield = min(t for i, t in streamer.yielded if i == 0)
    first_latency = received[0] - first_yield
    text = "".join(d["text"] for d in sorted(deltas, key=lambda d: d["index"]))
    assert text == streamer.full_text() == turn.content
    assert sum(d["chunks"] for d in deltas) == 50
    assert len(log.of("done")) == 1 and not log.of("restart")
    assert len({d["turn_id"] for d in deltas}) == 1
    # Latency of every batch against the agent's own yield time of its last chunk.
    lat = sorted(t - d["at"] for k, d, t in log.events if k == "delta")
    assert len(stored) == 1 and stored[0].content == streamer.full_text()
    plain_growth, stream_growth = after_plain - before, after_stream - after_plain
    print(
        f"\nstreaming: first chunk {first_latency * 1000:.1f} ms after the agent yielded it; "
        f"{len(deltas)} delta events for 50 chunks; chunk latency p50 "
        f"{lat[len(lat) // 2] * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms; history growth: "
        f"plain turn {plain_growth} events, streamed 50-chunk turn {stream_growth} events"
    )
    assert first_latency <= FIRST_CHUNK_BUDGET
    # No event per chunk (or per batch): the activity, update and signal events of a streamed
    # turn are those of a plain one; only workflow tasks and timers vary with wall time.
    plain_kinds, stream_kinds = (
        Counter(t for t in types if not t.startswith(NOISE))
        for types in (TYPES[1][len(TYPES[0]) :], TYPES[2][len(TYPES[1]) :])
    )
    assert stream_kinds == plain_kinds
    assert stream_kinds["EVENT_TYPE_ACTIVITY_TASK_COMPLETED"] == 1


async def _collect(events: AsyncIterator[SessionEvent], out: list[SessionEvent]) -> None:
    async for event in events:
        out.append(event)


@pytest.mark.slow
async def test_worker_killed_mid_stream_restarts_the_turn_and_stores_it_once(
    temporal_env: WorkflowEnvironment,
    pg_url: tuple[str, str],
    task_queue: str,
    tmp_path: Path,
) -> None:
    dsn, schema = pg_url
    store = PostgresSessionStore(dsn, schema=schema)
    await store.setup()
    worker = WorkerProcess(
        temporal_env,
        task_queue,
        f"{dsn}?schema={schema}",
        tmp_path,
        agents="tests.http.streaming_agents:agents",
    )
    worker.environ |= {"STREAM_TEST_CHUNKS": "50", "STREAM_TEST_DELAY": "0.04"}
    expected = ChunkAgent(chunks=50).full_text()
    manager = SessionManager(
        temporal_env.client, store, SessionConfig(flush_interval=0.2), task_queue
    )
    worker.start()
    events: list[SessionEvent] = []
    try:
        # The attempt on the killed worker times out after agent_timeout; then it is retried.
        group = await GroupSession.create(manager, "u", agent_timeout=4.0)
        await group.add_agent("streamer")
        watcher = asyncio.create_task(
            _collect(manager.stream(group.session_id, poll_interval=0.1), events)
        )
        await wait_for(lambda: any(e.kind == "status" for e in events))
        tick = asyncio.create_task(group.tick())
        await wait_for(
            lambda: sum(e.data.get("chunks", 0) for e in events if e.kind == "delta") >= 10
        )
        worker.kill9()
        worker.start()
        turn = await asyncio.wait_for(tick, 60)
        for _ in range(100):
            if any(e.kind == "turn" and e.data["turn_id"] == turn.turn_id for e in events):
                break
            await asyncio.sleep(0.05)
        watcher.cancel()
        stored = [t for t in await manager.history(group.session_id) if t.agent == "streamer"]
    finally:
        worker.stop()
    assert turn.content == expected
    assert [t.content for t in stored] == [expected]
    restarts = [e for e in events if e.kind == "restart"]
    assert len(restarts) == 1 and restarts[0].data["attempt"] == 2, [e.kind for e in events]
    at = events.index(restarts[0])
    first = [e for e in events[:at] if e.kind == "delta"]
    again = [e for e in events[at:] if e.kind == "delta"]
    assert first and {e.data["turn_id"] for e in first + again} == {restarts[0].data["turn_id"]}
    assert all(e.data["attempt"] == 1 for e in first)
    assert "".join(e.data["text"] for e in again) == expected
    await store.close()

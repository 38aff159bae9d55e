"""Streamed agent turns: time to first chunk and chunk latency, against the activity's own times.

A worker runs a streaming agent (``tests.http.streaming_agents.ChunkAgent``: 50 chunks, 20 ms
apart) in a group session on PostgreSQL; each chunk's yield time (``time.time()`` in the agent,
carried in the event as ``at``) is compared with when a subscriber receives it, through
``SessionManager.stream`` (PostgreSQL NOTIFY side channel) and through HTTP SSE
(``GET /sessions/{id}/events`` on a real server). The worker and the subscribers share this
process, so both times come from one clock. Also reported: workflow history events per streamed
turn against a plain (non-streaming) turn.

Goals (issue "streamed agent turns"): the first chunk reaches an SSE client within 300 ms of the
agent yielding it; a streamed turn adds no history event per chunk. Run:
``python -m bench.bench_streaming``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import httpx
from tests.http.conftest import serve
from tests.http.streaming_agents import ChunkAgent, PlainAgent

from bench.common import (
    finish,
    fresh_schema,
    log,
    md_table,
    percentile,
    postgres_dsn,
    run_main,
    start_dev_server,
)
from durable_sessions.client import SessionManager
from durable_sessions.group import GroupSession
from durable_sessions.http import EventStreamOptions, create_app
from durable_sessions.models import SessionConfig
from durable_sessions.stores.postgres import PostgresSessionStore
from durable_sessions.worker import create_worker

TURNS = 5
CHUNKS = 50
DELAY = 0.02
FIRST_CHUNK_GOAL = 0.300
KEY = "bench-key-0123456789"
NOISE = ("EVENT_TYPE_WORKFLOW_TASK_", "EVENT_TYPE_TIMER_", "EVENT_TYPE_MARKER_RECORDED")


async def sse(url: str, path: str, out: list[tuple[dict[str, Any], float]]) -> None:
    async with (
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEY}"}) as http,
        http.stream("GET", path, timeout=None) as r,
    ):
        kind = ""
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind == "delta":
                out.append((json.loads(line[6:]), time.time()))


async def api_stream(
    manager: SessionManager, sid: str, out: list[tuple[dict[str, Any], float]]
) -> None:
    async for event in manager.stream(sid):
        if event.kind == "delta":
            out.append((event.data, time.time()))


async def event_kinds(manager: SessionManager, sid: str) -> list[str]:
    from temporalio.api.enums.v1 import EventType

    history = await manager.client.get_workflow_handle(sid).fetch_history()
    return [EventType.Name(e.event_type) for e in history.events]


def latencies(
    received: list[tuple[dict[str, Any], float]], yielded: dict[int, float]
) -> tuple[list[float], list[float]]:
    """(first-chunk latency per turn, every chunk's latency), in seconds."""
    first: dict[str, float] = {}
    every: list[float] = []
    for data, at in received:
        for i in range(data["index"], data["index"] + data["chunks"]):
            every.append(at - yielded[i])
        if data["index"] == 0:
            first[data["turn_id"]] = at - yielded[0]
    return list(first.values()), every


async def main() -> int:
    started = time.perf_counter()
    dsn = await postgres_dsn()
    env = await start_dev_server()
    try:
        async with fresh_schema(dsn, "bench_stream") as schema:
            store = PostgresSessionStore(dsn, schema=schema)
            await store.setup()
            try:
                return await run(env.client, store, started)
            finally:
                await store.close()
    finally:
        await env.shutdown()


async def run(client: Any, store: PostgresSessionStore, started: float) -> int:
    agent, plain = ChunkAgent("streamer", CHUNKS, DELAY), PlainAgent()
    manager = SessionManager(client, store, SessionConfig(flush_interval=0.2), "bench-stream")
    app = create_app(
        manager, {KEY: "bench"}, events=EventStreamOptions(poll_interval=0.25, retry_ms=100)
    )
    worker = create_worker(client, store, task_queue="bench-stream", agents=[plain, agent])  # type: ignore[arg-type]
    via_sse: list[tuple[dict[str, Any], float]] = []
    via_api: list[tuple[dict[str, Any], float]] = []
    yielded_per_turn: list[dict[int, float]] = []
    growth: list[tuple[int, int, bool]] = []
    async with worker, serve(app) as url:
        group = await GroupSession.create(manager, "bench")
        await group.add_agent("plain")
        await group.add_agent("streamer")
        sid = group.session_id
        readers = [
            asyncio.create_task(sse(url, f"/sessions/{sid}/events", via_sse)),
            asyncio.create_task(api_stream(manager, sid, via_api)),
        ]
        await asyncio.sleep(1.0)  # both subscribed
        for n in range(TURNS):
            log(f"turn {n + 1}/{TURNS}")
            kinds0 = await event_kinds(manager, sid)
            await group.tick()  # plain
            kinds1 = await event_kinds(manager, sid)
            agent.yielded.clear()
            await group.tick()  # streamed
            kinds2 = await event_kinds(manager, sid)
            yielded_per_turn.append(dict(agent.yielded))
            plain_kinds = Counter(k for k in kinds1[len(kinds0) :] if not k.startswith(NOISE))
            stream_kinds = Counter(k for k in kinds2[len(kinds1) :] if not k.startswith(NOISE))
            growth.append(
                (len(kinds1) - len(kinds0), len(kinds2) - len(kinds1), plain_kinds == stream_kinds)
            )
        await asyncio.sleep(0.5)
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)

    def split(received: list[tuple[dict[str, Any], float]]) -> tuple[list[float], list[float]]:
        by_turn: dict[str, list[tuple[dict[str, Any], float]]] = {}
        for data, at in received:
            by_turn.setdefault(data["turn_id"], []).append((data, at))
        firsts: list[float] = []
        every: list[float] = []
        for (_, items), yielded in zip(
            sorted(by_turn.items(), key=lambda kv: kv[1][0][1]), yielded_per_turn, strict=False
        ):
            f, e = latencies(items, yielded)
            firsts += f
            every += e
        return firsts, every

    rows = []
    checks: list[tuple[bool, str]] = []
    for name, received in (("HTTP SSE", via_sse), ("manager.stream", via_api)):
        firsts, every = split(received)
        events = len(received)
        rows.append(
            [
                name,
                f"{percentile(firsts, 50) * 1000:.1f}",
                f"{max(firsts) * 1000:.1f}",
                f"{percentile(every, 50) * 1000:.1f}",
                f"{percentile(every, 99) * 1000:.1f}",
                f"{events / TURNS:.1f}",
            ]
        )
        if name == "HTTP SSE":
            checks.append(
                (
                    len(firsts) == TURNS and max(firsts) <= FIRST_CHUNK_GOAL,
                    f"first chunk at the SSE client within {FIRST_CHUNK_GOAL * 1000:.0f} ms of "
                    f"the agent yielding it (worst of {TURNS}: {max(firsts) * 1000:.1f} ms)",
                )
            )
    plain_mean = sum(g[0] for g in growth) / len(growth)
    stream_mean = sum(g[1] for g in growth) / len(growth)
    checks.append(
        (
            all(g[2] for g in growth),
            "a streamed turn adds no history event per chunk: its activity, update and signal "
            "events are those of a plain turn (workflow tasks and timers vary with wall time)",
        )
    )
    out = [
        "## Streamed agent turns (`bench_streaming`)",
        "",
        f"{TURNS} streamed turns of {CHUNKS} chunks, {DELAY * 1000:.0f} ms apart; latency = "
        "received time minus the agent's own yield time of that chunk (one process, one clock). "
        "Side channel: PostgreSQL NOTIFY.",
        "",
        md_table(
            [
                "subscriber",
                "first chunk p50 (ms)",
                "first chunk max (ms)",
                "chunk p50 (ms)",
                "chunk p99 (ms)",
                "delta events / turn",
            ],
            rows,
            "lrrrrr",
        ),
        "",
        f"History events per turn (mean of {TURNS}): plain turn {plain_mean:.1f}, streamed "
        f"{CHUNKS}-chunk turn {stream_mean:.1f}.",
        "",
    ]
    return finish(out, checks, started)


if __name__ == "__main__":
    run_main(main)

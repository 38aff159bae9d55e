"""Benchmark the framework adapters where frameworks are chatty (issue 17).

Run ``python -m bench.bench_adapters`` from the repository root. Progress goes to stderr, a
Markdown section to stdout; the exit status is 1 when a goal is missed:

* one ``add_items`` of 200 items takes <= 10x one ``add_items`` of 1 item;
* 200 sequential single-item ``add_items`` calls: per-call p50 <= 1.5x a bare
  ``SessionManager.add_turn`` of the same turn;
* ``get_items(limit=20)`` on a 10,000-item session: p50 <= 5 ms.

``DurableAgentsSession`` (OpenAI Agents SDK) on a ``PostgresSessionStore`` in a fresh schema, a
worker from ``create_worker`` in this process, one dev server. Items are the SDK's kinds in
turn (user message, reasoning, function call, function output, assistant message) of ~300 B of
text. Each figure is a median over rounds (fresh sessions each round, after a warm-up call);
the SDK's own ``SQLiteSession`` (in memory) runs the same calls for information.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from agents import SQLiteSession

from bench.common import (
    TextGenerator,
    finish,
    log,
    md_table,
    median,
    percentile,
    postgres_dsn,
    postgres_store,
    run_main,
    spread,
    start_dev_server,
)
from durable_sessions.adapters.openai_agents import DurableAgentsSession, item_to_turn
from durable_sessions.client import SessionManager
from durable_sessions.models import SessionConfig
from durable_sessions.stores.base import SessionStore
from durable_sessions.worker import create_worker

ROUNDS = 5
BATCH = 200
SINGLE_CALLS = 200
BIG_SESSION = 10_000
READS = 300
TEXT_BYTES = 300
SEED = 17

GOAL_BATCH_RATIO = 10.0
GOAL_SINGLE_RATIO = 1.5
GOAL_READ_MS = 5.0


def make_items(texts: TextGenerator, n: int, start: int = 0) -> list[Any]:
    """``n`` SDK items cycling through the kinds an agent run writes."""
    items: list[Any] = []
    for i in range(start, start + n):
        text = texts.text(TEXT_BYTES)
        kind = i % 5
        if kind == 0:
            items.append({"role": "user", "content": text})
        elif kind == 1:
            summary = [{"type": "summary_text", "text": text}]
            items.append({"type": "reasoning", "id": f"rs_{i}", "summary": summary})
        elif kind == 2:
            query = text[:80].replace('"', "")
            items.append(
                {
                    "type": "function_call",
                    "id": f"fc_{i}",
                    "call_id": f"call_{i}",
                    "name": "lookup",
                    "arguments": f'{{"query": "{query}"}}',
                    "status": "completed",
                }
            )
        elif kind == 3:
            items.append(
                {"type": "function_call_output", "call_id": f"call_{i - 1}", "output": text}
            )
        else:
            content = [{"type": "output_text", "text": text, "annotations": []}]
            items.append(
                {
                    "id": f"msg_{i}",
                    "type": "message",
                    "role": "assistant",
                    "status": "completed",
                    "content": content,
                }
            )
    return items


async def timed_ms(call: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await call()
    return (time.perf_counter() - start) * 1000


class Memory(Protocol):
    async def add_items(self, items: list[Any]) -> None: ...

    async def get_items(self, limit: int | None = None) -> list[Any]: ...


async def one_and_batch(session: Memory, texts: TextGenerator) -> tuple[float, float]:
    """Milliseconds of one add_items of 1 item, then of one of BATCH items."""
    await session.add_items(make_items(texts, 1))  # warm-up
    one = make_items(texts, 1)
    one_ms = await timed_ms(lambda: session.add_items(one))
    items = make_items(texts, BATCH)
    return one_ms, await timed_ms(lambda: session.add_items(items))


async def singles(
    session: Memory, texts: TextGenerator, bare: Callable[[Any], Awaitable[object]] | None
) -> tuple[list[float], list[float]]:
    """Per-call ms of SINGLE_CALLS add_items([item]), interleaved with as many bare calls."""
    await session.add_items(make_items(texts, 1))
    if bare is not None:
        await bare(make_items(texts, 1)[0])
    ours: list[float] = []
    theirs: list[float] = []
    for item, other in zip(
        make_items(texts, SINGLE_CALLS), make_items(texts, SINGLE_CALLS), strict=True
    ):
        ours.append(await timed_ms(lambda item=item: session.add_items([item])))
        if bare is not None:
            theirs.append(await timed_ms(lambda other=other: bare(other)))
    return ours, theirs


async def settled(store: SessionStore, session_id: str, turns: int) -> float:
    """Seconds until the store holds the session's ``turns`` turns (its flushes landed)."""
    started = time.perf_counter()
    while True:
        header = await store.get_session(session_id)
        if header is not None and header.turn_count >= turns:
            return time.perf_counter() - started
        await asyncio.sleep(0.05)


async def reads(session: Memory, n: int, limit: int) -> list[float]:
    return [await timed_ms(lambda: session.get_items(limit=limit)) for _ in range(n)]


async def main() -> int:
    started = time.perf_counter()
    dsn = await postgres_dsn()
    log("starting the Temporal dev server ...")
    env = await start_dev_server()
    client = env.client
    texts = TextGenerator(SEED)
    one_ms: list[float] = []
    batch_ms: list[float] = []
    single_p50: list[float] = []
    bare_p50: list[float] = []
    single_all: list[float] = []
    sqlite: dict[str, list[float]] = {"one": [], "batch": [], "single": []}
    try:
        async with postgres_store(dsn, "bench_adapters") as store:
            tq = f"bench-adapters-{uuid.uuid4().hex[:8]}"
            manager = SessionManager(client, store, SessionConfig(), tq, call_timeout=60)
            async with create_worker(client, store, task_queue=tq):
                for r in range(ROUNDS):
                    log(f"round {r + 1}/{ROUNDS}: add_items of 1 and of {BATCH} items ...")
                    session = await DurableAgentsSession.create(manager, "bench")
                    one, batch = await one_and_batch(session, texts)
                    one_ms.append(one)
                    batch_ms.append(batch)
                    log(f"  1 item {one:.1f} ms, {BATCH} items {batch:.1f} ms")

                    log(f"round {r + 1}/{ROUNDS}: {SINGLE_CALLS} single-item calls ...")
                    ours = await DurableAgentsSession.create(manager, "bench")
                    bare_id = (await manager.create("bench")).session_id

                    async def bare(item: Any, bare_id: str = bare_id) -> object:
                        return await manager.add_turn(bare_id, item_to_turn(item))

                    a, b = await singles(ours, texts, bare)
                    single_p50.append(median(a))
                    bare_p50.append(median(b))
                    single_all += a
                    log(f"  add_items([item]) p50 {median(a):.2f} ms, add_turn {median(b):.2f} ms")

                    lite = SQLiteSession(f"bench-{r}")
                    one, batch = await one_and_batch(lite, texts)
                    sqlite["one"].append(one)
                    sqlite["batch"].append(batch)
                    sqlite["single"].append(median((await singles(lite, texts, None))[0]))
                    lite.close()

                log(f"filling a {BIG_SESSION:,}-item session ...")
                big = await DurableAgentsSession.create(manager, "bench")
                big_lite = SQLiteSession("bench-big")
                for start in range(0, BIG_SESSION, BATCH):
                    chunk = make_items(texts, BATCH, start)
                    await big.add_items(chunk)
                    await big_lite.add_items(chunk)
                assert (await big.state()).turn_count == BIG_SESSION
                # Settled, as a conversation is when its next run reads it: the last write's
                # flush has landed (reads meanwhile wait behind that flush's workflow task).
                settle_s = await settled(store, big.session_id, BIG_SESSION)
                log(f"  flushed {settle_s:.1f} s after the last add_items")
                await reads(big, 10, 20)  # warm-up
                log(f"{READS} get_items(limit=20) ...")
                read_ms = await reads(big, READS, 20)
                lite_read_ms = await reads(big_lite, READS, 20)
                # For information: a limit past the recent window reads the store.
                store_read_ms = await reads(big, 50, 50)
                assert len(await big.get_items(limit=20)) == 20
                big_lite.close()
    finally:
        await env.shutdown()

    batch_ratio = median(batch_ms) / median(one_ms)
    single_ratio = median(single_p50) / median(bare_p50)
    read_p50 = median(read_ms)
    rows = [
        [
            "one `add_items` of 1 item (ms)",
            spread(one_ms),
            spread(sqlite["one"], "{:.2f}"),
        ],
        [
            f"one `add_items` of {BATCH} items (ms)",
            spread(batch_ms),
            spread(sqlite["batch"], "{:.2f}"),
        ],
        [f"ratio {BATCH} / 1", f"{batch_ratio:.1f}x", ""],
        [
            f"{SINGLE_CALLS} x `add_items([item])`: per-call p50 (ms)",
            spread(single_p50, "{:.2f}"),
            spread(sqlite["single"], "{:.2f}"),
        ],
        [
            "same calls: per-call p99 (ms, all rounds)",
            f"{percentile(single_all, 99):.2f}",
            "",
        ],
        [
            "bare `SessionManager.add_turn`: per-call p50 (ms)",
            spread(bare_p50, "{:.2f}"),
            "",
        ],
        ["ratio `add_items([item])` / `add_turn` (p50)", f"{single_ratio:.2f}x", ""],
        [
            f"`get_items(limit=20)` on {BIG_SESSION:,} items: p50 / p99 (ms)",
            f"{read_p50:.2f} / {percentile(read_ms, 99):.2f}",
            f"{median(lite_read_ms):.2f} / {percentile(lite_read_ms, 99):.2f}",
        ],
        [
            "`get_items(limit=50)` (past the recent window: store): p50 (ms)",
            f"{median(store_read_ms):.2f}",
            "",
        ],
    ]
    out = [
        "## Framework adapters (OpenAI Agents SDK session)",
        "",
        f"`DurableAgentsSession` on `PostgresSessionStore`, worker in process, {ROUNDS} rounds "
        f"(fresh sessions each); items cycle through user message, reasoning, function call, "
        f"function output and assistant message, ~{TEXT_BYTES} B of text each. `add_items` sends "
        "one `add_turns` update; `get_items(limit=n)` reads the workflow's recent window when it "
        "holds the last n turns (the `recent_window` query; `state` then `recent_turns` on "
        "workers without it). The SDK's `SQLiteSession` (in memory) for "
        "information. Figures: median over rounds (min-max).",
        "",
        md_table(["", "DurableAgentsSession", "SQLiteSession"], rows, "lrr"),
        "",
    ]
    checks = [
        (
            batch_ratio <= GOAL_BATCH_RATIO,
            f"one add_items of {BATCH} items <= {GOAL_BATCH_RATIO:g}x one of 1 item "
            f"({batch_ratio:.1f}x)",
        ),
        (
            single_ratio <= GOAL_SINGLE_RATIO,
            f"single-item add_items p50 <= {GOAL_SINGLE_RATIO:g}x a bare add_turn "
            f"({single_ratio:.2f}x)",
        ),
        (
            read_p50 <= GOAL_READ_MS,
            f"get_items(limit=20) on {BIG_SESSION:,} items p50 <= {GOAL_READ_MS:g} ms "
            f"({read_p50:.2f} ms)",
        ),
    ]
    return finish(out, checks, started)


if __name__ == "__main__":
    run_main(main)

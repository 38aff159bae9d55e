"""Benchmark checkpoints and storage: checkpoint latency early and late in a long session, and
bytes PostgreSQL stores per turn against the raw turn text.

Run ``python -m bench.bench_checkpoints`` from the repository root. Progress goes to stderr, a
Markdown section to stdout; the exit status is 1 when a goal is missed:

* ``SessionManager.checkpoint`` at turn 10,000 takes <= 1.5x as long as at turn 10 (medians of
  20 sequential checkpoints each);
* bytes stored per ~2 KB turn <= 1.5x the raw turn text.

One session (default ``SessionConfig``, ``PostgresSessionStore`` in a fresh schema) is driven
to 10,000 turns of ~2 KB through ``SessionManager.add_turn`` with 8 calls in flight; it
continues-as-new along the way as it is designed to. Storage is measured twice: on that
session's schema (everything the worker wrote: turns, header, auto checkpoints every 10 turns,
the manual checkpoints), and on a store-only run that calls ``PostgresSessionStore.persist``
directly with batches of 50 turns plus an auto checkpoint every 10 turns, for ~2 KB and ~500 B
turns. Text is seeded prose from an 8,000-word vocabulary (see ``TextGenerator``): it
compresses less than English does, so PostgreSQL's TOAST compression does not flatter us.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from dataclasses import dataclass

from temporalio.client import Client
from temporalio.worker import Worker

from bench.bare import BareCounterWorkflow
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
    start_dev_server,
    timed,
)
from durable_sessions.client import WORKFLOW_TASK_TIMEOUT, SessionManager
from durable_sessions.core.clock import utcnow
from durable_sessions.core.tokens import approx_token_count
from durable_sessions.models import (
    Checkpoint,
    SessionConfig,
    SessionState,
    SessionTurn,
    new_id,
)
from durable_sessions.stores.base import PersistBatch
from durable_sessions.stores.postgres import PostgresSessionStore
from durable_sessions.worker import create_worker, workflow_runner

EARLY_TURNS = 10
LATE_TURNS = 10_000
CHECKPOINTS = 20
IN_FLIGHT = 8
TURN_BYTES = 2_000
SMALL_TURN_BYTES = 500
STORE_BATCH = 50
AUTO_CHECKPOINT_EVERY = SessionConfig().auto_checkpoint_interval or 10
SETTLE_SECONDS = 1.0
"""Pause before measuring checkpoints: the pending batch flushes first (interval 0.5 s)."""
SEED = 11
GOAL_LATENCY_RATIO = 1.5
GOAL_STORAGE_RATIO = 1.5


@dataclass
class CheckpointPhase:
    turns: int
    history_events: int
    latencies_ms: list[float]
    bare_update_ms: list[float]
    """Control: no-op updates to a fresh bare workflow on the same server, same moment."""
    store_persist_ms: list[float]
    """Control: ``persist`` of a checkpoint-only batch straight into the same tables."""


@dataclass
class Storage:
    label: str
    turns: int
    raw_bytes: int
    stored_bytes: int
    seconds: float

    @property
    def per_turn(self) -> float:
        return self.stored_bytes / self.turns

    @property
    def ratio(self) -> float:
        return self.stored_bytes / self.raw_bytes


async def history_events(client: Client, session_id: str) -> int:
    history = await client.get_workflow_handle(session_id).fetch_history()
    return len(history.events)


async def bare_update_latencies(client: Client, task_queue: str) -> list[float]:
    """Latencies (ms) of no-op updates to a fresh bare workflow: what the server alone costs."""
    handle = await client.start_workflow(
        BareCounterWorkflow.run,
        id=f"bare-{uuid.uuid4().hex}",
        task_queue=task_queue,
        task_timeout=WORKFLOW_TASK_TIMEOUT,
    )
    ping = SessionTurn(role="user", content="ping")
    await handle.execute_update(BareCounterWorkflow.bump, ping)  # warm-up
    latencies = [
        await timed(lambda: handle.execute_update(BareCounterWorkflow.bump, ping)) * 1000
        for _ in range(CHECKPOINTS)
    ]
    await handle.signal(BareCounterWorkflow.stop)
    return latencies


async def store_persist_latencies(store: PostgresSessionStore) -> list[float]:
    """Latencies (ms) of a checkpoint flush written straight to the store (another session)."""
    now = utcnow()
    state = SessionState(
        session_id=f"control-{new_id()}", user_id="bench-control", created_at=now, updated_at=now
    )
    latencies: list[float] = []
    for _ in range(CHECKPOINTS + 1):
        batch = PersistBatch(state=state, checkpoints=[auto_checkpoint(state)])
        latencies.append(await timed(functools.partial(store.persist, batch)) * 1000)
    return latencies[1:]


async def measure_checkpoints(
    manager: SessionManager, store: PostgresSessionStore, session_id: str, turns: int, bare_tq: str
) -> CheckpointPhase:
    await asyncio.sleep(SETTLE_SECONDS)
    state = await manager.get(session_id)
    if state.turn_count != turns:
        raise RuntimeError(f"session has {state.turn_count} turns, expected {turns}")
    latencies = [
        await timed(lambda: manager.checkpoint(session_id)) * 1000 for _ in range(CHECKPOINTS)
    ]
    events = await history_events(manager.client, session_id)
    bare = await bare_update_latencies(manager.client, bare_tq)
    persist = await store_persist_latencies(store)
    log(
        f"checkpoints at turn {turns}: median {median(latencies):.1f} ms, "
        f"max {max(latencies):.1f} ms ({events} events in the current run); controls: bare "
        f"update {median(bare):.1f} ms, store persist {median(persist):.1f} ms"
    )
    return CheckpointPhase(turns, events, latencies, bare, persist)


async def add_turns(
    manager: SessionManager, session_id: str, texts: TextGenerator, start: int, stop: int
) -> int:
    """Add turns ``start..stop-1`` with ``IN_FLIGHT`` calls at once; returns raw text bytes."""
    next_index = start
    raw = 0
    began = time.perf_counter()

    async def sender() -> None:
        nonlocal next_index, raw
        while next_index < stop:
            i = next_index
            next_index += 1
            content = texts.text(TURN_BYTES)
            raw += len(content.encode())
            role = "user" if i % 2 == 0 else "assistant"
            await manager.add_turn(session_id, SessionTurn(role=role, content=content))
            if (i + 1) % 1000 == 0:
                rate = (i + 1 - start) / (time.perf_counter() - began)
                log(f"  {i + 1:,} turns ({rate:.0f}/s)")

    await asyncio.gather(*(sender() for _ in range(IN_FLIGHT)))
    return raw


async def session_run(dsn: str) -> tuple[CheckpointPhase, CheckpointPhase, Storage, float]:
    """The real stack: checkpoints at turn 10 and 10,000, and what the worker stored."""
    log("starting the Temporal dev server ...")
    env = await start_dev_server()
    texts = TextGenerator(SEED)
    try:
        async with postgres_store(dsn, "bench_cp") as store:
            task_queue = f"bench-cp-{uuid.uuid4().hex[:8]}"
            bare_tq = f"bench-bare-{uuid.uuid4().hex[:8]}"
            manager = SessionManager(env.client, store, SessionConfig(), task_queue)
            bare_worker = Worker(
                env.client,
                task_queue=bare_tq,
                workflows=[BareCounterWorkflow],
                workflow_runner=workflow_runner(),
            )
            async with create_worker(env.client, store, task_queue=task_queue), bare_worker:
                session_id = (await manager.create("bench-user")).session_id
                raw = await add_turns(manager, session_id, texts, 0, EARLY_TURNS)
                early = await measure_checkpoints(manager, store, session_id, EARLY_TURNS, bare_tq)
                log(f"adding turns up to {LATE_TURNS:,} ({IN_FLIGHT} in flight) ...")
                began = time.perf_counter()
                raw += await add_turns(manager, session_id, texts, EARLY_TURNS, LATE_TURNS)
                elapsed = time.perf_counter() - began
                rate = (LATE_TURNS - EARLY_TURNS) / elapsed
                late = await measure_checkpoints(manager, store, session_id, LATE_TURNS, bare_tq)
                await manager.close(session_id)
                stored = await store.storage_bytes()
    finally:
        await env.shutdown()
    storage = Storage("session run via the worker", LATE_TURNS, raw, stored, elapsed)
    return early, late, storage, rate


async def store_only_run(dsn: str, turn_bytes: int, seed: int) -> Storage:
    """``PostgresSessionStore.persist`` of 10,000 turns in batches, as the worker's flush does."""
    texts = TextGenerator(seed)
    now = utcnow()
    state = SessionState(session_id=new_id(), user_id="bench-user", created_at=now, updated_at=now)
    raw = 0
    async with postgres_store(dsn, "bench_store") as store:
        began = time.perf_counter()
        for lo in range(0, LATE_TURNS, STORE_BATCH):
            turns: list[SessionTurn] = []
            checkpoints: list[Checkpoint] = []
            for seq in range(lo, min(lo + STORE_BATCH, LATE_TURNS)):
                content = texts.text(turn_bytes)
                raw += len(content.encode())
                turn = SessionTurn(
                    role="user" if seq % 2 == 0 else "assistant",
                    content=content,
                    tokens=approx_token_count(content),
                    seq=seq,
                )
                turns.append(turn)
                state.turn_count = seq + 1
                state.total_tokens += turn.tokens or 0
                if state.turn_count % AUTO_CHECKPOINT_EVERY == 0:
                    checkpoints.append(auto_checkpoint(state))
            state.updated_at = utcnow()
            await store.persist(PersistBatch(state=state, turns=turns, checkpoints=checkpoints))
        elapsed = time.perf_counter() - began
        stored = await store.storage_bytes()
    label = f"store only, ~{turn_bytes:,} B turns"
    log(f"{label}: {stored / LATE_TURNS:.0f} B/turn, {stored / raw:.2f}x raw")
    return Storage(label, LATE_TURNS, raw, stored, elapsed)


def auto_checkpoint(state: SessionState) -> Checkpoint:
    cp = Checkpoint(
        checkpoint_id=new_id(),
        session_id=state.session_id,
        turn_count=state.turn_count,
        created_at=utcnow(),
        reason="auto",
        total_tokens=state.total_tokens,
    )
    state.last_checkpoint_id = cp.checkpoint_id
    return cp


def phase_row(name: str, phase: CheckpointPhase) -> list[str]:
    lat = phase.latencies_ms
    return [
        name,
        f"{phase.turns:,}",
        str(phase.history_events),
        f"{median(lat):.1f}",
        f"{percentile(lat, 90):.1f}",
        f"{max(lat):.1f}",
        f"{median(phase.bare_update_ms):.1f}",
        f"{median(phase.store_persist_ms):.1f}",
    ]


async def main() -> int:
    started = time.perf_counter()
    dsn = await postgres_dsn()
    ratio_text = TextGenerator(SEED).compression_ratio()
    early, late, real, rate = await session_run(dsn)
    log("store-only runs ...")
    big = await store_only_run(dsn, TURN_BYTES, SEED + 1)
    small = await store_only_run(dsn, SMALL_TURN_BYTES, SEED + 2)

    latency_ratio = median(late.latencies_ms) / median(early.latencies_ms)
    bare_ratio = median(late.bare_update_ms) / median(early.bare_update_ms)
    persist_ratio = median(late.store_persist_ms) / median(early.store_persist_ms)
    checks = [
        (
            latency_ratio <= GOAL_LATENCY_RATIO,
            f"checkpoint latency at turn {LATE_TURNS:,} / at turn {EARLY_TURNS}: "
            f"{latency_ratio:.2f} <= {GOAL_LATENCY_RATIO}",
        ),
        (
            real.ratio <= GOAL_STORAGE_RATIO,
            f"stored / raw text, ~2 KB turns, session run: {real.ratio:.2f} <= "
            f"{GOAL_STORAGE_RATIO}",
        ),
        (
            big.ratio <= GOAL_STORAGE_RATIO,
            f"stored / raw text, ~2 KB turns, store only: {big.ratio:.2f} <= {GOAL_STORAGE_RATIO}",
        ),
    ]
    out = [
        "## Checkpoints and storage",
        "",
        f"One session, default `SessionConfig`, `PostgresSessionStore`; turns of ~{TURN_BYTES:,} B "
        f"sent through `SessionManager.add_turn`, {IN_FLIGHT} in flight "
        f"({rate:.0f} turns/s on the way to {LATE_TURNS:,}, continuing-as-new as designed). "
        f"{CHECKPOINTS} sequential `SessionManager.checkpoint` calls at turn {EARLY_TURNS} and "
        f"at turn {LATE_TURNS:,}, each after a {SETTLE_SECONDS:g} s pause so no batch is pending.",
        "",
        "### Checkpoint latency (ms)",
        "",
        md_table(
            [
                "at",
                "turns",
                "history events in current run",
                "checkpoint median",
                "p90",
                "max",
                "control: bare no-op update, median",
                "control: store persist of a checkpoint, median",
            ],
            [phase_row("early", early), phase_row("late", late)],
            "lrrrrrrr",
        ),
        "",
        f"Ratio late / early (medians): checkpoint {latency_ratio:.2f}; controls measured at "
        f"the same moments: bare update on the same dev server {bare_ratio:.2f}, store "
        f"persist {persist_ratio:.2f}.",
        "",
        "### Bytes stored per turn (PostgreSQL relation sizes: heap, TOAST, indexes)",
        "",
        f"Turn text is seeded prose over an 8,000-word vocabulary; zlib compresses it "
        f"{ratio_text:.1f}x (English prose: ~2.5-3x). Stored bytes include the session header, "
        f"an auto checkpoint row every {AUTO_CHECKPOINT_EVERY} turns and the primary-key index. "
        f"Store-only runs persist batches of {STORE_BATCH} turns.",
        "",
        md_table(
            ["run", "turns", "raw text B/turn", "stored B/turn", "stored / raw", "write time"],
            [
                [
                    s.label,
                    f"{s.turns:,}",
                    f"{s.raw_bytes / s.turns:.0f}",
                    f"{s.per_turn:.0f}",
                    f"{s.ratio:.2f}",
                    f"{s.seconds:.1f} s",
                ]
                for s in (real, big, small)
            ],
            "lrrrrr",
        ),
        "",
        f"~{SMALL_TURN_BYTES} B turns (no goal set): {small.ratio:.2f}x raw text, i.e. "
        f"{(small.stored_bytes - small.raw_bytes) / small.turns:.0f} B per turn on top of the "
        "text (tuple header, ids, timestamp, tokens, index entry, header and checkpoint rows).",
        "",
    ]
    return finish(out, checks, started)


if __name__ == "__main__":
    run_main(main)

"""Model-based concurrency tests: random seeded schedules of every operation on one session.

See ``tests/faults/model.py`` for the schedules and the four promises checked after each one.
Schedules run in batches of ``BATCH`` at a time; a test id names its seeds
(``seeds=1000-1005``) and a failure names the seed that broke, ``make_schedule(seed)`` rebuilds
its schedule, and one seed alone reruns with::

    DURABLE_SESSIONS_MODEL_SEED=1004 DURABLE_SESSIONS_MODEL_SCHEDULES=1 \
        pytest tests/faults/test_model_concurrency.py -k latency_store

(the interleaving differs run to run: that is what the random store latency is for).

CI runs ``LATENCY_SCHEDULES + PG_SCHEDULES + len(KILL_SEEDS)`` = 50 schedules. A long run by
hand (a fifth of them on PostgreSQL), its counts written to a file::

    DURABLE_SESSIONS_MODEL_SCHEDULES=2000 DURABLE_SESSIONS_MODEL_RESULTS=/tmp/model.md \
        pytest tests/faults/test_model_concurrency.py -q
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from examples.agents import team
from temporalio.testing import WorkflowEnvironment

from durable_sessions.client import SessionManager
from durable_sessions.errors import SessionBusyError
from durable_sessions.models import SessionConfig, SessionTurn
from durable_sessions.stores.base import SessionStore
from durable_sessions.stores.memory import InMemorySessionStore
from durable_sessions.stores.postgres import PostgresSessionStore
from durable_sessions.testing import TestStack, session_stack
from tests.faults.model import (
    LatencyStore,
    Runner,
    Violation,
    check,
    keep_histories,
    make_schedule,
    replay_runs,
)
from tests.pg import postgres_dsn_or_skip, temporary_schema
from tests.processes import PgWorker

pytestmark = pytest.mark.filterwarnings(
    # The SDK warns when the server cancels a local activity it has already finished (a
    # workflow task that timed out on a loaded machine); as an error (our filterwarnings) it
    # would stop the in-process worker's activity loop, and with it every later schedule.
    "ignore:Cannot find activity to cancel:UserWarning"
)

_LONG = int(os.environ.get("DURABLE_SESSIONS_MODEL_SCHEDULES", "0"))
FIRST_SEED = int(os.environ.get("DURABLE_SESSIONS_MODEL_SEED", "1000"))
BATCH = int(os.environ.get("DURABLE_SESSIONS_MODEL_BATCH", "6"))
"""Schedules run at the same time (each on its own session): a schedule mostly waits on the
store's latency, so a batch costs little more than one."""
LATENCY_SCHEDULES = _LONG or 36
PG_SCHEDULES = _LONG // 5 if _LONG else 12
KILL_SEEDS = (FIRST_SEED + 900_001, FIRST_SEED + 900_002)
RESTORE_ALL_EVERY = 7
"""Every seventh schedule also restores each of its checkpoints for real (one restore per
checkpoint); the others check every checkpoint through the store, as a restore reads it."""

SUMMARY: dict[str, Counter[str]] = {}
FAILED_SEEDS: dict[str, list[int]] = {}


def _record(backend: str, seed: int, runner: Runner, violations: list[Violation]) -> None:
    total = SUMMARY.setdefault(backend, Counter())
    total["schedules"] += 1
    total["operations"] += len(runner.schedule.ops) + runner.schedule.preload
    total["acknowledged turns"] += sum(len(a) for a in runner.ledger.acks.values())
    total["continue-as-new schedules"] += runner.schedule.config.max_updates_per_run < 100
    for k, v in runner.ledger.outcomes.items():
        total[f"outcome {k}"] += v
    for k, secs in runner.ledger.seconds.items():
        total[f"ms in {k}"] += round(secs * 1000)
    if violations:
        total["schedules with violations"] += 1
        FAILED_SEEDS.setdefault(backend, []).append(seed)
    for v in violations:
        total[f"violation {v.rule}"] += 1


def _fail_message(seed: int, runner: Runner, violations: list[Violation]) -> str:
    lines = [
        f"{len(violations)} violations in {runner.schedule.describe()}",
        f"  schedule: tests.faults.model.make_schedule({seed}); seeds of a run start at "
        "DURABLE_SESSIONS_MODEL_SEED (latency store) and that + 500000 (PostgreSQL)",
    ]
    lines.extend(f"  {v}" for v in violations[:12])
    return "\n".join(lines)


async def run_schedule(
    backend: str,
    manager: SessionManager,
    seed: int,
    store: SessionStore,
) -> str | None:
    """Run and check one schedule; the failure message, or None when every promise held."""
    runner = Runner(manager, make_schedule(seed))
    started = time.monotonic()
    await asyncio.wait_for(runner.run(), 180)
    await runner.settle()
    ran = time.monotonic()
    violations = await check(
        manager, runner.ledger, restore_all=seed % RESTORE_ALL_EVERY == 0, store=store
    )
    violations += await replay_runs(manager, runner.ledger)
    await keep_histories(manager, runner.ledger, violations)
    runner.ledger.seconds["(schedule)"] += ran - started
    runner.ledger.seconds["(check)"] += time.monotonic() - ran
    _record(backend, seed, runner, violations)
    return _fail_message(seed, runner, violations) if violations else None


async def run_batch(
    backend: str, manager: SessionManager, seeds: list[int], store: LatencyStore
) -> None:
    store.reseed(seeds[0])
    results = await asyncio.gather(
        *(run_schedule(backend, manager, s, store.inner) for s in seeds), return_exceptions=True
    )
    failures: list[str] = []
    for seed, result in zip(seeds, results, strict=True):
        if isinstance(result, BaseException):
            failures.append(f"seed={seed} raised {type(result).__name__}: {result}")
            SUMMARY.setdefault(backend, Counter())["schedules that raised"] += 1
        elif result is not None:
            failures.append(result)
    if failures:
        # pytrace=False: formatting a long traceback can hit CPython 3.11's "AST constructor
        # recursion depth mismatch" once the SDK's threads have run (see tests/conftest.py).
        pytest.fail(
            f"{len(failures)} of {len(seeds)} schedules broke a promise:\n" + "\n".join(failures),
            pytrace=False,
        )


# ---------------------------------------------------------------------------- stacks


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def latency_stack() -> AsyncIterator[tuple[TestStack, LatencyStore]]:
    store = LatencyStore(InMemorySessionStore(), max_delay=0.04)
    async with session_stack(store=store, agents=team()) as stack:  # type: ignore[arg-type]
        yield stack, store


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pg_stack() -> AsyncIterator[tuple[TestStack, LatencyStore]]:
    dsn = await postgres_dsn_or_skip()
    async with temporary_schema(dsn) as schema:
        pg = PostgresSessionStore(dsn, schema=schema)
        store = LatencyStore(pg, max_delay=0.01)
        try:
            async with session_stack(store=store, agents=team()) as stack:  # type: ignore[arg-type]
                yield stack, store
        finally:
            await pg.close()


def _batches(count: int, offset: int) -> list[Any]:
    first = FIRST_SEED + offset
    seeds = list(range(first, first + count))
    return [
        pytest.param(
            seeds[i : i + BATCH], id=f"seeds={seeds[i]}-{seeds[min(i + BATCH, count) - 1]}"
        )
        for i in range(0, count, BATCH)
    ]


# ---------------------------------------------------------------------------- schedules


@pytest.mark.parametrize("seeds", _batches(LATENCY_SCHEDULES, 0))
async def test_schedule_latency_store(
    latency_stack: tuple[TestStack, LatencyStore], seeds: list[int]
) -> None:
    stack, store = latency_stack
    await run_batch("in-memory store + 0-40 ms latency", stack.manager, seeds, store)


@pytest.mark.parametrize("seeds", _batches(PG_SCHEDULES, 500_000))
async def test_schedule_postgres(
    pg_stack: tuple[TestStack, LatencyStore], seeds: list[int]
) -> None:
    stack, store = pg_stack
    await run_batch("PostgreSQL + 0-10 ms latency", stack.manager, seeds, store)


@pytest.mark.slow
async def test_schedules_with_worker_killed(
    temporal_env: WorkflowEnvironment, pg_worker: PgWorker, task_queue: str
) -> None:
    """A worker process killed (-9) and restarted in the middle of each schedule."""
    store, worker = pg_worker.store, pg_worker.worker
    manager = SessionManager(temporal_env.client, store, task_queue=task_queue, call_timeout=10)
    kills = 0
    failures: list[str] = []
    for seed in KILL_SEEDS:
        runner = Runner(manager, make_schedule(seed, ops=30), retry_unavailable=60)
        run = asyncio.create_task(runner.run())
        midway = asyncio.create_task(runner.wait_for_acks(runner.schedule.preload + 3))
        await asyncio.wait({run, midway}, return_when=asyncio.FIRST_COMPLETED)
        if midway.done():  # the schedule is under way: kill its worker
            worker.kill9()
            kills += 1
            await asyncio.sleep(0.5)
            worker.start()
        midway.cancel()
        await asyncio.wait_for(run, 180)
        await runner.settle()
        violations = await check(manager, runner.ledger, restore_all=True)
        violations += await replay_runs(manager, runner.ledger)
        await keep_histories(manager, runner.ledger, violations)
        _record("PostgreSQL, worker process killed -9", seed, runner, violations)
        if violations:
            failures.append(_fail_message(seed, runner, violations))
    assert kills >= 1, "no schedule lasted long enough to kill its worker"
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)


# ---------------------------------------------------------------------------- the harness


def test_a_seed_always_gives_the_same_schedule() -> None:
    first = make_schedule(4242)
    assert make_schedule(4242) == first
    assert make_schedule(4243) != first
    kinds = [op.kind for op in first.ops]
    assert "close" not in kinds[: len(kinds) * 3 // 4]
    many = [make_schedule(seed) for seed in range(200)]
    assert {k for s in many for k in (op.kind for op in s.ops)} >= {
        "add",
        "send",
        "restore",
        "truncate",
        "checkpoint",
        "branch",
        "merge",
        "suspend",
        "resume",
        "close",
        "add_branch",
    }
    assert any(s.config.max_updates_per_run == 10 for s in many)  # continue-as-new is exercised


async def test_the_latency_store_delays_every_awaited_call() -> None:
    store = LatencyStore(InMemorySessionStore(), max_delay=0.05, seed=1)
    started = time.monotonic()
    for _ in range(10):
        assert await store.get_session("nope") is None
    assert time.monotonic() - started > 0.1  # ten sleeps of random() * 0.05 s
    store.max_delay = 0.0
    started = time.monotonic()
    assert await store.list_checkpoints("nope") == []
    assert time.monotonic() - started < 0.05


# ---------------------------------------------------------------------------- issue 13


async def test_restore_while_five_callers_add_turns(
    latency_stack: tuple[TestStack, LatencyStore],
) -> None:
    """Issue 13: 25 turns, a checkpoint, then 5 callers adding turns while another restores that
    checkpoint 3 times; afterwards every checkpoint restores to exactly its turn_count turns."""
    stack, store = latency_stack
    store.reseed(13)
    manager = stack.manager
    s = await manager.create("issue-13", config=SessionConfig())
    sid = s.session_id
    for i in range(25):
        await manager.add_turn(sid, SessionTurn(role="user", content=f"before {i}"))
    cp = await manager.checkpoint(sid)

    async def caller(c: int) -> None:
        for i in range(10):
            turn = SessionTurn(role="user", content=f"caller {c} turn {i}")
            while True:
                try:
                    await manager.add_turn(sid, turn)
                    break
                except SessionBusyError:  # the session may ask a turn to wait out a restore
                    await asyncio.sleep(0.05)

    async def restorer() -> None:
        for _ in range(3):
            await asyncio.sleep(0.05)
            await manager.restore(cp.checkpoint_id)

    await asyncio.gather(*(caller(c) for c in range(5)), restorer())
    await manager._update(sid, "flush", None, type(s))
    store.max_delay, delay = 0.0, store.max_delay
    try:
        checkpoints = await manager.list_checkpoints(sid)
        broken: list[str] = []
        for checkpoint in checkpoints:
            await manager.restore(checkpoint.checkpoint_id)
            history = await manager.history(sid)
            seqs = [t.seq for t in history]
            if seqs != list(range(checkpoint.turn_count)):
                broken.append(
                    f"{checkpoint.reason} checkpoint of {checkpoint.turn_count} turns restores "
                    f"to {len(history)}"
                )
    finally:
        store.max_delay = delay
    if broken:
        pytest.fail(
            f"{len(broken)} of {len(checkpoints)} checkpoints broken: {broken}", pytrace=False
        )


# ---------------------------------------------------------------------------- results


def _write_results(path: str) -> None:
    lines = [
        f"Written by `tests/faults/test_model_concurrency.py` (DURABLE_SESSIONS_MODEL_RESULTS), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, first seed {FIRST_SEED}.",
        "",
        "| backend | schedules | with violations | violations by rule | acknowledged turns |",
        "|---|---:|---:|---|---:|",
    ]
    for backend, c in SUMMARY.items():
        counts = [
            f"{k.removeprefix('violation ')}={v}"
            for k, v in sorted(c.items())
            if k.startswith("violation ")
        ]
        if c["schedules that raised"]:
            counts.append(f"raised={c['schedules that raised']}")
        rules = ", ".join(counts)
        lines.append(
            f"| {backend} | {c['schedules']} | {c['schedules with violations']} | "
            f"{rules or '-'} | {c['acknowledged turns']} |"
        )
    lines.append("")
    for backend, seeds in FAILED_SEEDS.items():
        lines.append(f"Failing seeds ({backend}): {', '.join(map(str, seeds[:40]))}")
    Path(path).write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module", autouse=True)
def write_results() -> object:
    yield
    for backend, c in SUMMARY.items():
        print(f"\n{backend}: {dict(sorted(c.items()))}")
    path = os.environ.get("DURABLE_SESSIONS_MODEL_RESULTS")
    if path and SUMMARY:
        _write_results(path)

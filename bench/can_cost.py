"""What a continue-as-new costs the calls around it: a session against a bare workflow.

    python -m bench.can_cost [--calls 3000]

One sequential caller each, on one dev server and one worker: a session (default
`SessionConfig`, PostgreSQL), a bare counter that continues as new after as many updates as a
session's run holds (handing over as many bytes as the session's continue-as-new input), and
the same bare counter with no continue-as-new. Each call is placed by its position in its run
(read back from Temporal): the run's first update, the one that ends the run, the rest.
Prints a small markdown table: p50 and p90 by position, the overall p50 and p99.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from bench.bare import BARE_CONTINUING_TYPE, BareContinuingWorkflow
from bench.common import (
    log,
    postgres_dsn,
    postgres_store,
    run_histories,
    run_main,
    start_dev_server,
)
from durable_sessions.client import SessionManager
from durable_sessions.models import SessionConfig, SessionTurn
from durable_sessions.worker import create_worker, workflow_runner

_ACCEPTED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED


def _turn(i: int) -> SessionTurn:
    return SessionTurn(role="user", content=f"turn {i} " + "x" * 480)


async def _timed(calls: int, call: Callable[[int], Awaitable[object]]) -> list[float]:
    took: list[float] = []
    for i in range(calls):
        started = time.perf_counter()
        await call(i)
        took.append((time.perf_counter() - started) * 1000)
    return took


async def _positions(client: Client, workflow_id: str) -> tuple[list[str], int]:
    """Per accepted update, in order: first/last/other in its run; and the median size in bytes
    of the inputs continue-as-new handed over."""
    histories = await run_histories(client, workflow_id)
    where: list[str] = []
    sizes: list[int] = []
    for n, history in enumerate(histories):
        accepted = sum(1 for e in history.events if e.event_type == _ACCEPTED)
        ended = n < len(histories) - 1
        started = history.events[0].workflow_execution_started_event_attributes
        if n > 0:
            sizes.append(sum(len(p.data) for p in started.input.payloads))
        for k in range(accepted):
            where.append("first" if k == 0 else "last" if ended and k == accepted - 1 else "other")
    return where, int(statistics.median(sizes)) if sizes else 0


def _row(name: str, took: list[float], where: list[str]) -> str:
    cells = []
    for kind in ("first", "last", "other"):
        xs = sorted(t for t, w in zip(took, where, strict=True) if w == kind)
        cells.append(f"{statistics.median(xs):.1f} / {xs[int(len(xs) * 0.9)]:.1f}" if xs else "-")
    ranked = sorted(took)
    p99 = ranked[int(len(ranked) * 0.99)]
    n_runs = where.count("first")
    p50 = statistics.median(took)
    return f"| {name} | {n_runs} | {' | '.join(cells)} | {p50:.1f} | {p99:.1f} |"


async def main(calls: int) -> int:
    env = await start_dev_server()
    rows: list[str] = []
    try:
        client = env.client
        async with postgres_store(await postgres_dsn(), "can_cost") as store:
            manager = SessionManager(client, store, SessionConfig(), "can-cost")
            bare = Worker(
                client,
                task_queue="can-cost-bare",
                workflows=[BareContinuingWorkflow],
                workflow_runner=workflow_runner(sandboxed=False),
            )
            async with create_worker(client, store, task_queue="can-cost"), bare:
                sid = (await manager.create("can-cost")).session_id
                log(f"session: {calls} sequential add_turn calls")
                took = await _timed(calls, lambda i: manager.add_turn(sid, _turn(i)))
                where, carry = await _positions(client, sid)
                per_run = round(calls / max(1, where.count("first")))
                rows.append(_row("session + PostgreSQL", took, where))
                # Temporal takes at most 2,000 updates in a run: "never" stops short of that.
                never = min(calls, 1_900)
                for every, n, label in (
                    (per_run, calls, f"continues as new every {per_run}"),
                    (never + 1, never, f"never continues ({never} calls)"),
                ):
                    handle = await client.start_workflow(
                        BARE_CONTINUING_TYPE,
                        args=[every, "y" * carry],
                        id=f"can-cost-{uuid.uuid4()}",
                        task_queue="can-cost-bare",
                    )
                    log(f"bare, {label}: {n} sequential updates")
                    took = await _timed(n, lambda i, h=handle: h.execute_update("bump", _turn(i)))
                    where, _ = await _positions(client, handle.id)
                    rows.append(_row(f"bare, {label}", took, where))
    finally:
        await env.shutdown()
    print("## What a continue-as-new costs the calls around it\n")
    print(
        f"{calls} sequential calls per side; the bare workflow hands over {carry:,} bytes at"
        " each continue-as-new, the median of the session's. ms, p50 / p90 by position.\n"
    )
    print(
        "| side | runs | first update of a run | update that ends a run | other updates |"
        " p50 | p99 |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(row)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    run_main(lambda: main(args.calls))

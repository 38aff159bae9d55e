"""Which `add_turn` calls are the slow tail, and what their workflow task also carried.

    python -m bench.turn_tail [--calls 1500] [--sessions 1]

``--sessions`` sessions, one sequential caller each (all at once), ``--calls`` calls in all,
default `SessionConfig`, PostgreSQL. Afterwards every run of every session is read from
Temporal, and each call is matched (in order, per session) to the workflow task that accepted
its update. The slowest 2% of calls are then grouped by the other events of that task
(a flush's local-activity marker, a timer, a continue-as-new), next to how many calls overall
had a task of that kind. Prints a small markdown report.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import Counter

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

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
from durable_sessions.worker import create_worker

_UPDATE_ACCEPTED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
_IGNORED = {
    "WORKFLOW_EXECUTION_UPDATE_ACCEPTED",
    "WORKFLOW_EXECUTION_UPDATE_COMPLETED",
    "WORKFLOW_TASK_SCHEDULED",
    "WORKFLOW_TASK_STARTED",
}
"""Events every answered update's task holds: not what tells the tasks apart."""


async def task_kinds(client: Client, session_id: str) -> list[tuple[str, ...]]:
    """For every accepted update of every run, in order: the other events of its task."""
    kinds: list[tuple[str, ...]] = []
    for history in await run_histories(client, session_id):
        tasks: list[list[EventType.ValueType]] = []
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                tasks.append([])
            elif tasks:
                tasks[-1].append(event.event_type)
        for events in tasks:
            other = tuple(
                sorted({EventType.Name(k).removeprefix("EVENT_TYPE_") for k in events} - _IGNORED)
            )
            kinds.extend(other for k in events if k == _UPDATE_ACCEPTED)
    return kinds


async def main(calls: int, sessions: int) -> int:
    env = await start_dev_server()
    per_session = calls // sessions
    latencies: list[float] = []
    kinds: list[tuple[str, ...]] = []
    try:
        async with postgres_store(await postgres_dsn(), "turn_tail") as store:
            manager = SessionManager(env.client, store, SessionConfig(), "turn-tail")
            async with create_worker(env.client, store, task_queue="turn-tail"):
                ids = [(await manager.create("turn-tail")).session_id for _ in range(sessions)]
                log(f"{per_session} sequential add_turn calls into each of {sessions} sessions")

                async def caller(session_id: str) -> list[float]:
                    took: list[float] = []
                    for i in range(per_session):
                        turn = SessionTurn(role="user", content=f"turn {i} " + "x" * 480)
                        started = time.perf_counter()
                        await manager.add_turn(session_id, turn)
                        took.append((time.perf_counter() - started) * 1000)
                    return took

                for took in await asyncio.gather(*(caller(sid) for sid in ids)):
                    latencies.extend(took)
                for sid in ids:
                    kinds.extend(await task_kinds(env.client, sid))
    finally:
        await env.shutdown()
    calls = len(latencies)
    if len(kinds) != len(latencies):
        log(f"matched {len(kinds)} accepted updates to {len(latencies)} calls: not one to one")
        return 1
    ranked = sorted(range(calls), key=lambda i: -latencies[i])
    tail = ranked[: max(1, calls // 50)]
    in_tail = Counter(kinds[i] for i in tail)
    overall = Counter(kinds)
    p99 = sorted(latencies)[int(calls * 0.99)]
    print(f"## Where the add_turn tail comes from ({sessions} session(s), sequential callers)\n")
    print(f"{calls} calls: p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms.\n")
    by_kind: dict[tuple[str, ...], list[float]] = {}
    for kind, took in zip(kinds, latencies, strict=True):
        by_kind.setdefault(kind, []).append(took)
    print("| what the call's workflow task also held | calls in the slowest 2% | calls | p50 ms |")
    print("| --- | ---: | ---: | ---: |")
    for kind, n in in_tail.most_common():
        median = statistics.median(by_kind[kind])
        print(f"| {', '.join(kind) or '(nothing else)'} | {n} | {overall[kind]} | {median:.1f} |")
    slowest = ", ".join(f"{latencies[i]:.0f}" for i in ranked[:10])
    print(f"\nSlowest 10 calls, ms: {slowest}.")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1500, help="in all")
    parser.add_argument("--sessions", type=int, default=1)
    args = parser.parse_args()
    run_main(lambda: main(args.calls, args.sessions))

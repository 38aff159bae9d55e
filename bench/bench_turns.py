"""Benchmark ``add_turn``: sessions persisting to PostgreSQL against a bare Temporal workflow.

Run ``python -m bench.bench_turns`` from the repository root. Progress goes to stderr, a
Markdown section to stdout; the exit status is 1 when a goal is missed:

* throughput ours / bare >= 0.8 and p99 latency ours / bare <= 1.3, in both scenarios:
  one session with one sequential caller, and 20 sessions with one sequential caller each.

Both sides run on the same dev server, in the same process, with the same worker settings
(``create_worker``'s runner, unsandboxed, SDK defaults otherwise), each on its own task queue. The
bare side is ``bench.bare.BareCounterWorkflow``: an update that takes the same ``SessionTurn``
payload and only counts it. Our side is ``SessionManager.add_turn`` on a session with the
default ``SessionConfig`` and a ``PostgresSessionStore`` in a fresh schema. Every measurement
uses fresh workflows, starts after a warm-up and a settle pause (so a flush still pending from
the previous measurement cannot land in it), and the two sides alternate which goes first.
Figures are medians over the rounds.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
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
    spread,
    start_dev_server,
)
from durable_sessions.client import WORKFLOW_TASK_TIMEOUT, SessionManager
from durable_sessions.models import SessionConfig, SessionTurn
from durable_sessions.worker import create_worker, workflow_runner

ROUNDS = 7
CALLS = 300
"""Measured calls per scenario, per side, per round."""
SESSIONS = 20
WARMUP_CALLS = 2
"""Unmeasured calls per workflow before each measurement."""
SETTLE_SECONDS = SessionConfig().flush_interval + 0.5
"""Pause before each measurement: longer than the flush interval, so the warm-up's flush is over
(the flushes of the measured turns themselves fall inside the measurement)."""
TURN_BYTES = 500
SEED = 7
GOAL_THROUGHPUT = 0.8
GOAL_P99 = 1.3
RPC_TIMEOUT = timedelta(seconds=30)

SCENARIOS: dict[str, int] = {
    "1 session, sequential": 1,
    f"{SESSIONS} sessions x 1 caller": SESSIONS,
}

Call = Callable[[], Awaitable[object]]


@dataclass
class Sample:
    """One measurement: throughput over its wall time and every call's latency."""

    throughput: float
    latencies_ms: list[float]

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies_ms, 50)

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies_ms, 99)


@dataclass
class Series:
    """One side in one scenario, over all rounds."""

    samples: list[Sample] = field(default_factory=list)
    events: Counter[str] = field(default_factory=Counter)

    def throughputs(self) -> list[float]:
        return [s.throughput for s in self.samples]

    def latencies_ms(self) -> list[float]:
        """Every call of every round (rounds interleave with the other side's)."""
        return [x for s in self.samples for x in s.latencies_ms]


class Side:
    """One side of the comparison: makes workflows and calls that add one turn to them."""

    name: str

    def __init__(self, client: Client, texts: TextGenerator) -> None:
        self.client = client
        self.texts = texts

    def turn(self, i: int) -> SessionTurn:
        """A fresh turn (new ``turn_id``) of ~``TURN_BYTES`` of text."""
        role = "user" if i % 2 == 0 else "assistant"
        return SessionTurn(role=role, content=self.texts.text(TURN_BYTES))

    async def start(self, n: int) -> list[str]:
        raise NotImplementedError

    def call(self, workflow_id: str, turn: SessionTurn) -> Call:
        raise NotImplementedError

    async def finish(self, workflow_ids: list[str]) -> None:
        raise NotImplementedError


class OurSide(Side):
    name = "session + PostgreSQL"

    def __init__(self, client: Client, texts: TextGenerator, manager: SessionManager) -> None:
        super().__init__(client, texts)
        self.manager = manager

    async def start(self, n: int) -> list[str]:
        states = await asyncio.gather(
            *(self.manager.create(f"bench-user-{i}", config=SessionConfig()) for i in range(n))
        )
        return [s.session_id for s in states]

    def call(self, workflow_id: str, turn: SessionTurn) -> Call:
        return lambda: self.manager.add_turn(workflow_id, turn)

    async def finish(self, workflow_ids: list[str]) -> None:
        await asyncio.gather(*(self.manager.close(wid) for wid in workflow_ids))


class BareSide(Side):
    name = "bare counter workflow"

    def __init__(self, client: Client, texts: TextGenerator, task_queue: str) -> None:
        super().__init__(client, texts)
        self.task_queue = task_queue

    async def start(self, n: int) -> list[str]:
        handles = await asyncio.gather(
            *(
                self.client.start_workflow(
                    BareCounterWorkflow.run,
                    id=f"bare-{uuid.uuid4().hex}",
                    task_queue=self.task_queue,
                    task_timeout=WORKFLOW_TASK_TIMEOUT,
                )
                for _ in range(n)
            )
        )
        return [h.id for h in handles]

    def call(self, workflow_id: str, turn: SessionTurn) -> Call:
        handle: WorkflowHandle[BareCounterWorkflow, int] = self.client.get_workflow_handle_for(
            BareCounterWorkflow.run, workflow_id
        )
        return lambda: handle.execute_update(
            BareCounterWorkflow.bump, turn, rpc_timeout=RPC_TIMEOUT
        )

    async def finish(self, workflow_ids: list[str]) -> None:
        await asyncio.gather(
            *(self.client.get_workflow_handle(wid).signal("stop") for wid in workflow_ids)
        )


async def drive(side: Side, workflow_ids: list[str], calls_each: int) -> Sample:
    """One sequential caller per workflow, all callers at once; per-call latencies."""
    turns = {wid: [side.turn(i) for i in range(calls_each)] for wid in workflow_ids}
    latencies: list[float] = []

    async def caller(wid: str) -> None:
        for turn in turns[wid]:
            call = side.call(wid, turn)
            t0 = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(caller(wid) for wid in workflow_ids))
    wall = time.perf_counter() - start
    ms = [x * 1000 for x in latencies]
    return Sample(len(ms) / wall, ms)


_COUNTED = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED: "workflow tasks",
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: "activities",
    EventType.EVENT_TYPE_TIMER_STARTED: "timers",
}
_MEASURED_UPDATES = frozenset({"add_turn", "bump"})


async def count_events(client: Client, workflow_ids: list[str]) -> Counter[str]:
    """History events of the workflows' current runs by kind (warm-up and start included);
    ``updates`` counts the turn updates only (not ``ready``)."""
    counts: Counter[str] = Counter()
    for wid in workflow_ids:
        history = await client.get_workflow_handle(wid).fetch_history()
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
                attrs = event.workflow_execution_update_accepted_event_attributes
                if attrs.accepted_request.input.name in _MEASURED_UPDATES:
                    counts["updates"] += 1
                continue
            if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
                if event.marker_recorded_event_attributes.marker_name == "core_local_activity":
                    counts["local activities"] += 1
                continue
            kind = _COUNTED.get(event.event_type)
            if kind is not None:
                counts[kind] += 1
    return counts


async def measure(side: Side, n_workflows: int) -> tuple[Sample, Counter[str]]:
    ids = await side.start(n_workflows)
    for _ in range(WARMUP_CALLS):
        await asyncio.gather(*(side.call(wid, side.turn(0))() for wid in ids))
    await asyncio.sleep(SETTLE_SECONDS)
    sample = await drive(side, ids, CALLS // n_workflows)
    events = await count_events(side.client, ids)
    await side.finish(ids)
    return sample, events


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


async def main() -> int:
    started = time.perf_counter()
    dsn = await postgres_dsn()
    log("starting the Temporal dev server ...")
    env = await start_dev_server()
    client = env.client
    texts = TextGenerator(SEED)
    results: dict[tuple[str, str], Series] = {}
    try:
        async with postgres_store(dsn, "bench_turns") as store:
            ours_tq = f"bench-ours-{uuid.uuid4().hex[:8]}"
            bare_tq = f"bench-bare-{uuid.uuid4().hex[:8]}"
            manager = SessionManager(client, store, SessionConfig(), ours_tq, call_timeout=30)
            ours_worker = create_worker(client, store, task_queue=ours_tq)
            bare_worker = Worker(
                client,
                task_queue=bare_tq,
                workflows=[BareCounterWorkflow],
                workflow_runner=workflow_runner(),
            )
            sides: list[Side] = [BareSide(client, texts, bare_tq), OurSide(client, texts, manager)]
            async with ours_worker, bare_worker:
                for r in range(ROUNDS):
                    order = sides if r % 2 == 0 else sides[::-1]
                    for scenario, n in SCENARIOS.items():
                        for side in order:
                            log(f"round {r + 1}/{ROUNDS}: {scenario}: {side.name} ...")
                            sample, events = await measure(side, n)
                            series = results.setdefault((scenario, side.name), Series())
                            series.samples.append(sample)
                            series.events.update(events)
                            log(
                                f"  {sample.throughput:.1f}/s, p50 {sample.p50_ms:.1f} ms, "
                                f"p99 {sample.p99_ms:.1f} ms; history: {dict(events)}"
                            )
    finally:
        await env.shutdown()

    ours_name, bare_name = OurSide.name, BareSide.name
    cfg = SessionConfig()
    out = [
        "## add_turn throughput and latency",
        "",
        f"{CALLS} measured `add_turn` calls per scenario and side in each of {ROUNDS} rounds "
        f"(fresh workflows each time, {WARMUP_CALLS} warm-up calls per workflow, sides "
        f"alternating first); turns of ~{TURN_BYTES} B of text. Ours: `SessionManager.add_turn`, "
        f"default `SessionConfig` (flush interval {cfg.flush_interval:g} s, batch "
        f"{cfg.flush_batch_size}, auto checkpoint every {cfg.auto_checkpoint_interval} turns), "
        "`PostgresSessionStore`. Bare: a workflow whose update takes the same payload "
        "and only counts it. Same dev server, same process, same worker settings. Throughput: "
        "median over rounds (min-max); latency percentiles: all rounds' calls pooled "
        f"({CALLS * ROUNDS:,} per side).",
        "",
    ]
    checks: list[tuple[bool, str]] = []
    ratio_rows: list[list[str]] = []
    for scenario in SCENARIOS:
        ours, bare = results[(scenario, ours_name)], results[(scenario, bare_name)]
        out += [f"### {scenario}", ""]
        rows = [
            [
                name,
                spread(s.throughputs()),
                f"{percentile(s.latencies_ms(), 50):.1f}",
                f"{percentile(s.latencies_ms(), 99):.1f}",
                f"{max(s.latencies_ms()):.0f}",
            ]
            for name, s in ((bare_name, bare), (ours_name, ours))
        ]
        out += [
            md_table(["side", "updates/s", "p50 ms", "p99 ms", "max ms"], rows, "lrrrr"),
            "",
        ]
        per_round = [
            ratio(o, b) for o, b in zip(ours.throughputs(), bare.throughputs(), strict=True)
        ]
        t_ratio = median(per_round)
        p_ratio = ratio(percentile(ours.latencies_ms(), 99), percentile(bare.latencies_ms(), 99))
        p50_ratio = ratio(percentile(ours.latencies_ms(), 50), percentile(bare.latencies_ms(), 50))
        ratio_rows.append(
            [
                scenario,
                f"{t_ratio:.2f}",
                f"{p50_ratio:.2f}",
                f"{p_ratio:.2f}",
                ", ".join(f"{x:.2f}" for x in per_round),
            ]
        )
        checks.append(
            (
                t_ratio >= GOAL_THROUGHPUT,
                f"{scenario}: throughput ratio {t_ratio:.2f} >= {GOAL_THROUGHPUT}",
            )
        )
        checks.append((p_ratio <= GOAL_P99, f"{scenario}: p99 ratio {p_ratio:.2f} <= {GOAL_P99}"))
    out += [
        "### Ratios (ours / bare)",
        "",
        "Throughput: median of the per-round ratios (each round pairs the two sides back to "
        "back, which cancels the machine's drift). Latency: percentiles of all calls pooled.",
        "",
        md_table(
            ["scenario", "throughput", "p50 latency", "p99 latency", "throughput, per round"],
            ratio_rows,
            "lrrrl",
        ),
        "",
        "### What the updates cost in workflow history (all rounds, warm-up included)",
        "",
    ]
    event_rows: list[list[str]] = []
    for scenario in SCENARIOS:
        for name in (bare_name, ours_name):
            ev = results[(scenario, name)].events
            per = 100 / ev["updates"] if ev["updates"] else float("nan")
            event_rows.append(
                [
                    scenario,
                    name,
                    str(ev["updates"]),
                    f"{ev['workflow tasks'] * per:.0f}",
                    f"{ev['activities'] * per:.1f}",
                    f"{ev['local activities'] * per:.1f}",
                    f"{ev['timers'] * per:.1f}",
                ]
            )
    out += [
        md_table(
            [
                "scenario",
                "side",
                "updates",
                "workflow tasks / 100 updates",
                "activities / 100",
                "local activities / 100",
                "timers / 100",
            ],
            event_rows,
            "llrrrrr",
        ),
        "",
    ]
    return finish(out, checks, started)


if __name__ == "__main__":
    run_main(main)

"""What ``bench_scale`` measures (its series and settings) and its Markdown report."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import goal_line, md_table, median, percentile
from durable_sessions.client import WORKFLOW_TASK_TIMEOUT
from durable_sessions.models import SessionConfig

__all__ = [
    "CHAT_NAMES",
    "CHAT_ROUNDS",
    "CHAT_THINK",
    "Args",
    "MemoryRow",
    "Populated",
    "Results",
    "Series",
    "report",
    "run_calls",
]

ROUNDS = 10
CONCURRENT_CALLERS = 10
CONCURRENT_ROUNDS = 5
CREATE_ROUNDS = 4
TAIL_SECONDS = SessionConfig().flush_interval + 0.5
"""How long each measured series waits after its last call before its CPU is read and the next
series starts: the flush timers its calls armed fire meanwhile, so their work is counted to the
series that caused it and never runs inside another series."""
POPULATE_CONCURRENCY = 50
TURN_BYTES = 500
HISTORY_SAMPLE = 10
"""Workflows per side whose history length is reported."""
LONG_SESSIONS = 10
LONG_TURNS = 500
COLD_PASSES = 3
"""Cold turns into each long and fresh session (each pass after enough other traffic to evict
them from the cache)."""
GOAL_RSS_MB = 300
GOAL_LATENCY = 1.2
GOAL_THROUGHPUT = 0.8
GOAL_CREATE = 0.8
GOAL_LONG = 1.2
NO_IDLE = SessionConfig(max_events_per_run=3_000, idle_continue_after=None)
"""Long sessions built with idle continue-as-new off (for information)."""

SEQ_NAMES = (
    "ours, random session",
    "bare, random workflow",
    "bare, one hot workflow",
    "ours, one hot session",
)
CONC_NAMES = SEQ_NAMES[:2]
CREATE_NAMES = (
    "ours: create + first turn",
    "bare: start + first update",
    "ours, experiment: start without the header write + first turn",
)
CHAT_NAMES = (
    "ours: chat visit, random session (turn, 1 s, answer)",
    "bare: two updates 1 s apart, random workflow",
)
CHAT_ROUNDS = 2
CHAT_THINK = 1.0
"""Seconds between a chat visit's turn and its answer (the model thinking)."""
COLD_NAMES = (
    "fresh session (created, one turn)",
    "long session, default config",
    "long session, idle continue-as-new off",
)

Call = Callable[[], Awaitable[object]]


@dataclass
class Args:
    sessions: int
    cache: int
    calls: int
    log_dir: Path | None = None
    populate_concurrency: int = POPULATE_CONCURRENCY
    long_sessions: int = LONG_SESSIONS
    long_turns: int = LONG_TURNS


@dataclass
class Series:
    """Every measured call of one series, and the wall time its calls took."""

    latencies_ms: list[float] = field(default_factory=list)
    wall: float = 0.0
    events: list[int] = field(default_factory=list)
    """History events in the target's current run just before each call (cold series)."""
    failures: list[str] = field(default_factory=list)
    """Error types of the calls that failed (cold series; not in the latencies)."""
    worker_cpu: float = 0.0
    """CPU seconds the side's worker used while this series ran (its timers too: flushes)."""
    server_cpu: float = 0.0
    """CPU seconds the dev server used while this series ran."""
    client_cpu: float = 0.0
    """CPU seconds this benchmark process (the callers' clients) used while this series ran."""
    postgres_cpu: float = 0.0
    """CPU seconds PostgreSQL's processes used while this series ran."""

    def pct(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.wall if self.wall else float("nan")

    @property
    def cpu_ms_per_call(self) -> float:
        """CPU of every process per call, ms (PostgreSQL's when it reads as positive: its
        processes come and go, so its total can step back)."""
        calls = len(self.latencies_ms)
        total = self.worker_cpu + self.server_cpu + self.client_cpu + max(self.postgres_cpu, 0)
        return 1000 * total / calls if calls else float("nan")

    def row(self, name: str) -> list[str]:
        return [
            name,
            f"{len(self.latencies_ms):,}",
            f"{self.pct(50):.1f}",
            f"{self.pct(90):.1f}",
            f"{self.pct(99):.1f}",
            f"{max(self.latencies_ms, default=float('nan')):.0f}",
            f"{self.throughput:.1f}",
        ]

    def failed_text(self) -> str:
        if not self.failures:
            return "0"
        kinds = sorted(set(self.failures))
        return f"**{len(self.failures)}** ({', '.join(kinds)})"

    def events_text(self) -> str:
        if not self.events:
            return "-"
        return f"{median(self.events):.0f} ({min(self.events)}-{max(self.events)})"


SERIES_HEADERS = ["series", "calls", "p50 ms", "p90 ms", "p99 ms", "max ms", "calls/s"]
CPU_HEADERS = [
    *SERIES_HEADERS,
    "worker CPU ms / call",
    "dev server",
    "clients",
    "PostgreSQL",
]


def cpu_row(name: str, s: Series) -> list[str]:
    calls = len(s.latencies_ms)
    per_call = [
        f"{1000 * cpu / calls:.1f}" if calls else "nan"
        for cpu in (s.worker_cpu, s.server_cpu, s.client_cpu, s.postgres_cpu)
    ]
    return [*s.row(name), *per_call]


async def run_calls(series: Series, calls: list[Call], callers: int) -> None:
    """``calls`` split over ``callers`` sequential callers running at once."""
    latencies: list[float] = []

    async def caller(mine: list[Call]) -> None:
        for call in mine:
            t0 = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - t0) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(caller(calls[k::callers]) for k in range(callers)))
    series.wall += time.perf_counter() - start
    series.latencies_ms += latencies


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def updates_at_creation(i: int) -> int:
    """One or two updates per workflow (alternating): a live session with a short history."""
    return 1 + i % 2


@dataclass
class Populated:
    seconds: float
    block: int
    first_rate: float
    """Workflows per second over the first ``block`` completions."""
    last_rate: float
    """... and over the last ``block``: does the server slow down as it fills up?"""


@dataclass
class MemoryRow:
    moment: str
    ours: tuple[float, float]
    bare: tuple[float, float]
    server: tuple[float, float]
    cpu: tuple[float, float, float]
    """CPU seconds used so far: our worker, bare worker, dev server."""


@dataclass
class Results:
    memory: list[MemoryRow] = field(default_factory=list)
    seq: dict[str, Series] = field(default_factory=dict)
    conc: dict[str, Series] = field(default_factory=dict)
    create: dict[str, Series] = field(default_factory=dict)
    chat: dict[str, Series] = field(default_factory=dict)
    cold: dict[str, Series] = field(default_factory=dict)
    history: dict[str, float] = field(default_factory=dict)
    populated: dict[str, Populated] = field(default_factory=dict)
    populate_cpu: dict[str, tuple[float, float]] = field(default_factory=dict)
    """CPU seconds the side's worker and the dev server used while populating."""
    idle_wait: float = 0.0
    create_retries: int = 0
    """``create`` calls that answered busy and were retried (waiting for ``ready``)."""
    long_build: float = 0.0
    warnings: dict[str, int] = field(default_factory=dict)


def _goals(args: Args, res: Results) -> tuple[list[list[str]], list[tuple[bool, str]]]:
    """The goal table (series, ours, bare or reference, ratio, goal) and the pass/fail lines."""
    o_rand, b_rand = res.seq[SEQ_NAMES[0]], res.seq[SEQ_NAMES[1]]
    c_o, c_b = (res.conc[name] for name in CONC_NAMES)
    k_o, k_b, k_x = (res.create[name] for name in CREATE_NAMES)
    fresh, long_, no_idle = (res.cold[name] for name in COLD_NAMES)
    peak = res.memory[-1].ours[1]
    rows: list[list[str]] = []
    checks: list[tuple[bool, str]] = []

    def add(label: str, a: float, b: float, unit: str, op: str, goal: float | None) -> None:
        r = ratio(a, b)
        met = (
            ""
            if goal is None
            else ("yes" if (r <= goal if op == "<=" else r >= goal) else "**no**")
        )
        goal_text = "information" if goal is None else f"{op} {goal}"
        rows.append([label, f"{a:.1f} {unit}", f"{b:.1f} {unit}", f"{r:.2f}", goal_text, met])
        if goal is not None:
            checks.append((met == "yes", f"{label}: {r:.2f} {op} {goal}"))

    add("one caller, random session, p50", o_rand.pct(50), b_rand.pct(50), "ms", "<=", GOAL_LATENCY)
    add("one caller, random session, p99", o_rand.pct(99), b_rand.pct(99), "ms", "<=", GOAL_LATENCY)
    n = CONCURRENT_CALLERS
    add(
        f"{n} callers, random sessions, throughput",
        c_o.throughput,
        c_b.throughput,
        "/s",
        ">=",
        GOAL_THROUGHPUT,
    )
    add(
        f"{n} callers, CPU per call, all processes (its inverse ratio is the throughput the "
        "CPU allows)",
        c_o.cpu_ms_per_call,
        c_b.cpu_ms_per_call,
        "ms",
        "<=",
        None,
    )
    if res.chat:
        v_o, v_b = (res.chat[name] for name in CHAT_NAMES)
        add(
            f"chat visits (turn, {CHAT_THINK:.0f} s, answer), {n} callers, CPU per visit, all "
            "processes",
            v_o.cpu_ms_per_call,
            v_b.cpu_ms_per_call,
            "ms",
            "<=",
            None,
        )
    add(f"{n} callers, p50", c_o.pct(50), c_b.pct(50), "ms", "<=", None)
    add(f"{n} callers, p99", c_o.pct(99), c_b.pct(99), "ms", "<=", None)
    add(
        f"create + first turn, {n} callers, throughput",
        k_o.throughput,
        k_b.throughput,
        "/s",
        ">=",
        GOAL_CREATE,
    )
    add(f"create + first turn, {n} callers, p50", k_o.pct(50), k_b.pct(50), "ms", "<=", None)
    add(
        f"experiment: start without the header write + first turn, {n} callers, throughput",
        k_x.throughput,
        k_b.throughput,
        "/s",
        ">=",
        None,
    )
    if long_.failures:
        checks.append((False, f"cold turns into long sessions that failed: {long_.failed_text()}"))
    for q in (50, 99):
        add(
            f"cold turn, {args.long_turns}-turn session / fresh session, p{q}",
            long_.pct(q),
            fresh.pct(q),
            "ms",
            "<=",
            GOAL_LONG,
        )
    for q in (50, 99):
        add(
            f"cold turn, {args.long_turns}-turn session with idle continue-as-new off / fresh, "
            f"p{q}",
            no_idle.pct(q),
            fresh.pct(q),
            "ms",
            "<=",
            None,
        )
    add(
        "history events a cache miss replays (median of a sample)",
        res.history["ours"],
        res.history["bare"],
        "",
        "<=",
        None,
    )
    rows.append(
        [
            "worker peak RSS (`VmHWM`)",
            f"{peak:.0f} MB",
            "-",
            "-",
            f"<= {GOAL_RSS_MB} MB",
            "yes" if peak <= GOAL_RSS_MB else "**no**",
        ]
    )
    checks.append((peak <= GOAL_RSS_MB, f"our worker's peak RSS: {peak:.0f} MB <= {GOAL_RSS_MB}"))
    return rows, checks


def report(args: Args, res: Results, wall: float) -> tuple[str, list[tuple[bool, str]]]:
    n, cache, k = args.sessions, args.cache, args.long_sessions
    last = res.memory[-1]
    updates = sum(updates_at_creation(i) for i in range(n))
    goal_rows, checks = _goals(args, res)
    fresh, long_, no_idle = (res.cold[name] for name in COLD_NAMES)
    idle_after = SessionConfig().idle_continue_after
    out = [
        f"## Scale: {n:,} live sessions on one worker (workflow cache {cache:,})",
        "",
        "Our worker runs as deployed, `python -m durable_sessions.worker` in its own process, "
        "configured by `DURABLE_SESSIONS_*` variables only: `PostgresSessionStore` "
        f"(`?schema=`), `MAX_CACHED_WORKFLOWS={cache}`, SDK defaults otherwise. It holds "
        f"{n:,} live sessions (default `SessionConfig`, one-day TTL), each created with "
        f"`SessionManager.create` and given one or two `add_turn` calls of ~{TURN_BYTES} B "
        f"({args.populate_concurrency} sessions in flight). The baseline runs under the same "
        f"conditions: a second worker process hosts {n:,} bare workflows (an update that takes "
        "the same `SessionTurn` and only counts it; one or two updates each at creation) with "
        "the same cache size, so a random update misses the cache and replays history about "
        f"as often on both sides (a cache of {cache:,} for {n:,} workflows: "
        f"~{100 * min(cache, n) / n:.0f}% hits at best). That process also hosts one hot bare "
        "workflow on a worker of its own, which never leaves its cache (an update with no "
        "replay, for information); likewise one hot session. Before populating, "
        f"{k} sessions get {args.long_turns} single-turn `add_turn` calls each with the "
        f"default config ({SessionConfig().max_events_per_run} events per run at most, idle "
        f"continue-as-new after {idle_after:g} s), {k} more with idle continue-as-new off "
        f"(`idle_continue_after=None, max_events_per_run={NO_IDLE.max_events_per_run}`), and "
        f"{k} fresh sessions one turn each ({res.long_build:.0f} s). **Every session has gone "
        f"idle before it is measured**: populating takes minutes, then the benchmark waits "
        f"{res.idle_wait:.0f} s (> `idle_continue_after`) before the first measured call, as "
        "real traffic finds its sessions. One sequential caller, "
        f"{args.calls:,} calls per series in {ROUNDS} interleaved rounds (series order rotating "
        "each round), targets drawn with a seeded RNG. The benchmark process, both workers, "
        "the dev server and PostgreSQL share the machine's CPUs.",
        "",
        "### Against the goals (issue 16)",
        "",
        md_table(
            ["series", "ours", "bare / reference", "ratio", "goal", "met"], goal_rows, "lrrrll"
        ),
        "",
        "### A turn into a random session (one sequential caller)",
        "",
        md_table(CPU_HEADERS, [cpu_row(name, s) for name, s in res.seq.items()], "lrrrrrrrrrr"),
        "",
        f"History events in a workflow's current run (median of {HISTORY_SAMPLE}, before "
        f"the measured calls), i.e. what a cache miss replays: session "
        f"{res.history['ours']:.0f}, bare workflow {res.history['bare']:.0f}.",
        "",
        f"### {CONCURRENT_CALLERS} concurrent callers, random targets",
        "",
        "CPU per call (ms): the CPU time each process used while the series ran and for "
        f"{TAIL_SECONDS:.1f} s after its last call (when the flush timers its calls armed "
        "fire; the next series starts after that, so no series runs while another's deferred "
        "work does), over its calls: the side's worker (its workflow tasks, flush timers and "
        "local activities included), the dev server, this benchmark process (the clients of "
        "both sides; only one series runs at a time) and PostgreSQL (all its processes).",
        "",
        md_table(CPU_HEADERS, [cpu_row(name, s) for name, s in res.conc.items()], "lrrrrrrrrrr"),
        "",
        f"### Create + first turn ({CONCURRENT_CALLERS} callers, {CREATE_ROUNDS} interleaved "
        "rounds)",
        "",
        "Ours: `SessionManager.create` (the client stores the session's header in the store, "
        "then starts the run without waiting for its first workflow task), then `add_turn` "
        "(which that first task answers). Bare: `start_workflow` (returns once the server has "
        "the workflow; no workflow task), then one `bump` update. The experiment (information, "
        "not what `create` does): the same start without the client's header write (the run "
        "stores the header in its first workflow task, with the turn), to size what that write "
        "costs. CPU per call as in the table above (the client's header write shows under "
        "clients and PostgreSQL).",
        "",
        md_table(CPU_HEADERS, [cpu_row(name, s) for name, s in res.create.items()], "lrrrrrrrrrr"),
        "",
        f"### Chat visits ({CONCURRENT_CALLERS} callers, {CHAT_ROUNDS} interleaved rounds)",
        "",
        f"A visit is a turn, {CHAT_THINK:.0f} s of the model thinking, then its answer, into one "
        "random session (bare: two updates into one random workflow), as a chat front end "
        "sends them; the latency is the whole visit's. The callers mostly wait, so the CPU "
        "per visit (as above, its flush timers included) is the figure to read.",
        "",
        md_table(CPU_HEADERS, [cpu_row(name, s) for name, s in res.chat.items()], "lrrrrrrrrrr"),
        "",
        "### Cold turns: long sessions vs fresh ones",
        "",
        f"One `add_turn` into each of the {k} sessions of a kind, in {COLD_PASSES} passes "
        "(before, between and after the measured rounds above, so each pass finds them "
        "evicted from the cache by the traffic since); the kinds interleaved. Events: the "
        "current run's history length just before the call (median, range).",
        "",
        md_table(
            [*SERIES_HEADERS, "events in the run", "failed calls"],
            [[*s.row(name), s.events_text(), s.failed_text()] for name, s in res.cold.items()],
            "lrrrrrrrr",
        ),
        "",
        f"{args.long_turns}-turn sessions / fresh ones: p50 "
        f"{ratio(long_.pct(50), fresh.pct(50)):.2f}, p99 {ratio(long_.pct(99), fresh.pct(99)):.2f}"
        f"; with idle continue-as-new off: p50 {ratio(no_idle.pct(50), fresh.pct(50)):.2f}, "
        f"p99 {ratio(no_idle.pct(99), fresh.pct(99)):.2f}.",
        "",
        "### Memory (resident set, MB)",
        "",
        "`VmRSS` from `/proc/<pid>/status` at each moment; the last row is `VmHWM`, each "
        "process's peak over its life.",
        "",
        md_table(
            ["moment", "our worker", "bare worker", "dev server"],
            [
                [m.moment, f"{m.ours[0]:.0f}", f"{m.bare[0]:.0f}", f"{m.server[0]:.0f}"]
                for m in res.memory[:-1]
            ]
            + [
                [
                    "**peak (`VmHWM`)**",
                    f"**{last.ours[1]:.0f}**",
                    f"{last.bare[1]:.0f}",
                    f"{last.server[1]:.0f}",
                ]
            ],
            "lrrr",
        ),
        "",
        "### Populating",
        "",
        md_table(
            [
                "side",
                "workflows",
                "updates at creation",
                "wall s",
                "workflows/s",
                f"first {res.populated['ours'].block:,}, /s",
                f"last {res.populated['ours'].block:,}, /s",
                "worker CPU ms / workflow",
                "dev server CPU ms / workflow",
            ],
            [
                [
                    label,
                    f"{n:,}",
                    f"{updates:,}",
                    f"{res.populated[side].seconds:.0f}",
                    f"{n / res.populated[side].seconds:.0f}",
                    f"{res.populated[side].first_rate:.0f}",
                    f"{res.populated[side].last_rate:.0f}",
                    f"{1000 * res.populate_cpu[side][0] / n:.1f}",
                    f"{1000 * res.populate_cpu[side][1] / n:.1f}",
                ]
                for side, label in (
                    ("ours", "sessions (`create`, then `add_turn`)"),
                    ("bare", "bare workflows (start, then `bump`)"),
                )
            ],
            "lrrrrrrrr",
        ),
        "",
        f"Warnings in the worker logs (a workflow task that outlived its "
        f"{WORKFLOW_TASK_TIMEOUT.total_seconds():g} s timeout shows as "
        '"Task not found when completing"): ours '
        f"{res.warnings.get('ours', -1)}, bare {res.warnings.get('bare', -1)}. "
        f"`create` calls that answered `SessionBusyError` and were retried: "
        f"{res.create_retries}.",
        "",
        "### Goals",
        "",
    ]
    out += [goal_line(ok, label) for ok, label in checks]
    out += ["", f"Benchmark wall time: {wall:.0f} s"]
    return "\n".join(out), checks

"""Benchmark scale: 10,000 live sessions on one worker whose workflow cache holds 500.

Run ``python -m bench.bench_scale`` from the repository root; ``--sessions N``, ``--cache N``
and ``--calls N`` shrink it for a smoke run. Progress goes to stderr, a Markdown section to
stdout; the exit status is 1 when a goal is missed:

* the worker's peak resident memory (``VmHWM``) stays <= 300 MB with 10,000 live sessions;
* ``add_turn`` into a random session (one sequential caller) has p99 <= 2x the p99 of a bare
  no-op update into a random one of 10,000 bare workflows on a worker with the same cache.

Our worker is what a deployment runs: ``python -m durable_sessions.worker`` in its own process,
configured only by ``DURABLE_SESSIONS_*`` variables (a ``PostgresSessionStore`` in a fresh
schema through ``?schema=``, ``MAX_CACHED_WORKFLOWS`` = the cache size, SDK defaults
otherwise). The baseline runs under the same conditions: a second process (this module with
``--bare-worker``) hosts ``bench.bare.BareCounterWorkflow`` with the same cache size and as
many live workflows, so a random update misses its cache (and replays the workflow's history)
about as often as ours does. The same process has a second worker, on its own task queue,
holding one "hot" bare workflow that never leaves its cache: a bare update with no replay, for
information (as is one hot session on our worker). Both sides are populated the same way
(bounded concurrency, one or two updates each, sessions with the default one-day TTL), then
measured in interleaved rounds of sequential calls to seeded random targets, the order rotating
each round so drift touches every series alike. A second scenario, 10 concurrent callers on
random targets, is reported for information. Memory is ``VmRSS`` / ``VmHWM`` from
``/proc/<pid>/status``, so the benchmark needs Linux.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from bench.bare import BareCounterWorkflow
from bench.common import (
    EXIT_GOAL_MISSED,
    EXIT_OK,
    REPO_ROOT,
    TextGenerator,
    goal_line,
    log,
    md_table,
    median,
    percentile,
    postgres_dsn,
    postgres_store,
    run_main,
    start_dev_server,
)
from durable_sessions.client import WORKFLOW_TASK_TIMEOUT, SessionManager
from durable_sessions.models import SessionConfig, SessionTurn
from durable_sessions.stores.base import SessionStore
from durable_sessions.worker import workflow_runner

SESSIONS = 10_000
CACHE = 500
CALLS = 1_000
"""Measured sequential calls per series (split over ``ROUNDS``)."""
ROUNDS = 10
CONCURRENT_CALLERS = 10
CONCURRENT_ROUNDS = 5
POPULATE_CONCURRENCY = 50
PROGRESS_EVERY = 1_000
TURN_BYTES = 500
TEXT_POOL = 1_024
SEED = 11
GOAL_RSS_MB = 300
GOAL_P99 = 2.0
RPC_TIMEOUT = timedelta(seconds=30)
HISTORY_SAMPLE = 10
"""Workflows per side whose history length is reported."""
WORKER_START_TIMEOUT = 60.0

Call = Callable[[], Awaitable[object]]

# ------------------------------------------------------------------------------------------
# The bare worker process (``--bare-worker``)
# ------------------------------------------------------------------------------------------

READY_LINE = "worker polling"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


async def bare_worker(address: str, task_queue: str, hot_task_queue: str, cache: int) -> None:
    """Host ``BareCounterWorkflow`` on ``task_queue`` with a ``cache``-sized workflow cache (and
    on ``hot_task_queue`` with the default cache, for the always-cached workflow) until
    SIGTERM."""
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    workers = [
        Worker(
            client,
            task_queue=tq,
            workflows=[BareCounterWorkflow],
            workflow_runner=workflow_runner(),
            max_cached_workflows=size,
        )
        for tq, size in ((task_queue, cache), (hot_task_queue, 1_000))
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with workers[0], workers[1]:
        print(f"{READY_LINE} task queues {task_queue!r}, {hot_task_queue!r}", flush=True)
        await stop.wait()


# ------------------------------------------------------------------------------------------
# Processes and their memory
# ------------------------------------------------------------------------------------------


def memory_mb(pid: int | None) -> tuple[float, float]:
    """``(VmRSS, VmHWM)`` of a process in MB (MiB), NaN when it is gone."""
    nan = float("nan")
    if pid is None:
        return nan, nan
    values: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    except (OSError, ValueError):
        return nan, nan
    return values.get("VmRSS", nan), values.get("VmHWM", nan)


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time a process has used so far, NaN when it is gone."""
    if pid is None:
        return float("nan")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    # After the command: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dev_server_pid() -> int | None:
    """The Temporal dev server started by this process (a child running ``start-dev``)."""
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = stat.rsplit(")", 1)[1].split()[1]
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if ppid == me and b"start-dev" in cmdline:
            return int(entry.name)
    return None


class WorkerProcess:
    """A worker in its own process; its output goes to a log file, ``wait_ready`` waits until
    it polls."""

    def __init__(self, name: str, argv: list[str], environ: dict[str, str], log_path: Path):
        self.name = name
        self.argv = argv
        self.environ = environ
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def spawn(self) -> None:
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                self.argv, env=self.environ, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT
            )

    async def wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while READY_LINE.encode() not in self.log_path.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start:\n{self.tail()}")
            await asyncio.sleep(0.05)

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with status {self.proc.returncode}:\n{self.tail()}"
            )

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def warnings(self) -> int:
        """``WARN`` and ``ERROR`` lines in the log (e.g. a workflow task that outlived its
        timeout: "Task not found when completing")."""
        try:
            text = ANSI.sub("", self.log_path.read_text(errors="replace"))
        except OSError:
            return -1
        return sum(1 for line in text.splitlines() if " WARN " in line or " ERROR " in line)

    def memory(self) -> tuple[float, float]:
        return memory_mb(self.pid)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not left within 20 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            log(f"{self.name} ignored SIGTERM for 20 s: killing it")
            self.proc.kill()
            self.proc.wait()


def with_schema(dsn: str, schema: str) -> str:
    """The store URL for ``dsn`` confined to ``schema`` (``?schema=``, see ``store_from_url``)."""
    parts = urlsplit(dsn)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "schema"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("schema", schema)])))


def clean_environ(**settings: str) -> dict[str, str]:
    """This process's environment without inherited ``DURABLE_SESSIONS_*`` settings, plus
    ``settings`` (upper-cased, prefixed)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_SESSIONS_")}
    environ.update({f"DURABLE_SESSIONS_{k.upper()}": v for k, v in settings.items()})
    return environ


# ------------------------------------------------------------------------------------------
# Populating and measuring
# ------------------------------------------------------------------------------------------


class Turns:
    """Fresh ``SessionTurn`` objects (new ``turn_id`` each) over a pool of seeded texts."""

    def __init__(self, seed: int) -> None:
        texts = TextGenerator(seed)
        self._pool = [texts.text(TURN_BYTES) for _ in range(TEXT_POOL)]
        self._i = 0

    def next(self) -> SessionTurn:
        self._i += 1
        role = "user" if self._i % 2 else "assistant"
        return SessionTurn(role=role, content=self._pool[self._i % len(self._pool)])


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


async def populate(
    label: str, n: int, make_one: Callable[[int], Awaitable[None]], in_flight: int
) -> Populated:
    """Run ``make_one(0..n-1)`` with ``in_flight`` calls at once."""
    indexes: Iterator[int] = iter(range(n))
    block = max(1, min(PROGRESS_EVERY, n // 10))
    done = 0
    start = time.perf_counter()
    stamps: dict[int, float] = {0: start}

    async def runner() -> None:
        nonlocal done
        for i in indexes:
            await make_one(i)
            done += 1
            now = time.perf_counter()
            if done in (block, n - block, n):
                stamps[done] = now
            if done % PROGRESS_EVERY == 0 or done == n:
                log(f"  {label}: {done:,}/{n:,} ({done / (now - start):.0f}/s)")

    await asyncio.gather(*(runner() for _ in range(in_flight)))
    return Populated(
        stamps[n] - start,
        block,
        block / (stamps[block] - start),
        block / (stamps[n] - stamps[n - block]),
    )


@dataclass
class Series:
    """Every measured call of one series, and the wall time its calls took."""

    latencies_ms: list[float] = field(default_factory=list)
    wall: float = 0.0

    def pct(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.wall if self.wall else float("nan")

    def row(self, name: str) -> list[str]:
        return [
            name,
            f"{len(self.latencies_ms):,}",
            f"{self.pct(50):.1f}",
            f"{self.pct(90):.1f}",
            f"{self.pct(99):.1f}",
            f"{max(self.latencies_ms):.0f}",
            f"{self.throughput:.1f}",
        ]


SERIES_HEADERS = ["series", "calls", "p50 ms", "p90 ms", "p99 ms", "max ms", "calls/s"]


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


async def history_lengths(client: Client, ids: list[str], rng: random.Random) -> float:
    """Median number of events in the current run of a few of ``ids``."""
    lengths = []
    for wid in rng.sample(ids, min(HISTORY_SAMPLE, len(ids))):
        history = await client.get_workflow_handle(wid).fetch_history()
        lengths.append(len(history.events))
    return median(lengths)


# ------------------------------------------------------------------------------------------
# The benchmark
# ------------------------------------------------------------------------------------------

SEQ_NAMES = (
    "ours, random session",
    "bare, random workflow",
    "bare, one hot workflow",
    "ours, one hot session",
)


@dataclass
class Args:
    sessions: int
    cache: int
    calls: int
    log_dir: Path | None = None
    populate_concurrency: int = POPULATE_CONCURRENCY


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
    history: dict[str, float] = field(default_factory=dict)
    populated: dict[str, Populated] = field(default_factory=dict)
    populate_cpu: dict[str, tuple[float, float]] = field(default_factory=dict)
    """CPU seconds the side's worker and the dev server used while populating."""
    warnings: dict[str, int] = field(default_factory=dict)


class ScaleBench:
    """Both workers, the two populations and the measured calls."""

    def __init__(
        self,
        args: Args,
        client: Client,
        store: SessionStore,
        workers: tuple[WorkerProcess, WorkerProcess],
        queues: tuple[str, str, str],
    ) -> None:
        self.args = args
        self.client = client
        self.ours, self.bare = workers
        self.ours_tq, self.bare_tq, self.hot_tq = queues
        self.manager = SessionManager(client, store, SessionConfig(), self.ours_tq, call_timeout=30)
        self.turns = Turns(SEED)
        self.rng = random.Random(SEED)
        self.server_pid = dev_server_pid()
        self.results = Results()
        self.session_ids: list[str] = [""] * args.sessions
        self.bare_ids: list[str] = [""] * args.sessions
        self.tag = self.ours_tq.rsplit("-", 1)[-1]

    # ---------------------------------------------------------------- helpers

    def snapshot(self, moment: str) -> None:
        for proc in (self.ours, self.bare):
            proc.check()
        cpu = (cpu_seconds(self.ours.pid), cpu_seconds(self.bare.pid), cpu_seconds(self.server_pid))
        row = MemoryRow(
            moment, self.ours.memory(), self.bare.memory(), memory_mb(self.server_pid), cpu
        )
        self.results.memory.append(row)
        log(
            f"  memory, {moment}: ours {row.ours[0]:.0f} MB (peak {row.ours[1]:.0f}), "
            f"bare {row.bare[0]:.0f} MB, dev server {row.server[0]:.0f} MB; CPU s so far: "
            f"ours {cpu[0]:.0f}, bare {cpu[1]:.0f}, dev server {cpu[2]:.0f}"
        )

    def cpu(self, worker: WorkerProcess) -> tuple[float, float]:
        return cpu_seconds(worker.pid), cpu_seconds(self.server_pid)

    def cpu_since(self, worker: WorkerProcess, start: tuple[float, float]) -> tuple[float, float]:
        now = self.cpu(worker)
        return now[0] - start[0], now[1] - start[1]

    def add_turn(self, session_id: str) -> Call:
        turn = self.turns.next()
        return lambda: self.manager.add_turn(session_id, turn)

    def bump(self, workflow_id: str) -> Call:
        handle: WorkflowHandle[BareCounterWorkflow, int] = self.client.get_workflow_handle_for(
            BareCounterWorkflow.run, workflow_id
        )
        turn = self.turns.next()
        return lambda: handle.execute_update(
            BareCounterWorkflow.bump, turn, rpc_timeout=RPC_TIMEOUT
        )

    async def start_bare(self, workflow_id: str, task_queue: str) -> None:
        await self.client.start_workflow(
            BareCounterWorkflow.run,
            id=workflow_id,
            task_queue=task_queue,
            task_timeout=WORKFLOW_TASK_TIMEOUT,
        )

    async def make_session(self, i: int) -> None:
        state = await self.manager.create(f"scale-user-{i}")
        self.session_ids[i] = state.session_id
        for _ in range(updates_at_creation(i)):
            await self.add_turn(state.session_id)()

    async def make_bare(self, i: int) -> None:
        wid = f"bench-scale-bare-{i}-{self.tag}"
        await self.start_bare(wid, self.bare_tq)
        self.bare_ids[i] = wid
        for _ in range(updates_at_creation(i)):
            await self.bump(wid)()

    # ---------------------------------------------------------------- phases

    async def run(self) -> Results:
        args, res = self.args, self.results
        n = args.sessions
        log(f"starting the workers (cache {args.cache:,}) ...")
        self.ours.spawn()
        self.bare.spawn()
        await asyncio.gather(self.ours.wait_ready(), self.bare.wait_ready())
        self.snapshot("workers started, idle")

        settle = SessionConfig().flush_interval + 1.0  # the last batches' flushes land
        log(f"creating {n:,} sessions ({args.populate_concurrency} in flight) ...")
        cpu0 = self.cpu(self.ours)
        res.populated["ours"] = await populate(
            "sessions", n, self.make_session, args.populate_concurrency
        )
        res.populate_cpu["ours"] = self.cpu_since(self.ours, cpu0)
        await asyncio.sleep(settle)
        self.snapshot(f"{n:,} sessions created")
        log(f"starting {n:,} bare workflows ({args.populate_concurrency} in flight) ...")
        cpu0 = self.cpu(self.bare)
        res.populated["bare"] = await populate(
            "bare workflows", n, self.make_bare, args.populate_concurrency
        )
        res.populate_cpu["bare"] = self.cpu_since(self.bare, cpu0)
        await asyncio.sleep(settle)
        self.snapshot(f"{n:,} bare workflows created")
        res.history["ours"] = await history_lengths(self.client, self.session_ids, self.rng)
        res.history["bare"] = await history_lengths(self.client, self.bare_ids, self.rng)

        # One hot target per side, warmed up; called every round, it stays cached.
        hot_session = (await self.manager.create("scale-user-hot")).session_id
        hot_bare = f"bench-scale-hot-{self.tag}"
        await self.start_bare(hot_bare, self.hot_tq)
        for _ in range(3):
            await self.add_turn(hot_session)()
            await self.bump(hot_bare)()
        makers: dict[str, Callable[[], Call]] = dict(
            zip(
                SEQ_NAMES,
                (
                    lambda: self.add_turn(self.rng.choice(self.session_ids)),
                    lambda: self.bump(self.rng.choice(self.bare_ids)),
                    lambda: self.bump(hot_bare),
                    lambda: self.add_turn(hot_session),
                ),
                strict=True,
            )
        )

        per_round = max(1, args.calls // ROUNDS)
        for r in range(ROUNDS):
            order = SEQ_NAMES[r % 4 :] + SEQ_NAMES[: r % 4]
            log(f"sequential round {r + 1}/{ROUNDS}: {per_round} calls per series ...")
            for name in order:
                calls = [makers[name]() for _ in range(per_round)]
                await run_calls(res.seq.setdefault(name, Series()), calls, 1)
        for name in SEQ_NAMES:
            self.log_series(name, res.seq[name])

        random_names = SEQ_NAMES[:2]
        per_round = max(CONCURRENT_CALLERS, args.calls // CONCURRENT_ROUNDS)
        for r in range(CONCURRENT_ROUNDS):
            log(f"{CONCURRENT_CALLERS} callers, round {r + 1}/{CONCURRENT_ROUNDS} ...")
            for name in random_names if r % 2 == 0 else random_names[::-1]:
                calls = [makers[name]() for _ in range(per_round)]
                await run_calls(res.conc.setdefault(name, Series()), calls, CONCURRENT_CALLERS)
        for name in random_names:
            self.log_series(f"{CONCURRENT_CALLERS} callers, {name}", res.conc[name])

        await asyncio.sleep(settle)
        self.snapshot("after the measured calls")
        return res

    @staticmethod
    def log_series(name: str, s: Series) -> None:
        log(f"  {name}: p50 {s.pct(50):.1f} ms, p99 {s.pct(99):.1f} ms, {s.throughput:.1f}/s")


async def main(args: Args) -> int:
    started = time.perf_counter()
    dsn = await postgres_dsn()
    log("starting the Temporal dev server ...")
    env = await start_dev_server()
    address = env.client.service_client.config.target_host
    tag = uuid.uuid4().hex[:8]
    queues = (f"bench-scale-ours-{tag}", f"bench-scale-bare-{tag}", f"bench-scale-hot-{tag}")
    try:
        async with postgres_store(dsn, "bench_scale") as store:
            keep = args.log_dir
            if keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
            logs = (
                contextlib.nullcontext(str(keep))
                if keep is not None
                else tempfile.TemporaryDirectory(prefix="bench_scale_")
            )
            with logs as tmp:
                ours = WorkerProcess(
                    "our worker",
                    [sys.executable, "-m", "durable_sessions.worker"],
                    clean_environ(
                        temporal_address=address,
                        task_queue=queues[0],
                        database_url=with_schema(dsn, store.schema),
                        max_cached_workflows=str(args.cache),
                    ),
                    Path(tmp) / "ours.log",
                )
                bare = WorkerProcess(
                    "bare worker",
                    [
                        *(sys.executable, "-m", "bench.bench_scale", "--bare-worker", address),
                        *(queues[1], queues[2], "--cache", str(args.cache)),
                    ],
                    clean_environ(),
                    Path(tmp) / "bare.log",
                )
                bench = ScaleBench(args, env.client, store, (ours, bare), queues)
                results = bench.results
                try:
                    await bench.run()
                finally:
                    log("stopping the workers ...")
                    ours.stop()
                    bare.stop()
                    results.warnings = {"ours": ours.warnings(), "bare": bare.warnings()}
    finally:
        await env.shutdown()
    markdown, checks = report(args, results, time.perf_counter() - started)
    print(markdown)
    return EXIT_OK if all(ok for ok, _ in checks) else EXIT_GOAL_MISSED


def per_slot_kb(res: Results, side: str, cache: int, n: int) -> float:
    """RSS growth of a worker from idle to just after its side was populated, per cache slot."""
    idle = res.memory[0]
    after = res.memory[1] if side == "ours" else res.memory[2]
    grown = after.ours[0] - idle.ours[0] if side == "ours" else after.bare[0] - idle.bare[0]
    return 1024 * grown / max(1, min(cache, n))


def report(args: Args, res: Results, wall: float) -> tuple[str, list[tuple[bool, str]]]:
    n, cache = args.sessions, args.cache
    seq, conc = res.seq, res.conc
    o_rand, b_rand, b_hot, o_hot = (seq[name] for name in SEQ_NAMES)
    p99_ratio = ratio(o_rand.pct(99), b_rand.pct(99))
    p50_ratio = ratio(o_rand.pct(50), b_rand.pct(50))
    last = res.memory[-1]
    peak_mb = last.ours[1]
    updates = sum(updates_at_creation(i) for i in range(n))
    c_o, c_b = (conc[name] for name in SEQ_NAMES[:2])
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
        "workflow on a worker of its own, which never leaves its cache: an update with no "
        "replay, for information; likewise one hot session (it takes every one of its series' "
        "turns, so it continues-as-new every "
        f"{SessionConfig().max_updates_per_run:,} updates as designed). One sequential caller, "
        f"{args.calls:,} calls per series in {ROUNDS} interleaved rounds (series order rotating "
        "each round), targets drawn with a seeded RNG. The benchmark process, both workers, "
        "the dev server and PostgreSQL share the machine's CPUs.",
        "",
        "### A turn into a random session (one sequential caller)",
        "",
        md_table(SERIES_HEADERS, [s.row(name) for name, s in seq.items()], "lrrrrrr"),
        "",
        "- **Goal ratio**: p99 of ours (random session) / p99 of the like-for-like bare "
        f"baseline (random among {n:,}, same cache): **{p99_ratio:.2f}** "
        f"(p50: {p50_ratio:.2f}).",
        "- Information, no goal: ours (random session) / the hot bare workflow (always "
        f"cached): p99 {ratio(o_rand.pct(99), b_hot.pct(99)):.2f}, p50 "
        f"{ratio(o_rand.pct(50), b_hot.pct(50)):.2f}; one hot session / the hot bare "
        f"workflow: p99 {ratio(o_hot.pct(99), b_hot.pct(99)):.2f}, p50 "
        f"{ratio(o_hot.pct(50), b_hot.pct(50)):.2f}.",
        f"- History events in a workflow's current run (median of {HISTORY_SAMPLE}, before "
        f"the measured calls), i.e. what a cache miss replays: session "
        f"{res.history['ours']:.0f}, bare workflow {res.history['bare']:.0f}.",
        "",
        f"### {CONCURRENT_CALLERS} concurrent callers, random targets (information, no goal)",
        "",
        md_table(SERIES_HEADERS, [s.row(name) for name, s in conc.items()], "lrrrrrr"),
        "",
        f"Ours / bare: p50 {ratio(c_o.pct(50), c_b.pct(50)):.2f}, p99 "
        f"{ratio(c_o.pct(99), c_b.pct(99)):.2f}, throughput "
        f"{ratio(c_o.throughput, c_b.throughput):.2f}.",
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
                for m in res.memory
            ]
            + [
                [
                    "**peak (`VmHWM`)**",
                    f"**{peak_mb:.0f}**",
                    f"{last.bare[1]:.0f}",
                    f"{last.server[1]:.0f}",
                ]
            ],
            "lrrr",
        ),
        "",
        f"Growth from idle to after populating, per slot of the {min(cache, n):,}-workflow "
        f"cache: ours {per_slot_kb(res, 'ours', cache, n):.0f} KB, bare "
        f"{per_slot_kb(res, 'bare', cache, n):.0f} KB (an upper bound on what one cached "
        "workflow costs: connection pools, thread stacks and allocator arenas grow too).",
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
        f"The dev server (in-memory persistence) held {2 * n + 2:,} workflows at the end, "
        f"in {last.server[0]:,.0f} MB. Warnings in the worker logs (a workflow task that "
        f"outlived its {WORKFLOW_TASK_TIMEOUT.total_seconds():g} s timeout shows as "
        '"Task not found when completing"): ours '
        f"{res.warnings.get('ours', -1)}, bare {res.warnings.get('bare', -1)}.",
        "",
        "### Goals",
        "",
    ]
    checks = [
        (
            peak_mb <= GOAL_RSS_MB,
            f"our worker's peak RSS with {n:,} live sessions: {peak_mb:.0f} MB <= {GOAL_RSS_MB} MB",
        ),
        (
            p99_ratio <= GOAL_P99,
            "p99 of a turn into a random session / of a bare no-op update into a random "
            f"workflow (same cache): {p99_ratio:.2f} <= {GOAL_P99}",
        ),
    ]
    out += [goal_line(ok, label) for ok, label in checks]
    out += ["", f"Benchmark wall time: {wall:.0f} s"]
    return "\n".join(out), checks


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=SESSIONS, help="live sessions per side")
    parser.add_argument("--cache", type=int, default=CACHE, help="max cached workflows")
    parser.add_argument("--calls", type=int, default=CALLS, help="measured calls per series")
    parser.add_argument(
        "--populate-concurrency", type=int, default=POPULATE_CONCURRENCY, metavar="N"
    )
    parser.add_argument("--log-dir", type=Path, help="keep the workers' logs here")
    parser.add_argument(
        "--bare-worker",
        nargs=3,
        metavar=("ADDRESS", "TASK_QUEUE", "HOT_TASK_QUEUE"),
        help="internal: run the baseline's worker process",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    _ns = parse_args()
    if _ns.bare_worker:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(bare_worker(*_ns.bare_worker, cache=_ns.cache))
        sys.stdout.flush()
        os._exit(0)
    run_main(
        lambda: main(
            Args(_ns.sessions, _ns.cache, _ns.calls, _ns.log_dir, _ns.populate_concurrency)
        )
    )

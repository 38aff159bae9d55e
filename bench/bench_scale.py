"""Benchmark scale: 10,000 live sessions on one worker whose workflow cache holds 500.

Run ``python -m bench.bench_scale`` from the repository root; ``--sessions N``, ``--cache N``,
``--calls N`` and ``--long-sessions N`` shrink it for a smoke run. Progress goes to stderr, a
Markdown section to stdout; the exit status is 1 when a goal of issue 16 is missed:

* one caller, a turn into a random session: p50 and p99 <= 1.2x a bare no-op update into a
  random one of as many bare workflows on a worker with the same cache;
* 10 callers, random sessions: throughput >= 0.8x bare;
* create + first turn (10 callers): throughput >= 0.8x bare start + first update;
* a cold turn into a session that took 500 turns (default config, so the idle continue-as-new
  has run) costs <= 1.2x a cold turn into a fresh session, p50 and p99 (the same with idle
  continue-as-new off is reported for information, with the events each run holds);
* the worker's peak resident memory (``VmHWM``) stays <= 300 MB.

For information it also measures chat visits (10 callers, each visit a turn, 1 s, then its
answer into one random session; bare: two updates 1 s apart), whose figure is the CPU per visit.

Our worker is what a deployment runs: ``python -m durable_sessions.worker`` in its own process,
configured only by ``DURABLE_SESSIONS_*`` variables (a ``PostgresSessionStore`` in a fresh
schema through ``?schema=``, ``MAX_CACHED_WORKFLOWS`` = the cache size, SDK defaults
otherwise). The baseline runs under the same conditions: a second process (this module with
``--bare-worker``) hosts ``bench.bare.BareCounterWorkflow`` with the same cache size and as
many live workflows, so a random update misses its cache (and replays the workflow's history)
about as often as ours does. The same process has a second worker, on its own task queue,
holding one "hot" bare workflow that never leaves its cache. Both sides are populated the same
way (bounded concurrency, one or two updates each), then left idle for longer than
``idle_continue_after``, then measured in interleaved rounds of sequential calls to seeded
random targets, the order rotating each round so drift touches every series alike. Memory is
``VmRSS`` / ``VmHWM`` from ``/proc/<pid>/status``, so the benchmark needs Linux. The processes
are in ``_scale_procs``, the series and the report in ``_scale_report``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError

from bench._scale_procs import (
    WorkerProcess,
    bare_worker,
    clean_environ,
    cpu_seconds,
    dev_server_pid,
    memory_mb,
    postgres_cpu_seconds,
    with_schema,
)
from bench._scale_report import (
    CHAT_NAMES,
    CHAT_ROUNDS,
    CHAT_THINK,
    COLD_NAMES,
    COLD_PASSES,
    CONC_NAMES,
    CONCURRENT_CALLERS,
    CONCURRENT_ROUNDS,
    CREATE_NAMES,
    CREATE_ROUNDS,
    HISTORY_SAMPLE,
    LONG_SESSIONS,
    LONG_TURNS,
    NO_IDLE,
    POPULATE_CONCURRENCY,
    ROUNDS,
    SEQ_NAMES,
    TAIL_SECONDS,
    TURN_BYTES,
    Args,
    Call,
    MemoryRow,
    Populated,
    Results,
    Series,
    report,
    run_calls,
    updates_at_creation,
)
from bench.bare import BareCounterWorkflow
from bench.common import (
    EXIT_GOAL_MISSED,
    EXIT_OK,
    TextGenerator,
    log,
    median,
    postgres_dsn,
    postgres_store,
    run_main,
    start_dev_server,
)
from durable_sessions.client import WORKFLOW_TASK_TIMEOUT, SessionManager
from durable_sessions.core.clock import utcnow
from durable_sessions.errors import SessionBusyError, SessionError
from durable_sessions.models import (
    SessionConfig,
    SessionState,
    SessionStatus,
    SessionTurn,
    new_id,
)
from durable_sessions.stores.base import SessionStore
from durable_sessions.workflows._patches import RUN_FEATURES
from durable_sessions.workflows.messages import WORKFLOW_TYPE, SessionWorkflowInput
from durable_sessions.workflows.session import SESSION_STATUS, SESSION_USER_ID

SESSIONS = 10_000
CACHE = 500
CALLS = 1_000
"""Measured sequential calls per series (split over ``ROUNDS``)."""
PROGRESS_EVERY = 1_000
TEXT_POOL = 1_024
SEED = 11
RPC_TIMEOUT = timedelta(seconds=30)


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


async def history_lengths(client: Client, ids: list[str], rng: random.Random) -> float:
    """Median number of events in the current run of a few of ``ids``."""
    lengths = []
    for wid in rng.sample(ids, min(HISTORY_SAMPLE, len(ids))):
        history = await client.get_workflow_handle(wid).fetch_history()
        lengths.append(len(history.events))
    return median(lengths)


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
        self.cold_ids: dict[str, list[str]] = {}
        self.created = 0

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

    async def measured(self, series: Series, name: str, calls: Awaitable[None]) -> None:
        """Run ``calls`` of the series ``name``, adding to ``series`` the CPU each process used
        meanwhile and for ``TAIL_SECONDS`` after (its deferred flushes): the side's worker, the
        dev server, this process (the clients) and PostgreSQL."""
        worker = self.ours if name.startswith("ours") else self.bare
        start = self.cpu(worker)
        clients, postgres = time.process_time(), postgres_cpu_seconds()
        await calls
        await asyncio.sleep(TAIL_SECONDS)
        worker_cpu, server_cpu = self.cpu_since(worker, start)
        series.worker_cpu += worker_cpu
        series.server_cpu += server_cpu
        series.client_cpu += time.process_time() - clients
        series.postgres_cpu += postgres_cpu_seconds() - postgres

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

    @staticmethod
    def visit(call: Callable[[str], Call], target: str) -> Call:
        """A chat visit: a turn, ``CHAT_THINK`` seconds, then its answer, into ``target``."""
        turn, answer = call(target), call(target)

        async def both() -> None:
            await turn()
            await asyncio.sleep(CHAT_THINK)
            await answer()

        return both

    async def start_bare(self, workflow_id: str, task_queue: str) -> None:
        await self.client.start_workflow(
            BareCounterWorkflow.run,
            id=workflow_id,
            task_queue=task_queue,
            task_timeout=WORKFLOW_TASK_TIMEOUT,
        )

    async def create(self, user_id: str) -> str:
        """``SessionManager.create``, retried as a caller would when it answers busy (its first
        workflow task failed, e.g. past the task timeout on a saturated worker): the run exists,
        so the retry waits for its ``ready`` update. Retries are counted and reported."""
        sid = new_id()
        try:
            await self.manager.create(user_id, session_id=sid)
            return sid
        except SessionBusyError:
            pass
        handle = self.client.get_workflow_handle(sid)
        for attempt in range(1, 11):
            self.results.create_retries += 1
            log(f"  create answered busy: retry {attempt} (waiting for ready)")
            await asyncio.sleep(1.0)
            with contextlib.suppress(RPCError):
                await handle.execute_update("ready", rpc_timeout=RPC_TIMEOUT)
                return sid
        raise SessionBusyError("create stayed busy after 10 retries", session_id=sid)

    async def make_session(self, i: int) -> None:
        sid = await self.create(f"scale-user-{i}")
        self.session_ids[i] = sid
        for _ in range(updates_at_creation(i)):
            await self.add_turn(sid)()

    async def make_bare(self, i: int) -> None:
        wid = f"bench-scale-bare-{i}-{self.tag}"
        await self.start_bare(wid, self.bare_tq)
        self.bare_ids[i] = wid
        for _ in range(updates_at_creation(i)):
            await self.bump(wid)()

    async def create_and_turn(self) -> None:
        self.created += 1
        sid = await self.create(f"scale-user-new-{self.created}")
        await self.manager.add_turn(sid, self.turns.next())

    async def start_no_wait_and_turn(self) -> None:
        """An experiment on the create path (not what ``create`` does): start the run as
        ``create`` does, without the client's header write (the run stores the header in its
        first workflow task, alongside the first turn)."""
        self.created += 1
        now = utcnow()
        cfg = SessionConfig()
        state = SessionState(
            session_id=new_id(),
            user_id=f"scale-user-nowait-{self.created}",
            created_at=now,
            updated_at=now,
            expires_at=now + timedelta(seconds=cfg.session_ttl),
        )
        await self.client.start_workflow(
            WORKFLOW_TYPE,
            SessionWorkflowInput(state=state, config=cfg, features=RUN_FEATURES),
            id=state.session_id,
            task_queue=self.ours_tq,
            task_timeout=WORKFLOW_TASK_TIMEOUT,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(SESSION_USER_ID, state.user_id),
                    SearchAttributePair(SESSION_STATUS, SessionStatus.ACTIVE.value),
                ]
            ),
        )
        await self.manager.add_turn(state.session_id, self.turns.next())

    async def start_and_bump(self) -> None:
        self.created += 1
        wid = f"bench-scale-new-{self.created}-{self.tag}"
        await self.start_bare(wid, self.bare_tq)
        await self.bump(wid)()

    async def make_long(self, config: SessionConfig | None, turns: int) -> str:
        state = await self.manager.create("scale-user-long", config=config)
        for _ in range(turns):
            await self.add_turn(state.session_id)()
        return state.session_id

    async def build_long(self) -> None:
        """The sessions of the cold-turn comparison: ``long_sessions`` each of 500 turns
        (default config), 500 turns (idle continue-as-new off), and fresh (one turn)."""
        args, k = self.args, self.args.long_sessions
        log(f"building {k} x 2 sessions of {args.long_turns} turns and {k} fresh ones ...")
        t0 = time.perf_counter()
        built = await asyncio.gather(
            *(self.make_long(None, 1) for _ in range(k)),
            *(self.make_long(None, args.long_turns) for _ in range(k)),
            *(self.make_long(NO_IDLE, args.long_turns) for _ in range(k)),
        )
        self.cold_ids = {name: built[i * k : (i + 1) * k] for i, name in enumerate(COLD_NAMES)}
        self.results.long_build = time.perf_counter() - t0
        log(f"  built in {self.results.long_build:.0f} s")

    async def cold_pass(self, p: int) -> None:
        """One cold turn into every long and fresh session, the kinds interleaved."""
        log(f"cold turns, pass {p + 1}/{COLD_PASSES} ...")
        res = self.results
        for i in range(self.args.long_sessions):
            names = COLD_NAMES[i % 3 :] + COLD_NAMES[: i % 3]
            for name in names:
                sid = self.cold_ids[name][i]
                events = len((await self.client.get_workflow_handle(sid).fetch_history()).events)
                series = res.cold.setdefault(name, Series())
                series.events.append(events)
                t0 = time.perf_counter()
                try:
                    await run_calls(series, [self.add_turn(sid)], 1)
                except SessionError as exc:
                    # A replay longer than the workflow task timeout fails the task: the call
                    # answers WorkerUnavailableError/SessionBusyError (the run without idle
                    # continue-as-new, on a busy machine).
                    series.wall += time.perf_counter() - t0
                    series.failures.append(type(exc).__name__)
                    log(f"  {name}: {type(exc).__name__} after {time.perf_counter() - t0:.1f} s")

    # ---------------------------------------------------------------- phases

    async def run(self) -> Results:
        args, res = self.args, self.results
        n = args.sessions
        log(f"starting the workers (cache {args.cache:,}) ...")
        self.ours.spawn()
        self.bare.spawn()
        await asyncio.gather(self.ours.wait_ready(), self.bare.wait_ready())
        self.snapshot("workers started, idle")
        await self.build_long()

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
        # Real traffic finds its sessions idle: past ``idle_continue_after``, so the long
        # sessions' idle continue-as-new has run (our sessions have been idle for the whole
        # bare population already).
        res.idle_wait = max(settle, (SessionConfig().idle_continue_after or 0.0) + 2.0)
        log(f"waiting {res.idle_wait:.0f} s: every workflow idle before measuring ...")
        await asyncio.sleep(res.idle_wait)
        self.snapshot(f"{n:,} bare workflows created, all idle")
        res.history["ours"] = await history_lengths(self.client, self.session_ids, self.rng)
        res.history["bare"] = await history_lengths(self.client, self.bare_ids, self.rng)

        await self.cold_pass(0)
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
        orders = [SEQ_NAMES[r % 4 :] + SEQ_NAMES[: r % 4] for r in range(ROUNDS)]
        await self.rounds("sequential", res.seq, makers, orders, per_round, callers=1)
        await self.cold_pass(1)

        per_round = max(CONCURRENT_CALLERS, args.calls // CONCURRENT_ROUNDS)
        orders = [CONC_NAMES[:: 1 if r % 2 == 0 else -1] for r in range(CONCURRENT_ROUNDS)]
        await self.rounds(f"{CONCURRENT_CALLERS} callers", res.conc, makers, orders, per_round)

        visits: dict[str, Callable[[], Call]] = dict(
            zip(
                CHAT_NAMES,
                (
                    lambda: self.visit(self.add_turn, self.rng.choice(self.session_ids)),
                    lambda: self.visit(self.bump, self.rng.choice(self.bare_ids)),
                ),
                strict=True,
            )
        )
        per_round = max(CONCURRENT_CALLERS, args.calls // 10)
        orders = [CHAT_NAMES[:: 1 if r % 2 == 0 else -1] for r in range(CHAT_ROUNDS)]
        await self.rounds("chat visits", res.chat, visits, orders, per_round)
        await self.cold_pass(2)

        creators: dict[str, Callable[[], Call]] = {
            CREATE_NAMES[0]: lambda: self.create_and_turn,
            CREATE_NAMES[1]: lambda: self.start_and_bump,
            CREATE_NAMES[2]: lambda: self.start_no_wait_and_turn,
        }
        per_round = max(CONCURRENT_CALLERS, args.calls // (2 * CREATE_ROUNDS))
        orders = [CREATE_NAMES[r % 3 :] + CREATE_NAMES[: r % 3] for r in range(CREATE_ROUNDS)]
        await self.rounds("create + first turn", res.create, creators, orders, per_round)
        for name in COLD_NAMES:
            self.log_series(name, res.cold[name])

        await asyncio.sleep(settle)
        self.snapshot("after the measured calls")
        return res

    async def rounds(
        self,
        label: str,
        into: dict[str, Series],
        makers: dict[str, Callable[[], Call]],
        orders: list[tuple[str, ...]],
        per_round: int,
        callers: int = CONCURRENT_CALLERS,
    ) -> None:
        """Measured rounds: in round ``r``, ``per_round`` calls of each series of ``orders[r]``
        in that order, by ``callers`` callers at once; each series' figures go to ``into``."""
        for r, order in enumerate(orders):
            log(f"{label}, round {r + 1}/{len(orders)}: {per_round} calls per series ...")
            for name in order:
                calls = [makers[name]() for _ in range(per_round)]
                series = into.setdefault(name, Series())
                await self.measured(series, name, run_calls(series, calls, callers))
        for name in orders[0]:
            self.log_series(f"{label}, {name}", into[name])

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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=SESSIONS, help="live sessions per side")
    parser.add_argument("--cache", type=int, default=CACHE, help="max cached workflows")
    parser.add_argument("--calls", type=int, default=CALLS, help="measured calls per series")
    parser.add_argument(
        "--populate-concurrency", type=int, default=POPULATE_CONCURRENCY, metavar="N"
    )
    parser.add_argument(
        "--long-sessions", type=int, default=LONG_SESSIONS, metavar="N", help="per kind"
    )
    parser.add_argument("--long-turns", type=int, default=LONG_TURNS, metavar="N")
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
            Args(
                _ns.sessions,
                _ns.cache,
                _ns.calls,
                _ns.log_dir,
                _ns.populate_concurrency,
                _ns.long_sessions,
                _ns.long_turns,
            )
        )
    )

"""Profile of a cold turn: what a cache miss replays, and where its milliseconds go.

Run ``python -m bench.profile_cold`` from the repository root (``--sizes 10,80,500`` and
``--repeat N`` to change the runs; ``--spy`` adds a py-spy breakdown of the replay of the
largest runs by where the CPU goes). Progress goes to stderr, a Markdown section to stdout.

For each kind of run it builds one on a real dev server (in-process workers), then:

* *events*: history events in the run (what a worker without it in cache fetches and replays);
* *replay ms*: ``temporalio.worker.Replayer`` replaying that history (median of ``--repeat``
  replays in one replayer, so its start-up is not counted): the worker-side cost of a miss;
* *cold turn ms*: one ``add_turn`` (``bump`` for bare) through a worker started just before
  (as after a restart), i.e. a cache miss end to end (the server ships the history, the worker
  replays it, then handles the update); *hot turn ms*: the same call again, cached.

Runs: a fresh session (created, one turn), sessions holding N single-turn updates in one run
(``SessionConfig(max_events_per_run=3000, idle_continue_after=None)``, so no continue-as-new),
both as started by this version ("after", input ``features=2``: no patch markers, no status
upsert at start) and as started by the previous one ("before", ``features=0``: the code path
that replays old histories, giving the old commands), and a bare workflow
(``bench.bare.BareCounterWorkflow``) with as many updates. The histories recorded by the old
code and by this one in ``tests/histories`` are replayed too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowHistory,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, Worker

from bench.bare import BareCounterWorkflow
from bench.common import (
    EXIT_OK,
    REPO_ROOT,
    TextGenerator,
    log,
    md_table,
    median,
    run_main,
    start_dev_server,
)
from durable_sessions.client import WORKFLOW_TASK_TIMEOUT, SessionManager
from durable_sessions.errors import SessionError
from durable_sessions.models import SessionConfig, SessionState, SessionStatus, SessionTurn
from durable_sessions.stores.memory import InMemorySessionStore
from durable_sessions.worker import WORKFLOWS, create_worker, workflow_runner
from durable_sessions.workflows.messages import WORKFLOW_TYPE, SessionWorkflowInput
from durable_sessions.workflows.session import SESSION_STATUS, SESSION_USER_ID

SIZES = (10, 80, 500)
REPEAT = 5
SPY_COPIES = 6
TURN_BYTES = 500
RECORDED = sorted((REPO_ROOT / "tests" / "histories").glob("*.json"))
LONG_RUNS = SessionConfig(max_events_per_run=3_000, idle_continue_after=None)
CATEGORIES = (
    ("payload conversion (pydantic)", ("pydantic", "temporalio/converter")),
    ("sandbox (restricted imports, per-activation context)", ("workflow_sandbox",)),
    ("session workflow code", ("durable_sessions/",)),
    ("SDK workflow instance", ("_workflow_instance.py", "temporalio/workflow/")),
    ("SDK activation plumbing (protobuf, payload visitor)", ("temporalio/", "protobuf")),
    ("asyncio", ("asyncio/",)),
)
"""py-spy frame → category, tried from the leaf up (the first category a frame names)."""
IDLE_FRAMES = ("concurrent/futures/thread.py", "threading.py", "selectors.py")


@dataclass
class Replay:
    events: int
    tasks: int
    """Workflow tasks in the run (each is one activation on replay)."""
    ms: float
    """Median of the replays, sandboxed (as workers ran it before the runner went unsandboxed)."""
    min_ms: float
    unsandboxed_ms: float


@dataclass
class Row:
    name: str
    replay: Replay
    cold_ms: float = float("nan")
    hot_ms: float = float("nan")
    live: bool = True
    """Measured on a server (False: a recorded history, replayed only)."""

    def cells(self) -> list[str]:
        r = self.replay
        return [
            self.name,
            f"{r.events:,}",
            f"{r.tasks:,}",
            f"{r.ms:.1f}",
            f"{r.min_ms:.1f}",
            f"{1000 * r.ms / r.events:.0f}",
            f"{r.unsandboxed_ms:.1f}",
            _ms(self.cold_ms, self.live),
            _ms(self.hot_ms, self.live),
        ]


def _ms(value: float, live: bool) -> str:
    if not math.isnan(value):
        return f"{value:.1f}"
    return "failed (task timeout)" if live else "-"


HEADERS = [
    "run",
    "events",
    "workflow tasks",
    "replay ms (median)",
    "replay ms (min)",
    "µs / event",
    "replay ms, no sandbox",
    "cold turn ms",
    "hot turn ms",
]


async def measure_replay(history: WorkflowHistory, repeat: int, bare: bool = False) -> Replay:
    """Replay timings of one history (the first replay of each replayer is a warm-up)."""
    sandboxed = (await replay_times(history, repeat + 1, bare))[1:]
    plain = (await replay_times(history, repeat + 1, bare, sandbox=False))[1:]
    tasks = sum(1 for e in history.events if e.HasField("workflow_task_completed_event_attributes"))
    return Replay(len(history.events), tasks, median(sandboxed), min(sandboxed), median(plain))


class Profiler:
    """One dev server, a session worker and a bare worker, each caching a single workflow."""

    def __init__(self, client: Client, repeat: int) -> None:
        self.client = client
        self.repeat = repeat
        tag = uuid.uuid4().hex[:8]
        self.queue, self.bare_queue = f"profile-cold-{tag}", f"profile-cold-bare-{tag}"
        self.manager = SessionManager(client, InMemorySessionStore(), task_queue=self.queue)
        texts = TextGenerator(5)
        self.texts = [texts.text(TURN_BYTES) for _ in range(64)]
        self.i = 0

    def turn(self) -> SessionTurn:
        self.i += 1
        return SessionTurn(
            role="user" if self.i % 2 else "assistant", content=self.texts[self.i % 64]
        )

    # ------------------------------------------------------------------ building runs

    async def session(self, features: int, config: SessionConfig) -> str:
        """A session started as a client of this version (``features=2``) or of the previous
        one (``features=0``) would start it."""
        now = datetime.now(UTC)
        state = SessionState(
            session_id=uuid.uuid4().hex,
            user_id="profile",
            created_at=now,
            updated_at=now,
            expires_at=now + timedelta(seconds=config.session_ttl),
        )
        op: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            WORKFLOW_TYPE,
            SessionWorkflowInput(state=state, config=config, features=features),
            id=state.session_id,
            task_queue=self.queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            task_timeout=WORKFLOW_TASK_TIMEOUT,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(SESSION_USER_ID, state.user_id),
                    SearchAttributePair(SESSION_STATUS, SessionStatus.ACTIVE.value),
                ]
            ),
        )
        await self.client.execute_update_with_start_workflow(
            "ready", start_workflow_operation=op, result_type=SessionState
        )
        return state.session_id

    async def bare(self) -> str:
        wid = f"profile-bare-{uuid.uuid4().hex[:8]}"
        await self.client.start_workflow(
            BareCounterWorkflow.run, id=wid, task_queue=self.bare_queue
        )
        return wid

    def add_turn(self, sid: str) -> Callable[[], Awaitable[object]]:
        return lambda: self.manager.add_turn(sid, self.turn())

    def bump(self, wid: str) -> Callable[[], Awaitable[object]]:
        handle = self.client.get_workflow_handle(wid)
        return lambda: handle.execute_update(BareCounterWorkflow.bump, self.turn())

    # ------------------------------------------------------------------ measuring

    @contextlib.asynccontextmanager
    async def workers(self, cache: int) -> AsyncIterator[None]:
        """A session worker and a bare worker, started now (empty caches), shut down after."""
        session_worker = create_worker(
            self.client, self.manager.store, task_queue=self.queue, max_cached_workflows=cache
        )
        bare_worker = Worker(
            self.client,
            task_queue=self.bare_queue,
            workflows=[BareCounterWorkflow],
            workflow_runner=workflow_runner(),
            max_cached_workflows=cache,
        )
        async with session_worker, bare_worker:
            yield

    async def cold_and_hot(self, call: Callable[[], Awaitable[object]]) -> tuple[float, float]:
        """A call into a workflow no worker has in cache, then the same again (cached); NaN for
        a call that failed (a replay longer than the workflow task timeout fails the task, and
        the call answers ``WorkerUnavailableError`` after 10 s)."""
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            try:
                await call()
            except SessionError as exc:
                log(f"    call failed after {time.perf_counter() - t0:.1f} s: {type(exc).__name__}")
                times.append(math.nan)
                continue
            times.append(1000 * (time.perf_counter() - t0))
        return times[0], times[1]

    async def history(self, wid: str) -> WorkflowHistory:
        return await self.client.get_workflow_handle(wid).fetch_history()


async def replay_times(
    history: WorkflowHistory, copies: int, bare: bool, sandbox: bool = True
) -> list[float]:
    """Milliseconds each of ``copies`` replays of ``history`` took, in one replayer."""
    replayer = Replayer(
        workflows=[BareCounterWorkflow] if bare else WORKFLOWS,
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(sandboxed=sandbox),
    )

    async def histories() -> AsyncIterator[WorkflowHistory]:
        for _ in range(copies):
            yield history

    times: list[float] = []
    async with replayer.workflow_replay_iterator(histories()) as results:
        t0 = time.perf_counter()
        async for result in results:
            if result.replay_failure is not None:
                raise result.replay_failure
            now = time.perf_counter()
            times.append(1000 * (now - t0))
            t0 = now
    return times


def classify(frames: list[str]) -> str | None:
    """The category of one py-spy stack (leaf last): the first frame from the leaf that names
    one; None for idle threads (an executor thread waiting for work) and imports."""
    leaf = frames[-1] if frames else ""
    if not leaf.strip():
        return "SDK core (running threads with no Python frame: Rust)"
    if any(idle in leaf for idle in IDLE_FRAMES) or any("importlib" in f for f in frames):
        return None
    for frame in reversed(frames):
        for name, keys in CATEGORIES:
            if any(k in frame for k in keys):
                return name
    return "other Python"


def spy(history: WorkflowHistory, copies: int, rate: int = 250) -> tuple[float, list[list[str]]]:
    """py-spy samples of a process replaying ``history`` ``copies`` times after two warm-up
    replays (py-spy attaches once they are done), by category; and the median replay ms."""
    with tempfile.TemporaryDirectory(prefix="profile_cold_") as tmp:
        path, out = Path(tmp) / "history.json", Path(tmp) / "spy.txt"
        path.write_text(history.to_json())
        argv = [sys.executable, "-m", "bench.profile_cold", "--replay-loop", str(path), str(copies)]
        proc = subprocess.Popen(argv, cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdout.readline()  # warmed up
        spy_argv = ["py-spy", "record", "-r", str(rate), "-f", "raw", "-o", str(out)]
        recorder = subprocess.Popen(
            [*spy_argv, "--pid", str(proc.pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # py-spy attached
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        replay_ms = float(proc.stdout.readline())
        proc.wait()
        recorder.wait()
        spent: Counter[str] = Counter()
        for line in out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            label = classify(stack.split(";"))
            if label is not None:
                spent[label] += int(count)
    total = sum(spent.values())
    return replay_ms, [
        [label, f"{1000 * n / rate / copies:.1f}", f"{100 * n / total:.0f}%"]
        for label, n in spent.most_common()
    ]


async def replay_loop(history: WorkflowHistory, copies: int) -> None:
    """Internal (``--replay-loop``): two warm-up replays, a line on stdout, wait for a line on
    stdin (py-spy attaches meanwhile), ``copies`` replays, their median ms on stdout."""
    await replay_times(history, 2, False)
    print("warm", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    print(median(await replay_times(history, copies, False)), flush=True)


async def main(sizes: tuple[int, ...], repeat: int, with_spy: bool) -> int:
    env = await start_dev_server()
    prof = Profiler(env.client, repeat)
    built: list[tuple[str, str, bool]] = []
    """(row name, workflow id, bare?) of every run, in the order of the table."""
    rows: list[Row] = []
    largest: dict[str, WorkflowHistory] = {}
    try:
        # Built on workers with the default cache (nothing evicted, no replay while building).
        async with prof.workers(cache=1_000):
            for label, features in (("before", 0), ("after", 2)):
                log(f"building {label} (features={features}) ...")
                sid = await prof.session(features, SessionConfig())
                await prof.add_turn(sid)()
                built.append((f"{label}: fresh session, 1 turn", sid, False))
                for n in sizes:
                    sid = await prof.session(features, LONG_RUNS)
                    for _ in range(n):
                        await prof.add_turn(sid)()
                    built.append((f"{label}: {n} turns in the run", sid, False))
            log("building bare ...")
            for n in (1, *sizes):
                wid = await prof.bare()
                for _ in range(n):
                    await prof.bump(wid)()
                built.append((f"bare: {n} update{'s' if n > 1 else ''}", wid, True))
            await asyncio.sleep(SessionConfig().flush_interval + 1.0)  # last flushes land
        for name, wid, bare in built:
            history = await prof.history(wid)  # the run as a cold call finds it
            replay = await measure_replay(history, repeat, bare)
            # A fresh worker (as after a restart): the first call replays, the second not.
            async with prof.workers(cache=1_000):
                call = prof.bump(wid) if bare else prof.add_turn(wid)
                cold, hot = await prof.cold_and_hot(call)
                # A run whose tasks time out would keep retrying them on the next worker.
                await env.client.get_workflow_handle(wid).terminate()
            rows.append(Row(name, replay, cold, hot))
            log(f"  {name}: {replay.events} events, replay {replay.ms:.1f} ms, cold {cold:.1f} ms")
            if not bare:
                largest[name.split(":")[0]] = history
        for path in RECORDED:
            history = WorkflowHistory.from_json(path.stem, path.read_text())
            replay = await measure_replay(history, repeat)
            rows.append(Row(f"recorded in tests/histories: {path.stem}", replay, live=False))
        profiles = []
        if with_spy:
            for label, history in largest.items():
                log(f"py-spy on replays of the {label} run ({len(history.events)} events) ...")
                profiles.append((label, len(history.events), *spy(history, SPY_COPIES)))
    finally:
        await env.shutdown()
    out = [
        "## Cold path profile",
        "",
        __doc__.split("\n\n", 2)[2].strip() if __doc__ else "",
        "",
        md_table(HEADERS, [r.cells() for r in rows], "lrrrrrrrr"),
    ]
    for label, events, replay_ms, prows in profiles:
        out += [
            "",
            f"Where a replay of the largest {label} run ({events:,} events, {replay_ms:.0f} ms "
            f"a replay while sampled) spends its CPU: py-spy on a process replaying it "
            f"{SPY_COPIES} times after two warm-up replays, every thread (the workflow code "
            "runs in the SDK's executor thread), idle threads and imports left out; the first "
            "frame from the leaf up that names a category decides.",
            "",
            md_table(["where", "CPU ms / replay", "share"], prows, "lrr"),
        ]
    print("\n".join(out))
    return EXIT_OK


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--repeat", type=int, default=REPEAT)
    parser.add_argument("--spy", action="store_true", help="py-spy breakdown of the replays")
    parser.add_argument("--replay-loop", nargs=2, metavar=("HISTORY", "N"), help="internal")
    return parser.parse_args(argv)


if __name__ == "__main__":
    _ns = parse_args()
    if _ns.replay_loop:
        _history = WorkflowHistory.from_json("profiled", Path(_ns.replay_loop[0]).read_text())
        asyncio.run(replay_loop(_history, int(_ns.replay_loop[1])))
        sys.exit(0)
    _sizes = tuple(int(s) for s in _ns.sizes.split(",") if s)
    run_main(lambda: main(_sizes, _ns.repeat, _ns.spy))

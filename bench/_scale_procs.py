"""The processes of ``bench_scale``: the bare worker (``--bare-worker``), worker processes and
their memory and CPU (from ``/proc``, so Linux only)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from bench.bare import BareCounterWorkflow
from bench.common import REPO_ROOT, log
from durable_sessions.worker import workflow_runner

__all__ = [
    "READY_LINE",
    "WorkerProcess",
    "bare_worker",
    "clean_environ",
    "cpu_seconds",
    "dev_server_pid",
    "memory_mb",
    "with_schema",
]

WORKER_START_TIMEOUT = 60.0
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


def _processes() -> Iterator[Path]:
    """The ``/proc`` entry of every process on the machine."""
    return (entry for entry in Path("/proc").iterdir() if entry.name.isdigit())


def postgres_cpu_seconds() -> float:
    """CPU time used so far by every PostgreSQL process on the machine (its backends included:
    they come and go, so a series' difference counts the ones that lived through it)."""
    total = 0.0
    for entry in _processes():
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm == "postgres":
            seconds = cpu_seconds(int(entry.name))
            if seconds == seconds:  # gone meanwhile: NaN
                total += seconds
    return total


def dev_server_pid() -> int | None:
    """The Temporal dev server started by this process (a child running ``start-dev``)."""
    me = str(os.getpid())
    for entry in _processes():
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

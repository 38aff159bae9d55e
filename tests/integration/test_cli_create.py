"""``durable-sessions session create``: just the id for scripts, a table for people.

The README's ``id=$(durable-sessions session create --user me)`` needs the bare id when stdout
is not a terminal (or with ``-q``); at a terminal the command prints the usual table. Real CLI
processes against the dev server and a worker in this process.
"""

from __future__ import annotations

import asyncio
import os
import pty
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from temporalio.client import Client

from durable_sessions.stores.sqlite import SQLiteSessionStore
from durable_sessions.worker import create_worker

CLI = [sys.executable, "-m", "durable_sessions.cli", "session", "create"]
HEX_ID = re.compile(r"[0-9a-f]{32}")


@pytest_asyncio.fixture(loop_scope="session")
async def cli_env(
    client: Client, task_queue: str, tmp_path: Path
) -> AsyncIterator[tuple[dict[str, str], SQLiteSessionStore]]:
    # The worker and the CLI's manager share one store, as they must (``create`` writes the
    # header from the client; the worker writes turns).
    store = SQLiteSessionStore(tmp_path / "cli.db")
    await store.setup()
    env = {
        **os.environ,
        "DURABLE_SESSIONS_TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "DURABLE_SESSIONS_TASK_QUEUE": task_queue,
        "DURABLE_SESSIONS_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
    }
    try:
        async with create_worker(client, store, task_queue=task_queue):
            yield env, store
    finally:
        await store.close()


async def _run(args: list[str], env: dict[str, str]) -> str:
    done = await asyncio.to_thread(
        subprocess.run, [*CLI, *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _run_at_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """Run with stdout on a pseudo-terminal (``isatty()`` is true) and read what it printed."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen([*CLI, *args], env=env, stdout=follower, stderr=subprocess.PIPE)
        os.close(follower)
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    finally:
        os.close(leader)
    return b"".join(chunks).decode().replace("\r\n", "\n")


async def test_piped_output_is_just_the_session_id(
    cli_env: tuple[dict[str, str], SQLiteSessionStore],
) -> None:
    env, store = cli_env
    out = await _run(["--user", "piped"], env)
    assert HEX_ID.fullmatch(out.strip()), out
    assert out.count("\n") == 1
    header = await store.get_session(out.strip())
    assert header is not None and header.user_id == "piped"


async def test_quiet_and_json(cli_env: tuple[dict[str, str], SQLiteSessionStore]) -> None:
    env, _ = cli_env
    quiet = await _run(["-q", "--user", "quiet", "--session-id", "cli-quiet-1"], env)
    assert quiet == "cli-quiet-1\n"
    as_json = await _run(["--json", "--user", "json"], env)  # --json keeps the whole state
    assert '"user_id": "json"' in as_json


async def test_a_terminal_gets_the_table(
    cli_env: tuple[dict[str, str], SQLiteSessionStore],
) -> None:
    env, _ = cli_env
    out = await asyncio.to_thread(_run_at_a_terminal, ["--user", "tty"], env)
    assert re.search(r"^session +[0-9a-f]{32}$", out, re.M), out
    assert re.search(r"^user +tty$", out, re.M), out
    quiet = await asyncio.to_thread(_run_at_a_terminal, ["-q", "--user", "tty"], env)
    assert HEX_ID.fullmatch(quiet.strip()), quiet

"""PostgreSQL for tests: find a server (or skip, or fail on CI) and isolate each test in a schema.

Shared by the store contract tests and the Temporal integration tests, so every suite finds the
database the same way:

* ``TEST_DATABASE_URL`` when set, else ``postgresql://postgres@127.0.0.1:5432/test``.
* When that server does not answer (and no URL was given), a throwaway cluster is started from
  local PostgreSQL binaries when there are some (``initdb``/``pg_ctl``; as the ``postgres`` OS
  user when running as root, since PostgreSQL refuses root) and removed at exit.
* Only then are tests that need it skipped with the reason, except with ``CI=true``: there they
  fail, so CI can never silently stop exercising the real database.
* ``temporary_schema`` creates an empty, uniquely named schema and drops it afterwards, so runs
  (and tests) never see each other's rows and leave nothing behind.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

DEFAULT_TEST_DSN = "postgresql://postgres@127.0.0.1:5432/test"
CONNECT_TIMEOUT = 3.0

_fallback_dsn: dict[str, str] = {}
_probe: tuple[str, str | None] | None = None
"""Cached ``(dsn, reason it is unusable or None)``: the server is probed once per process."""


def database_url() -> str:
    """The DSN tests use: ``TEST_DATABASE_URL`` or the local default (reachable or not)."""
    return os.environ.get("TEST_DATABASE_URL") or DEFAULT_TEST_DSN


def _on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


async def _probe_dsn(dsn: str) -> str | None:
    try:
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return f"PostgreSQL at {_redact(dsn)} is not reachable ({type(exc).__name__}: {exc})"
    await conn.close()
    return None


def _redact(dsn: str) -> str:
    """The DSN without its password, for messages."""
    scheme, sep, rest = dsn.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return dsn
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"


def _postgres_bin() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    found = shutil.which("pg_ctl")
    if found:
        candidates.insert(0, Path(found).parent)
    return next(
        (c for c in candidates if (c / "initdb").exists() and (c / "pg_ctl").exists()), None
    )


class LocalCluster:
    """A private PostgreSQL cluster from local binaries, which a test may stop and start."""

    def __init__(self, bindir: Path, as_postgres: list[str]) -> None:
        self.bindir = bindir
        self.as_postgres = as_postgres
        self.folder = Path(tempfile.mkdtemp(prefix="ds-pg-"))
        os.chmod(self.folder, 0o777)
        self.data = self.folder / "data"
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @classmethod
    def create(cls) -> LocalCluster | None:
        bindir = _postgres_bin()
        if bindir is None:
            return None
        as_postgres: list[str] = []
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                return None
            as_postgres = ["runuser", "-u", "postgres", "--"]
        cluster = cls(bindir, as_postgres)
        try:
            cluster._run("initdb", "-D", str(cluster.data), "-A", "trust", "-U", "postgres")
            cluster.start()
        except (OSError, subprocess.SubprocessError):
            shutil.rmtree(cluster.folder, ignore_errors=True)
            return None
        atexit.register(cluster.destroy)
        return cluster

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self.as_postgres, str(self.bindir / tool), *args],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        log = str(self.folder / "log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        subprocess.run(
            [
                *self.as_postgres,
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.folder, ignore_errors=True)


def _throwaway_cluster() -> str | None:
    """Start a private PostgreSQL cluster from local binaries; its DSN, or None if impossible."""
    cluster = LocalCluster.create()
    return cluster.dsn if cluster is not None else None


async def postgres_dsn_or_skip() -> str:
    """The DSN of a reachable test database, or skip the calling test (fail it when CI=true)."""
    global _probe
    dsn = database_url()
    if _probe is None or _probe[0] != dsn:
        reason = await _probe_dsn(dsn)
        if reason is not None and "TEST_DATABASE_URL" not in os.environ:
            fallback = _throwaway_cluster()
            if fallback is not None and await _probe_dsn(fallback) is None:
                _probe = (dsn, None)
                _fallback_dsn[dsn] = fallback
        if _probe is None or _probe[0] != dsn:
            _probe = (dsn, reason)
    dsn = _fallback_dsn.get(dsn, dsn)
    reason = _probe[1]
    if reason is not None:
        hint = "set TEST_DATABASE_URL to a reachable server"
        if _on_ci():
            pytest.fail(f"{reason}; CI=true requires the real database ({hint})")
        pytest.skip(f"{reason}; {hint}")
    return dsn


def unique_schema_name(prefix: str = "ds_test") -> str:
    """A fresh schema name such as ``ds_test_3f2a9c01b4d7``."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@asynccontextmanager
async def temporary_schema(dsn: str, prefix: str = "ds_test") -> AsyncIterator[str]:
    """Create an empty schema with a unique name, yield the name, then drop it with its tables.

    Example::

        dsn = await postgres_dsn_or_skip()
        async with temporary_schema(dsn) as schema:
            store = PostgresSessionStore(dsn, schema=schema)
            await store.setup()
            ...
            await store.close()
    """
    name = unique_schema_name(prefix)
    conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT)
    try:
        await conn.execute(f'CREATE SCHEMA "{name}"')
        try:
            yield name
        finally:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()

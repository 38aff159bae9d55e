"""A PostgreSQL store that cannot reach its database: a typed error that says what to do next,
and never the password."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from durable_sessions.client import SessionManager
from durable_sessions.errors import SessionError, StoreUnavailableError
from durable_sessions.http import create_app
from durable_sessions.http.errors import session_error_response, status_for
from durable_sessions.stores._pg import where
from durable_sessions.stores.postgres import PostgresSessionStore
from tests.helpers import free_port
from tests.pg import postgres_dsn_or_skip


async def test_a_database_that_refuses_connections_is_store_unavailable() -> None:
    dsn = f"postgresql://app:s3cret-pw@127.0.0.1:{free_port()}/sessions?schema=x"
    store = PostgresSessionStore(dsn)
    with pytest.raises(StoreUnavailableError) as info:
        await store.setup()
    err = info.value
    assert isinstance(err, SessionError) and isinstance(err, ConnectionError)
    assert "cannot reach PostgreSQL at app@127.0.0.1:" in err.message
    assert "/sessions" in err.message
    assert "DURABLE_SESSIONS_DATABASE_URL" in err.message
    assert "s3cret-pw" not in str(err)
    assert isinstance(err.__cause__, OSError)
    # A later call tries again (no broken pool is kept), and fails the same way.
    with pytest.raises(StoreUnavailableError):
        await store.get_session("s1")
    await store.close()


async def test_an_unknown_database_is_store_unavailable() -> None:
    url = urlsplit(await postgres_dsn_or_skip())
    missing = urlunsplit(url._replace(path="/ds_no_such_database_here"))
    store = PostgresSessionStore(missing)
    with pytest.raises(StoreUnavailableError, match="ds_no_such_database_here"):
        await store.setup()
    await store.close()


class _CuttableProxy:
    """A TCP proxy to the database that can be cut, as a network failure or a restart would."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        bound: int = self.server.sockets[0].getsockname()[1]
        return bound

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        await self.server.wait_closed()


async def _store_through_a_proxy() -> tuple[_CuttableProxy, int, PostgresSessionStore]:
    """A store (set up) whose connections go through a cuttable proxy to the test database."""
    url = urlsplit(await postgres_dsn_or_skip())
    proxy = _CuttableProxy(url.hostname or "127.0.0.1", url.port or 5432)
    port = await proxy.start()
    netloc = f"{url.username or 'postgres'}@127.0.0.1:{port}"
    store = PostgresSessionStore(urlunsplit(url._replace(netloc=netloc)))
    await store.setup()
    return proxy, port, store


async def test_a_database_lost_mid_life_is_store_unavailable_then_recovers() -> None:
    proxy, port, store = await _store_through_a_proxy()
    assert await store.get_session("no-such-session") is None
    await proxy.cut()
    with pytest.raises(StoreUnavailableError, match="cannot reach PostgreSQL"):
        await store.get_session("no-such-session")  # the pooled connection is gone
    with pytest.raises(StoreUnavailableError):
        await store.list_sessions(user_id="u")  # and no new one can be opened
    await proxy.start(port)  # the database is back: the same store answers again
    assert await store.list_sessions(user_id="u") == []
    await store.close()
    await proxy.cut()


async def test_the_http_face_answers_503_while_the_database_is_away(
    temporal_env: WorkflowEnvironment,
) -> None:
    proxy, port, store = await _store_through_a_proxy()
    app = create_app(SessionManager(temporal_env.client, store), {"key-0123456789abcdef": "u"})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        headers={"Authorization": "Bearer key-0123456789abcdef"},
    ) as http:
        assert (await http.get("/sessions")).status_code == 200
        await proxy.cut()
        down = await http.get("/sessions")
        assert down.status_code == 503
        assert down.headers["Retry-After"] == "1"
        assert down.json()["error"]["code"] == "store_unavailable"
        assert str(port) not in down.text  # the address is for the logs only
        await proxy.start(port)
        assert (await http.get("/sessions")).status_code == 200
    await store.close()
    await proxy.cut()


def test_messages_name_the_database_without_its_password() -> None:
    assert where("postgresql://app:pw@db:5432/s?schema=x") == "app@db:5432/s"
    assert where("postgresql://app:pw@db:bad/s") == "app@db/s"  # never masks the real error
    assert where("dbname=s user=app password=pw") == "the configured database"


def test_over_http_it_is_503_with_retry_after_and_no_address() -> None:
    err = StoreUnavailableError("cannot reach PostgreSQL at app@db.internal:5432/sessions")
    assert status_for(err) == 503
    response = session_error_response(err)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    body = bytes(response.body).decode()
    assert "store_unavailable" in body
    assert "db.internal" not in body


def test_the_worker_without_its_database_says_what_to_do(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DURABLE_SESSIONS_DATABASE_URL": f"postgresql://app:pw@127.0.0.1:{free_port()}/x",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "durable_sessions.worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert "error: cannot reach PostgreSQL at app@127.0.0.1:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert ":pw@" not in proc.stderr

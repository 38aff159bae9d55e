"""The HTTP app on the real stack (dev server, worker, PostgreSQL store), two users' clients."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from fastapi import FastAPI

from durable_sessions.http import EventStreamOptions, create_app, hash_api_key
from durable_sessions.stores.base import SessionStore
from tests.integration.conftest import Stack, stack  # noqa: F401  (fixtures)
from tests.stores_fixtures import make_store

KEY_A = "key-alice-0123456789"
KEY_B = "key-bob-9876543210"
API_KEYS = {KEY_A: "alice", hash_api_key(KEY_B): "bob"}  # bob's key is configured by hash
FAST_EVENTS = EventStreamOptions(poll_interval=0.05, heartbeat_interval=0.5, retry_ms=100)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Api:
    """The app and one client per user (and one without a key)."""

    stack: Stack
    app: FastAPI
    alice: httpx.AsyncClient
    bob: httpx.AsyncClient
    anonymous: httpx.AsyncClient

    async def create(self, client: httpx.AsyncClient | None = None, **body: Any) -> str:
        r = await (client or self.alice).post("/sessions", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["session_id"])

    async def add(self, session_id: str, content: str, role: str = "user", **kw: Any) -> Any:
        r = await self.alice.post(
            f"/sessions/{session_id}/turns", json={"role": role, "content": content, **kw}
        )
        assert r.status_code == 201, r.text
        return r.json()


def make_client(app: FastAPI, key: str | None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        headers=auth(key) if key else None,
    )


@pytest_asyncio.fixture(loop_scope="session")
async def store() -> AsyncIterator[SessionStore]:
    """The stack's PostgreSQL store, with the full-text index: the API serves ``/recall``."""
    async with make_store("postgres", recall=True) as s:
        yield s


@pytest_asyncio.fixture(loop_scope="session")
async def api(stack: Stack) -> AsyncIterator[Api]:  # noqa: F811
    app = create_app(stack.manager, API_KEYS, events=FAST_EVENTS)
    async with (
        make_client(app, KEY_A) as alice,
        make_client(app, KEY_B) as bob,
        make_client(app, None) as anonymous,
    ):
        yield Api(stack, app, alice, bob, anonymous)


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Run ``app`` on a real HTTP server in this event loop; yields its base URL.

    httpx's ASGI transport buffers whole responses, so live event streams need a real server.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, lifespan="off", log_level="warning", ws="none", http="h11", access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
def no_keys_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DURABLE_SESSIONS_HTTP_API_KEYS", raising=False)

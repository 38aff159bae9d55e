"""``run_server`` (``durable-sessions serve``): the API from environment settings only."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest

from durable_sessions.config import Settings
from durable_sessions.http.server import run_server
from durable_sessions.stores.postgres import PostgresSessionStore
from tests.helpers import assert_eventually, free_port
from tests.integration.conftest import Stack


async def test_refuses_to_start_without_keys() -> None:
    with pytest.raises(SystemExit, match="HTTP_API_KEYS"):
        await run_server(Settings(http_api_keys=None))
    with pytest.raises(SystemExit, match="entry 1"):
        await run_server(Settings(http_api_keys="no-user-here"))


async def test_serves_the_api_from_settings(stack: Stack) -> None:
    store = stack.store
    if not isinstance(store, PostgresSessionStore):
        pytest.skip("needs the PostgreSQL store")
    sep = "&" if "?" in store.dsn else "?"
    port = free_port()
    settings = Settings(
        temporal_address=stack.client.service_client.config.target_host,
        namespace=stack.client.namespace,
        task_queue=stack.task_queue,
        database_url=f"{store.dsn}{sep}schema={store.schema}",
        http_api_keys="serve-key=dora",
        http_port=port,
    )
    task = asyncio.create_task(run_server(settings, host="127.0.0.1"))
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": "Bearer serve-key"},
        ) as client:

            async def up() -> None:
                if task.done():
                    task.result()  # raises what stopped the server
                    raise RuntimeError("the server stopped")
                try:
                    r = await client.get("/healthz")
                except httpx.TransportError as exc:
                    raise AssertionError("not up yet") from exc
                assert r.status_code == 200

            await assert_eventually(up, timeout=20)
            r = await client.post("/sessions", json={"metadata": {"via": "serve"}})
            assert r.status_code == 201, r.text
            assert r.json()["user_id"] == "dora"
            sid = r.json()["session_id"]
            r = await client.post(f"/sessions/{sid}/turns", json={"role": "user", "content": "hi"})
            assert r.status_code == 201, r.text
            assert (await stack.manager.get(sid)).turn_count == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

"""SessionMiddleware and SessionContext: the request's session, bound for its handler."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from durable_sessions.context import SessionContext
from durable_sessions.errors import SessionNotFoundError
from durable_sessions.http import SessionMiddleware
from durable_sessions.models import SessionConfig
from tests.http.conftest import Api


def echo_app(**middleware_kwargs: object) -> FastAPI:
    app = FastAPI()

    @app.get("/bound")
    async def bound() -> dict[str, str | None]:
        # Visible in the handler, and in a task it starts.
        in_task = await asyncio.create_task(_read())
        return {"session_id": SessionContext().session_id, "in_task": in_task}

    @app.post("/bind/{session_id}")
    async def bind(session_id: str) -> dict[str, str | None]:
        await SessionContext().bind(session_id)
        return {"session_id": SessionContext().session_id}

    @app.post("/unbind")
    async def unbind() -> dict[str, str | None]:
        SessionContext().unbind()
        return {"session_id": None}

    app.add_middleware(SessionMiddleware, **middleware_kwargs)  # type: ignore[arg-type]
    return app


async def _read() -> str | None:
    return SessionContext().session_id


def plain_client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_header_and_cookie_bind_for_the_request() -> None:
    async with plain_client(echo_app()) as client:
        r = await client.get("/bound")
        assert r.json() == {"session_id": None, "in_task": None}
        r = await client.get("/bound", headers={"X-Session-Id": "s-header"})
        assert r.json() == {"session_id": "s-header", "in_task": "s-header"}
        r = await client.get("/bound", headers={"Cookie": "durable_session_id=s-cookie"})
        assert r.json()["session_id"] == "s-cookie"
        # The header wins over the cookie.
        r = await client.get(
            "/bound", headers={"Cookie": "durable_session_id=s-cookie", "X-Session-Id": "s-h"}
        )
        assert r.json()["session_id"] == "s-h"
        assert "set-cookie" not in r.headers
    # Nothing leaks out of the request (httpx's ASGI transport runs the app in this task).
    assert SessionContext().session_id is None


async def test_custom_names_from_config() -> None:
    cfg = SessionConfig(cookie_name="sid", header_name="X-Conversation")
    async with plain_client(echo_app(config=cfg)) as client:
        r = await client.get("/bound", headers={"X-Conversation": "c1"})
        assert r.json()["session_id"] == "c1"
        r = await client.get("/bound", headers={"Cookie": "sid=c2"})
        assert r.json()["session_id"] == "c2"
        r = await client.get("/bound", headers={"X-Session-Id": "ignored"})
        assert r.json()["session_id"] is None


async def test_binding_in_a_handler_sets_the_cookie() -> None:
    async with plain_client(echo_app()) as client:
        r = await client.post("/bind/new-session")
        assert r.json() == {"session_id": "new-session"}
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("durable_session_id=new-session")
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie
        # Unbinding a session that came from the cookie clears it.
        r = await client.post("/unbind", headers={"Cookie": "durable_session_id=old"})
        assert "Max-Age=0" in r.headers["set-cookie"]
    async with plain_client(echo_app(secure_cookie=True)) as client:
        assert "Secure" in (await client.post("/bind/x")).headers["set-cookie"]


async def test_with_a_manager_unknown_ids_stay_unbound(api: Api) -> None:
    sid = await api.create()
    app = echo_app(manager=api.stack.manager)
    async with plain_client(app) as client:
        r = await client.get("/bound", headers={"X-Session-Id": sid})
        assert r.json()["session_id"] == sid
        r = await client.get("/bound", headers={"X-Session-Id": "no-such-session"})
        assert r.json()["session_id"] is None
        # A stale cookie is cleared.
        r = await client.get("/bound", headers={"Cookie": "durable_session_id=gone"})
        assert r.json()["session_id"] is None
        assert "Max-Age=0" in r.headers["set-cookie"]


async def test_create_app_sets_the_cookie_and_binds_it(api: Api) -> None:
    seen: list[str | None] = []

    @api.app.get("/whoami-session")
    async def whoami() -> dict[str, str | None]:
        seen.append(SessionContext().session_id)
        return {"session_id": SessionContext().session_id}

    r = await api.alice.post("/sessions")
    sid = r.json()["session_id"]
    assert r.headers["set-cookie"].startswith(f"durable_session_id={sid}")
    # httpx keeps the cookie: the next request is bound to the new session.
    r = await api.alice.get("/whoami-session")
    assert r.json() == {"session_id": sid}
    assert seen == [sid]


async def test_session_context_bind_validates_with_a_manager(api: Api) -> None:
    sid = await api.create()
    ctx = SessionContext(api.stack.manager)
    assert ctx.session_id is None
    async with ctx.bound(sid):
        assert ctx.session_id == sid
        assert SessionContext().session_id == sid  # one variable for every instance
    assert ctx.session_id is None
    with pytest.raises(SessionNotFoundError):
        await ctx.bind("no-such-session")
    with pytest.raises(SessionNotFoundError):
        await SessionContext().bind("bad\x00id")
    token = await SessionContext().bind("anything")  # without a manager: not checked
    assert ctx.session_id == "anything"
    ctx.reset(token)
    assert ctx.session_id is None


async def test_middleware_passes_non_http_scopes() -> None:
    calls: list[str] = []

    async def inner(scope: dict[str, object], receive: object, send: object) -> None:
        calls.append(str(scope["type"]))

    mw = SessionMiddleware(inner)  # type: ignore[arg-type]
    await mw({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert calls == ["lifespan"]

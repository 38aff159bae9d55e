"""Every endpoint of the HTTP API, and every error code, against the real stack."""

from __future__ import annotations

import httpx
import pytest

from durable_sessions.client import SessionManager
from durable_sessions.errors import (
    BranchExistsError,
    CheckpointNotFoundError,
    InvalidTransitionError,
    InvalidTurnError,
    SessionBusyError,
    SessionCapacityError,
    SessionClosedError,
    SessionError,
    SessionNotFoundError,
    WorkerUnavailableError,
)
from durable_sessions.http import create_app
from durable_sessions.http.errors import status_for
from durable_sessions.models import SessionConfig
from tests.helpers import assert_eventually
from tests.http.conftest import API_KEYS, KEY_A, Api, make_client
from tests.integration.conftest import Stack


def error_of(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code, body
    message = body["error"]["message"]
    assert isinstance(message, str) and message
    return message


async def test_create_read_list_delete(api: Api) -> None:
    r = await api.alice.post("/sessions", json={"metadata": {"topic": "billing"}, "ttl": 600})
    assert r.status_code == 201, r.text
    state = r.json()
    sid = state["session_id"]
    assert state["user_id"] == "alice"
    assert state["status"] == "active"
    assert state["metadata"] == {"topic": "billing"}
    assert r.headers["location"] == f"/sessions/{sid}"

    r = await api.alice.get(f"/sessions/{sid}")
    assert r.status_code == 200 and r.json()["session_id"] == sid

    r = await api.alice.post("/sessions")  # no body at all: defaults
    assert r.status_code == 201, r.text
    other = r.json()["session_id"]

    r = await api.alice.get("/sessions")
    assert r.status_code == 200
    assert [s["session_id"] for s in r.json()] == [sid, other]
    await api.alice.post(f"/sessions/{other}/suspend")

    async def listed_by_status() -> None:  # the listing is one flush interval behind
        r = await api.alice.get("/sessions", params={"status": "suspended"})
        assert [s["session_id"] for s in r.json()] == [other]
        r = await api.alice.get("/sessions", params={"status": "active"})
        assert [s["session_id"] for s in r.json()] == [sid]

    await assert_eventually(listed_by_status, timeout=10)

    r = await api.alice.delete(f"/sessions/{other}")
    assert r.status_code == 204 and r.content == b""
    error_of(await api.alice.get(f"/sessions/{other}"), 404, "session_not_found")
    error_of(await api.alice.delete(f"/sessions/{other}"), 404, "session_not_found")


async def test_turns_add_page_and_idempotent_retry(api: Api) -> None:
    sid = await api.create()
    first = await api.add(sid, "hello", metadata={"k": "v"}, tokens=3, cost=0.5, agent="a1")
    assert first["seq"] == 0 and first["role"] == "user" and first["content"] == "hello"
    assert first["tokens"] == 3 and first["cost"] == 0.5 and first["agent"] == "a1"
    assert first["metadata"] == {"k": "v"}
    await api.add(sid, "hi there", role="assistant")
    retried = await api.add(sid, "again", turn_id="fixed-1")
    same = await api.add(sid, "again", turn_id="fixed-1")
    assert retried["seq"] == same["seq"] == 2

    r = await api.alice.get(f"/sessions/{sid}/turns")
    assert [t["content"] for t in r.json()] == ["hello", "hi there", "again"]
    r = await api.alice.get(f"/sessions/{sid}/turns", params={"offset": 1, "limit": 1})
    assert [(t["seq"], t["content"]) for t in r.json()] == [(1, "hi there")]
    r = await api.alice.get(f"/sessions/{sid}/turns", params={"offset": 10})
    assert r.json() == []
    state = (await api.alice.get(f"/sessions/{sid}")).json()
    assert state["turn_count"] == 3


async def test_transitions_and_conflicts(api: Api) -> None:
    sid = await api.create()
    r = await api.alice.post(f"/sessions/{sid}/suspend")
    assert r.status_code == 200 and r.json()["status"] == "suspended"
    msg = error_of(
        await api.alice.post(f"/sessions/{sid}/turns", json={"role": "user", "content": "x"}),
        409,
        "invalid_transition",
    )
    assert "suspended" in msg
    error_of(await api.alice.post(f"/sessions/{sid}/suspend"), 409, "invalid_transition")
    r = await api.alice.post(f"/sessions/{sid}/resume")
    assert r.status_code == 200 and r.json()["status"] == "active"
    error_of(await api.alice.post(f"/sessions/{sid}/resume"), 409, "invalid_transition")
    r = await api.alice.post(f"/sessions/{sid}/close")
    assert r.status_code == 200 and r.json()["status"] == "closed"
    error_of(
        await api.alice.post(f"/sessions/{sid}/turns", json={"role": "user", "content": "x"}),
        409,
        "session_closed",
    )
    error_of(await api.alice.post(f"/sessions/{sid}/resume"), 409, "session_closed")
    # Reads still work once the session has ended.
    assert (await api.alice.get(f"/sessions/{sid}")).json()["status"] == "closed"


async def test_checkpoint_list_and_restore(api: Api) -> None:
    sid = await api.create()
    await api.add(sid, "one")
    r = await api.alice.post(f"/sessions/{sid}/checkpoints")
    assert r.status_code == 201, r.text
    cp = r.json()
    assert cp["session_id"] == sid and cp["turn_count"] == 1 and cp["reason"] == "manual"
    await api.add(sid, "two")

    r = await api.alice.get(f"/sessions/{sid}/checkpoints")
    assert cp["checkpoint_id"] in [c["checkpoint_id"] for c in r.json()]

    r = await api.alice.post(f"/checkpoints/{cp['checkpoint_id']}/restore")
    assert r.status_code == 200, r.text
    assert r.json()["turn_count"] == 1
    turns = (await api.alice.get(f"/sessions/{sid}/turns")).json()
    assert [t["content"] for t in turns] == ["one"]

    # A closed session comes back ACTIVE.
    await api.alice.post(f"/sessions/{sid}/close")
    r = await api.alice.post(f"/checkpoints/{cp['checkpoint_id']}/restore")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "active"
    error_of(await api.alice.post("/checkpoints/nope/restore"), 404, "checkpoint_not_found")


async def test_stats(api: Api) -> None:
    r = await api.alice.get("/stats")
    assert r.status_code == 200
    assert r.json()["active"] == 0
    a = await api.create()
    b = await api.create()
    await api.add(a, "x")
    await api.add(a, "y")
    await api.alice.post(f"/sessions/{b}/close")
    other = await api.create(api.bob)
    assert other

    async def check() -> None:
        stats = (await api.alice.get("/stats")).json()
        assert stats["active"] == 1 and stats["closed"] == 1, stats
        assert stats["avg_turns"] == 1.0, stats
        assert stats["total_tokens"] > 0

    await assert_eventually(check, timeout=10)
    bob_stats = (await api.bob.get("/stats")).json()
    assert bob_stats["active"] == 1 and bob_stats["closed"] == 0


async def test_unknown_session_everywhere_is_404(api: Api) -> None:
    for method, path, body in [
        ("GET", "/sessions/nope", None),
        ("DELETE", "/sessions/nope", None),
        ("POST", "/sessions/nope/turns", {"role": "user", "content": "x"}),
        ("GET", "/sessions/nope/turns", None),
        ("POST", "/sessions/nope/suspend", None),
        ("POST", "/sessions/nope/resume", None),
        ("POST", "/sessions/nope/close", None),
        ("POST", "/sessions/nope/checkpoints", None),
        ("GET", "/sessions/nope/checkpoints", None),
        ("POST", "/sessions/nope/branches", {"name": "b"}),
        ("GET", "/sessions/nope/branches", None),
        ("POST", "/sessions/nope/merge", {"source_session_id": "nope2"}),
        ("POST", "/sessions/nope/context", {"query": "q"}),
        ("GET", "/sessions/nope/events", None),
        ("GET", "/sessions/%00bad/turns", None),
        ("GET", "/sessions/" + "x" * 600, None),
    ]:
        r = await api.alice.request(method, path, json=body)
        assert error_of(r, 404, "session_not_found") == "no such session", (method, path)


async def test_auth_failures_are_401(api: Api) -> None:
    for client, headers in [
        (api.anonymous, {}),
        (api.anonymous, {"Authorization": "Bearer wrong-key"}),
        (api.anonymous, {"Authorization": f"Basic {KEY_A}"}),
        (api.anonymous, {"Authorization": "Bearer "}),
        (api.anonymous, {"Authorization": "sha256:" + "0" * 64}),
    ]:
        r = await client.get("/sessions", headers=headers)
        error_of(r, 401, "unauthorized")
        assert r.headers["www-authenticate"] == "Bearer"
    # Auth is checked before the body is even read: bad JSON without a key is still 401.
    r = await api.anonymous.post(
        "/sessions", content=b"{not json", headers={"content-type": "application/json"}
    )
    error_of(r, 401, "unauthorized")
    # Unknown routes too (nothing about the API is told without a key) ...
    error_of(await api.anonymous.get("/nowhere"), 401, "unauthorized")
    # ... but the health check and the OpenAPI document are public.
    assert (await api.anonymous.get("/healthz")).json() == {"status": "ok"}
    assert (await api.anonymous.get("/openapi.json")).status_code == 200
    # The lower-case scheme is accepted.
    r = await api.anonymous.get("/sessions", headers={"Authorization": f"bearer {KEY_A}"})
    assert r.status_code == 200


async def test_validation_errors_are_422_with_fields_and_no_content(api: Api) -> None:
    sid = await api.create()
    secret = "TOP-SECRET-CONTENT-42"
    cases: list[tuple[str, str, object, list[str]]] = [
        ("POST", f"/sessions/{sid}/turns", {"role": "wizard", "content": secret}, ["body.role"]),
        ("POST", f"/sessions/{sid}/turns", {"role": "user"}, ["body.content"]),
        ("POST", f"/sessions/{sid}/turns", {"role": "user", "content": ""}, ["body.content"]),
        (
            "POST",
            f"/sessions/{sid}/turns",
            {"role": "user", "content": secret, "seq": 4},
            ["body.seq"],
        ),
        (
            "POST",
            f"/sessions/{sid}/turns",
            {"role": "user", "content": secret, "tokens": -1, "cost": -2},
            ["body.tokens", "body.cost"],
        ),
        (
            "POST",
            f"/sessions/{sid}/turns",
            {"role": "user", "content": secret, "metadata": {"x": secret, "n": 10**30}},
            ["body.metadata"],
        ),
        ("POST", "/sessions", {"user_id": "mallory"}, ["body.user_id"]),
        ("POST", "/sessions", {"ttl": 0}, ["body.ttl"]),
        ("POST", "/sessions", {"ttl": 1e30}, ["body.ttl"]),
        ("POST", "/sessions", {"metadata": [secret]}, ["body.metadata"]),
        ("GET", f"/sessions/{sid}/turns?offset=-1", None, ["query.offset"]),
        ("GET", f"/sessions/{sid}/turns?limit=abc", None, ["query.limit"]),
        ("GET", "/sessions?status=bogus", None, ["query.status"]),
        ("POST", f"/sessions/{sid}/merge", {"source_session_id": sid, "strategy": "x"}, []),
        (
            "POST",
            f"/sessions/{sid}/merge",
            {"source_session_id": sid, "strategy": "selective"},
            ["body.selective.turn_ids"],
        ),
        (
            "POST",
            f"/sessions/{sid}/merge",
            {"source_session_id": sid, "turn_ids": ["a"]},
            ["body.append.turn_ids"],
        ),
        ("POST", f"/sessions/{sid}/branches", {"name": ""}, ["body.name"]),
        ("POST", f"/sessions/{sid}/context", {"max_turns": 0}, ["body.max_turns"]),
    ]
    for method, path, body, fields in cases:
        r = await api.alice.request(method, path, json=body)
        message = error_of(r, 422, "validation_error")
        assert secret not in r.text, (path, body)
        got = r.json()["error"]["fields"]
        for field in fields:
            assert field in got, (path, body, got)
            assert field in message
    # Malformed JSON (400 invalid_json, see test_http_details) and lone surrogates.
    r = await api.alice.post(
        f"/sessions/{sid}/turns",
        content=b'{"role": "user", "content": "' + secret.encode() + b'"',
        headers={"content-type": "application/json"},
    )
    error_of(r, 400, "invalid_json")
    assert secret not in r.text
    r = await api.alice.post(
        f"/sessions/{sid}/turns",
        content=b'{"role": "user", "content": "bad \\ud800 text"}',
        headers={"content-type": "application/json"},
    )
    assert error_of(r, 422, "validation_error")
    r = await api.alice.post(
        "/sessions",
        content=b'{"metadata": {"x": NaN}}',
        headers={"content-type": "application/json"},
    )
    error_of(r, 422, "validation_error")
    for bad in ["abc", "--5", "-2", "\u00b2", "99999999999", "1.5"]:
        r = await api.alice.get(
            f"/sessions/{sid}/events", headers={"Last-Event-ID": bad.encode("latin-1")}
        )
        assert "header.Last-Event-ID" in error_of(r, 422, "validation_error"), bad
    # Nothing of the above reached the session.
    assert (await api.alice.get(f"/sessions/{sid}")).json()["turn_count"] == 0


async def test_size_limits_are_413(stack: Stack) -> None:
    manager = SessionManager(
        stack.client,
        stack.store,
        SessionConfig(flush_interval=0.2, max_turn_bytes=1000),
        stack.task_queue,
    )
    app = create_app(manager, API_KEYS, max_body_bytes=2_000_000)
    async with make_client(app, KEY_A) as client:
        sid = (await client.post("/sessions")).json()["session_id"]
        # Over the session's max_turn_bytes: refused by the session.
        r = await client.post(f"/sessions/{sid}/turns", json={"role": "user", "content": "é" * 600})
        assert "1200 bytes" in error_of(r, 413, "payload_too_large")
        # Over the hard cap: refused before anything is sent.
        r = await client.post(
            f"/sessions/{sid}/turns", json={"role": "user", "content": "x" * 1_000_001}
        )
        error_of(r, 413, "payload_too_large")
        # A body over the app's limit, declared or not.
        r = await client.post(
            f"/sessions/{sid}/turns", json={"role": "user", "content": "x" * 2_100_000}
        )
        error_of(r, 413, "payload_too_large")

        async def chunks() -> object:
            yield b'{"role": "user", "content": "'
            for _ in range(30):
                yield b"x" * 100_000
            yield b'"}'

        r = await client.post(
            f"/sessions/{sid}/turns",
            content=chunks(),  # type: ignore[arg-type]
            headers={"content-type": "application/json"},
        )
        error_of(r, 413, "payload_too_large")
        # Metadata over its limit.
        r = await client.post("/sessions", json={"metadata": {"blob": "x" * 70_000}})
        error_of(r, 413, "payload_too_large")
        r = await client.post(
            f"/sessions/{sid}/turns",
            json={"role": "user", "content": "ok", "metadata": {"blob": "x" * 70_000}},
        )
        error_of(r, 413, "payload_too_large")
        assert (await client.get(f"/sessions/{sid}")).json()["turn_count"] == 0


async def test_capacity_is_429(stack: Stack) -> None:
    manager = SessionManager(
        stack.client,
        stack.store,
        SessionConfig(flush_interval=0.2, max_sessions_per_user=1, max_turns=1),
        stack.task_queue,
    )
    app = create_app(manager, {"k-cap": "capped-user"})
    async with make_client(app, "k-cap") as client:
        sid = (await client.post("/sessions")).json()["session_id"]
        error_of(await client.post("/sessions"), 429, "session_capacity")
        ok = await client.post(f"/sessions/{sid}/turns", json={"role": "user", "content": "1"})
        assert ok.status_code == 201
        r = await client.post(f"/sessions/{sid}/turns", json={"role": "user", "content": "2"})
        error_of(r, 429, "session_capacity")


async def test_no_worker_is_503(stack: Stack) -> None:
    manager = SessionManager(
        stack.client, stack.store, SessionConfig(), "no-worker-here", call_timeout=1
    )
    app = create_app(manager, API_KEYS)
    async with make_client(app, KEY_A) as client:
        r = await client.post("/sessions")  # creating needs no worker; its first turn does
        assert r.status_code == 201, r.text
        sid = r.json()["session_id"]
        r = await client.post(f"/sessions/{sid}/turns", json={"role": "user", "content": "hi"})
        message = error_of(r, 503, "worker_unavailable")
        assert "no-worker-here" not in message  # the task queue is for the logs
        assert r.headers["retry-after"] == "1"


async def test_no_keys_configured_refuses_everything(stack: Stack, no_keys_env: None) -> None:
    app = create_app(stack.manager)
    async with make_client(app, KEY_A) as client:
        error_of(await client.get("/sessions"), 401, "unauthorized")


async def test_keys_from_the_environment(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DURABLE_SESSIONS_HTTP_API_KEYS", "env-key=carol")
    app = create_app(stack.manager)
    async with make_client(app, "env-key") as client:
        r = await client.post("/sessions")
        assert r.status_code == 201 and r.json()["user_id"] == "carol"


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (SessionNotFoundError("x"), 404),
        (CheckpointNotFoundError("x"), 404),
        (SessionClosedError("x"), 409),
        (InvalidTransitionError("x"), 409),
        (BranchExistsError("x"), 409),
        (InvalidTurnError("x", field="role"), 422),
        (SessionCapacityError("x"), 429),
        (WorkerUnavailableError("x"), 503),
        (SessionBusyError("x"), 503),
        (SessionError("x", field="offset"), 422),
        (SessionError("x"), 500),
    ],
)
def test_status_mapping(error: SessionError, status: int) -> None:
    assert status_for(error) == status

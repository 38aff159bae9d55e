"""Tenant isolation: another user's session or checkpoint reads exactly like one that does not
exist (404), for every operation, and nothing of it changes."""

from __future__ import annotations

import httpx

from tests.http.conftest import Api


def assert_hidden(r: httpx.Response, code: str = "session_not_found") -> None:
    assert r.status_code == 404, (r.request.method, r.request.url, r.text)
    assert r.json()["error"]["code"] == code


async def test_bob_cannot_touch_alices_session(api: Api) -> None:
    sid = await api.create()
    await api.add(sid, "alice's secret")
    cp = (await api.alice.post(f"/sessions/{sid}/checkpoints")).json()
    bob_sid = await api.create(api.bob)

    # Not listed.
    listed = (await api.bob.get("/sessions")).json()
    assert [s["session_id"] for s in listed] == [bob_sid]

    not_yours = [
        ("GET", f"/sessions/{sid}", None),
        ("GET", f"/sessions/{sid}/turns", None),
        ("POST", f"/sessions/{sid}/turns", {"role": "user", "content": "injected"}),
        ("POST", f"/sessions/{sid}/suspend", None),
        ("POST", f"/sessions/{sid}/resume", None),
        ("POST", f"/sessions/{sid}/close", None),
        ("POST", f"/sessions/{sid}/checkpoints", None),
        ("GET", f"/sessions/{sid}/checkpoints", None),
        ("POST", f"/sessions/{sid}/branches", {"name": "stolen"}),
        ("GET", f"/sessions/{sid}/branches", None),
        ("POST", f"/sessions/{sid}/context", {"query": "secret"}),
        ("GET", f"/sessions/{sid}/events", None),
        # Merging alice's session into bob's, and bob's into alice's.
        ("POST", f"/sessions/{bob_sid}/merge", {"source_session_id": sid}),
        ("POST", f"/sessions/{sid}/merge", {"source_session_id": bob_sid}),
        ("DELETE", f"/sessions/{sid}", None),
    ]
    for method, path, body in not_yours:
        r = await api.bob.request(method, path, json=body)
        assert_hidden(r)
        assert "alice" not in r.text and "secret" not in r.text
        # Exactly what an unknown id answers.
        unknown = await api.bob.request(method, path.replace(sid, "0" * 32), json=body)
        assert unknown.json() == r.json()

    # Restoring alice's checkpoint, or branching bob's session from it.
    assert_hidden(
        await api.bob.post(f"/checkpoints/{cp['checkpoint_id']}/restore"), "checkpoint_not_found"
    )
    r = await api.bob.post(
        f"/sessions/{bob_sid}/branches",
        json={"name": "b", "from_checkpoint": cp["checkpoint_id"]},
    )
    assert_hidden(r, "checkpoint_not_found")

    # Alice's session is untouched.
    state = (await api.alice.get(f"/sessions/{sid}")).json()
    assert state["status"] == "active" and state["turn_count"] == 1
    turns = (await api.alice.get(f"/sessions/{sid}/turns")).json()
    assert [t["content"] for t in turns] == ["alice's secret"]
    assert (await api.alice.get(f"/sessions/{sid}/branches")).json() == []


async def test_session_header_does_not_grant_access(api: Api) -> None:
    """Presenting alice's session id in the session header or cookie changes nothing."""
    sid = await api.create()
    r = await api.bob.get(f"/sessions/{sid}", headers={"X-Session-Id": sid})
    assert_hidden(r)
    r = await api.bob.get(f"/sessions/{sid}", headers={"Cookie": f"durable_session_id={sid}"})
    assert_hidden(r)


async def test_stats_are_per_user(api: Api) -> None:
    await api.create()
    stats = (await api.bob.get("/stats")).json()
    assert stats["active"] == 0 and stats["closed"] == 0

"""``GET /sessions/{id}/lineage``: the branch tree a session belongs to, from its root."""

from __future__ import annotations

from typing import Any

from tests.http.conftest import Api


async def branch(api: Api, session_id: str, name: str) -> str:
    r = await api.alice.post(f"/sessions/{session_id}/branches", json={"name": name})
    assert r.status_code == 201, r.text
    return str(r.json()["session_id"])


def shape(node: dict[str, Any]) -> dict[str, Any]:
    """``{session_id: {child_id: {...}}}`` of a tree node."""
    return {node["session"]["session_id"]: _children(node)}


def _children(node: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in node["children"]:
        out.update(shape(child))
    return out


async def test_lineage_from_the_root(api: Api) -> None:
    root = await api.create()
    await api.add(root, "hello")
    first = await branch(api, root, "first")
    await api.add(first, "on the first branch")
    second = await branch(api, root, "second")
    nested = await branch(api, first, "nested")

    expected = {root: {first: {nested: {}}, second: {}}}
    for sid, ancestors in [
        (root, []),
        (first, [root]),
        (second, [root]),
        (nested, [root, first]),
    ]:
        r = await api.alice.get(f"/sessions/{sid}/lineage")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["session_id"] == sid
        assert body["ancestors"] == ancestors
        assert shape(body["root"]) == expected

    body = (await api.alice.get(f"/sessions/{nested}/lineage")).json()
    first_node = body["root"]["children"][0]
    assert first_node["session"]["branch_name"] == "first"
    assert first_node["session"]["parent_session_id"] == root
    assert first_node["children"][0]["session"]["fork_seq"] == 2


async def test_lineage_is_private(api: Api) -> None:
    root = await api.create()
    await api.add(root, "hello")
    await branch(api, root, "mine")
    r = await api.bob.get(f"/sessions/{root}/lineage")
    assert r.status_code == 404 and r.json()["error"]["code"] == "session_not_found"
    r = await api.anonymous.get(f"/sessions/{root}/lineage")
    assert r.status_code == 401
    r = await api.alice.get("/sessions/no-such-session/lineage")
    assert r.status_code == 404
    # A lone session is its own tree.
    bobs = await api.create(api.bob)
    body = (await api.bob.get(f"/sessions/{bobs}/lineage")).json()
    assert body == {
        "session_id": bobs,
        "ancestors": [],
        "root": {"session": body["root"]["session"], "children": []},
    }
    assert body["root"]["session"]["user_id"] == "bob"

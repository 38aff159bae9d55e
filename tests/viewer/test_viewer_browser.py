"""The session viewer in headless Chromium, against the real stack served over TCP.

A session with turns of every role (with metadata), a checkpoint and three branches (two of the
root, one nested under a branch) is opened in the viewer: the page must show the branch tree
from the root and the transcript with each turn's role, content and metadata. Screenshots go
to ``test-artifacts/viewer/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.http.conftest import KEY_A, Api, serve
from tests.viewer.chromium import ARTIFACTS, chromium_or_skip, dump_dom, screenshot
from tests.viewer.dom import Element

TURNS: list[dict[str, Any]] = [
    {
        "role": "system",
        "content": "You are a careful billing assistant.",
        "turn_id": "turn-system-1",
        "metadata": {"source": "viewer-test", "version": 2},
    },
    {
        "role": "user",
        "content": "Why is my invoice <b>wrong</b> & <img src=x onerror=alert(1)>?",
        "turn_id": "turn-user-1",
        "metadata": {"client": {"ip": "127.0.0.1", "tags": ["web", "beta"]}, "ok": True},
    },
    {
        "role": "assistant",
        "content": "Let me look.\nThe second line of the answer.",
        "turn_id": "turn-assistant-1",
        "tokens": 42,
        "agent": "billing-agent",
        "metadata": {"model": "test-model", "latency_ms": 12.5, "note": "<script>x()</script>"},
    },
    {
        "role": "tool",
        "content": '{"invoice": 1234, "status": "paid"}',
        "turn_id": "turn-tool-1",
        "metadata": {},
    },
]


@dataclass
class Tree:
    root: str
    first: str  # branch of the root, after the latest turn
    second: str  # branch of the root, at a checkpoint
    nested: str  # branch of ``first``
    checkpoint: str


async def branch(api: Api, session_id: str, name: str, **body: Any) -> str:
    r = await api.alice.post(f"/sessions/{session_id}/branches", json={"name": name, **body})
    assert r.status_code == 201, r.text
    return str(r.json()["session_id"])


async def build_tree(api: Api) -> Tree:
    root = await api.create(metadata={"project": "viewer", "customer": "ACME & co"})
    for turn in TURNS[:2]:
        await api.add(root, **turn)
    r = await api.alice.post(f"/sessions/{root}/checkpoints")
    assert r.status_code == 201, r.text
    checkpoint = r.json()["checkpoint_id"]
    for turn in TURNS[2:]:
        await api.add(root, **turn)
    first = await branch(api, root, "shorter-answer")
    await api.add(first, "Answer in one line, please.", turn_id="turn-first-1")
    second = await branch(api, root, "from-checkpoint", from_checkpoint=checkpoint)
    nested = await branch(api, first, "nested-idea")
    return Tree(root, first, second, nested, checkpoint)


def viewer_url(base: str, session_id: str | None = None) -> str:
    fragment = f"key={quote(KEY_A, safe='')}"
    if session_id is not None:
        fragment += f"&session={quote(session_id, safe='')}"
    return f"{base}/viewer#{fragment}"


def tree_nodes(document: Element) -> dict[str, Element]:
    nav = document.by_id("branch-tree")
    return {li.attrs["data-session-id"]: li for li in nav.select("li", data_session_id=True)}


def parent_node(li: Element) -> str | None:
    node = li.parent
    while node is not None and node.tag != "li":
        node = node.parent
    return None if node is None else node.attrs["data-session-id"]


def assert_tree(document: Element, tree: Tree, current: str) -> None:
    nodes = tree_nodes(document)
    assert set(nodes) == {tree.root, tree.first, tree.second, tree.nested}
    assert document.by_id("branch-tree").attrs["data-root-session-id"] == tree.root
    assert parent_node(nodes[tree.root]) is None
    assert parent_node(nodes[tree.first]) == tree.root
    assert parent_node(nodes[tree.second]) == tree.root
    assert parent_node(nodes[tree.nested]) == tree.first
    assert [sid for sid, li in nodes.items() if "current" in li.classes] == [current]
    for sid, li in nodes.items():
        link = li.child_elements("a")[0]
        assert link.attrs["href"] == f"#session={sid}"
        assert sid in link.text()
    assert "(root)" in nodes[tree.root].child_elements("a")[0].text()
    assert "shorter-answer" in nodes[tree.first].child_elements("a")[0].text()
    assert "from-checkpoint" in nodes[tree.second].child_elements("a")[0].text()
    assert "nested-idea" in nodes[tree.nested].child_elements("a")[0].text()


def cell(row: Element, field: str) -> Element:
    found = row.select("td", data_field=field)
    assert len(found) == 1, f"no cell {field!r} in the row"
    return found[0]


async def test_viewer_shows_tree_and_transcript(api: Api, tmp_path: Path) -> None:
    browser = chromium_or_skip()
    tree = await build_tree(api)
    async with serve(api.app) as base:
        document = await dump_dom(browser, viewer_url(base, tree.root), tmp_path)
        await screenshot(browser, viewer_url(base, tree.root), ARTIFACTS / "session.png", tmp_path)

        view = document.by_id("session-view")
        assert not view.hidden
        assert view.attrs["data-session-id"] == tree.root
        assert KEY_A not in str(document.text()), "the API key must not be on the page"
        header = document.by_id("session-header")
        assert cell_text(header, "session_id") == tree.root
        assert cell_text(header, "status") == "active"
        assert cell_text(header, "turn_count") == str(len(TURNS))
        assert json.loads(document.by_id("session-metadata").text()) == {
            "project": "viewer",
            "customer": "ACME & co",
        }

        assert_tree(document, tree, current=tree.root)

        transcript = document.by_id("transcript")
        rows = transcript.select("tr", class_="turn")
        assert [r.attrs["data-turn-id"] for r in rows] == [t["turn_id"] for t in TURNS]
        for seq, (row, turn) in enumerate(zip(rows, TURNS, strict=True)):
            assert row.attrs["data-seq"] == str(seq)
            assert row.attrs["data-role"] == turn["role"]
            assert cell(row, "role").text() == turn["role"]
            assert cell(row, "content").text() == turn["content"]
            assert cell(row, "turn_id").text() == turn["turn_id"]
            assert cell(row, "timestamp").select("time", datetime=True)
            metadata = cell(row, "metadata")
            if turn["metadata"]:
                assert json.loads(metadata.text()) == turn["metadata"]
            else:
                assert metadata.text() == "{}"
            # Data is text, never markup: no element came out of a content or a metadata value.
            assert [e.tag for e in cell(row, "content").iter()] == ["td", "div"]
            assert not metadata.select("script")
        assistant = rows[2]
        assert cell(assistant, "tokens").text() == "42"
        assert cell(assistant, "agent").text() == "billing-agent"
        assert not document.select("img", src="x")

        checkpoints = document.by_id("checkpoints").select("tr", data_checkpoint_id=True)
        assert tree.checkpoint in [r.attrs["data-checkpoint-id"] for r in checkpoints]

        # The nested branch: the same tree from the root, with the branch current, and its own
        # transcript (the root's turns, then its parent's, through the fork points).
        document = await dump_dom(browser, viewer_url(base, tree.nested), tmp_path / "nested")
        await screenshot(
            browser, viewer_url(base, tree.nested), ARTIFACTS / "nested-branch.png", tmp_path
        )
        assert_tree(document, tree, current=tree.nested)
        nodes = tree_nodes(document)
        assert "ancestor" in nodes[tree.root].classes and "ancestor" in nodes[tree.first].classes
        rows = document.by_id("transcript").select("tr", class_="turn")
        assert [cell(r, "content").text() for r in rows] == [
            *(t["content"] for t in TURNS),
            "Answer in one line, please.",
        ]
        assert cell_text(document.by_id("session-header"), "branch_name") == "nested-idea"
        assert cell_text(document.by_id("session-header"), "parent_session_id") == tree.first


async def test_viewer_lists_sessions(api: Api, tmp_path: Path) -> None:
    browser = chromium_or_skip()
    tree = await build_tree(api)
    other = await api.create(api.bob)  # another user's session is never listed
    async with serve(api.app) as base:
        document = await dump_dom(browser, viewer_url(base), tmp_path)
        await screenshot(browser, viewer_url(base), ARTIFACTS / "sessions.png", tmp_path)
    assert not document.by_id("sessions-view").hidden
    rows = document.by_id("sessions").select("tr", data_session_id=True)
    listed = {r.attrs["data-session-id"]: r for r in rows}
    assert {tree.root, tree.first, tree.second, tree.nested} <= set(listed)
    assert other not in listed
    root = listed[tree.root]
    assert root.select("a", href=f"#session={tree.root}")
    assert cell(root, "status").text() == "active"
    assert root.attrs["data-status"] == "active"
    assert cell(listed[tree.nested], "branch").text() == "nested-idea"
    assert "Sessions" in document.by_id("sessions-view").text()


async def test_viewer_asks_for_a_key_and_refuses_a_bad_one(api: Api, tmp_path: Path) -> None:
    browser = chromium_or_skip()
    async with serve(api.app) as base:
        document = await dump_dom(browser, f"{base}/viewer", tmp_path / "none")
        assert not document.by_id("key-form").hidden
        assert document.by_id("sessions-view").hidden
        document = await dump_dom(browser, f"{base}/viewer#key=wrong-key", tmp_path / "bad")
    assert not document.by_id("key-form").hidden
    assert "refused" in document.by_id("error").text()


def cell_text(header: Element, field: str) -> str:
    found = header.select("dd", data_field=field)
    assert len(found) == 1, f"no header field {field!r}"
    return found[0].text()

"""The viewer follows a session live, in headless Chromium: with the page open (no reload), an
agent's streamed turn grows on screen, is replaced by the stored turn, and an edit appears as a
new branch in the tree. Screenshots go to ``test-artifacts/viewer/live-*.png``."""

from __future__ import annotations

import asyncio
from pathlib import Path

from durable_sessions.client import SessionManager
from durable_sessions.group import GroupSession
from durable_sessions.http import create_app
from durable_sessions.models import SessionConfig, SessionTurn
from durable_sessions.worker import create_worker
from tests.http.conftest import API_KEYS, FAST_EVENTS, serve
from tests.http.streaming_agents import ChunkAgent
from tests.integration.conftest import Stack
from tests.viewer.cdp import Page
from tests.viewer.chromium import ARTIFACTS, chromium_or_skip
from tests.viewer.test_viewer_browser import viewer_url

STREAMING_ROW = "document.querySelector('#transcript-body tr.streaming')"
CHUNKS = f"Number(({STREAMING_ROW} || {{dataset: {{}}}}).dataset.chunks || 0)"
TREE_NODES = "document.querySelectorAll('#branch-tree li').length"


async def test_streamed_turn_grows_and_an_edit_appears_as_a_branch(
    stack: Stack, task_queue: str, tmp_path: Path
) -> None:
    browser = chromium_or_skip()
    tq = f"{task_queue}-viewer-live"
    streamer = ChunkAgent("streamer", chunks=50, delay=0.06)
    manager = SessionManager(stack.client, stack.store, SessionConfig(flush_interval=0.2), tq)
    app = create_app(manager, API_KEYS, events=FAST_EVENTS)
    worker = create_worker(stack.client, stack.store, task_queue=tq, agents=[streamer])  # type: ignore[arg-type]
    async with worker, serve(app) as base:
        group = await GroupSession.create(manager, "alice")
        await group.add_agent("streamer")
        sid = group.session_id
        question = await manager.add_turn(sid, SessionTurn(role="user", content="Tell me more."))
        page = await Page.open(browser, viewer_url(base, sid), tmp_path / "profile")
        try:
            await page.wait_for("document.body.dataset.ready === '1'")
            await page.wait_for("document.getElementById('session-view').dataset.live === 'open'")
            await page.evaluate("window.__sameDocument = 'yes'")  # gone if the page reloads

            tick = asyncio.create_task(group.tick())
            await page.wait_for(f"{CHUNKS} >= 8")
            early = await page.evaluate(f"{STREAMING_ROW}.textContent.length")
            await page.screenshot(ARTIFACTS / "live-streaming-early.png")
            await page.wait_for(f"{CHUNKS} >= 30")
            later = await page.evaluate(f"{STREAMING_ROW}.textContent.length")
            await page.screenshot(ARTIFACTS / "live-streaming-later.png")
            assert later > early > 0

            turn = await asyncio.wait_for(tick, 30)
            row = f"document.querySelector('#transcript-body tr[data-turn-id=\"{turn.turn_id}\"]')"
            await page.wait_for(f"{row} && !{STREAMING_ROW}")
            content = await page.evaluate(f"{row}.querySelector('.content-text').textContent")
            assert content == streamer.full_text()
            assert await page.evaluate(f"{row}.dataset.seq") == str(turn.seq)
            turns = "document.querySelector('#session-header [data-field=turn_count]')"
            await page.wait_for(f"{turns}.textContent === '2'")  # the header follows
            await page.screenshot(ARTIFACTS / "live-stored.png")

            assert await page.evaluate(TREE_NODES) == 1
            assert question.seq is not None
            branch = await manager.edit(sid, question.seq, "Tell me less.", name="shorter")
            await page.wait_for(f"{TREE_NODES} === 2")
            node = (
                "document.querySelector("
                f"'#branch-tree li[data-session-id=\"{branch.session_id}\"]')"
            )
            assert "shorter" in await page.evaluate(f"{node}.textContent")
            await page.screenshot(ARTIFACTS / "live-edit-branch.png")
            assert await page.evaluate("window.__sameDocument") == "yes"
        finally:
            await page.close()

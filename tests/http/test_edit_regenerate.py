"""Edit and regenerate at any turn, on the Python API, HTTP and the CLI: the old turns stay
readable (through a branch or the previous generation) and ``history()`` is contiguous after."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest_asyncio

from durable_sessions.branches import BranchManager
from durable_sessions.client import SessionManager
from durable_sessions.http import create_app
from durable_sessions.models import SessionConfig, SessionTurn
from durable_sessions.stores.base import read_transcript
from durable_sessions.stores.postgres import PostgresSessionStore
from durable_sessions.worker import create_worker
from tests.http.conftest import API_KEYS, FAST_EVENTS, KEY_A, make_client
from tests.http.streaming_agents import ChunkAgent
from tests.integration.conftest import Stack

TURNS = [("user", "u0"), ("assistant", "a1"), ("user", "u2"), ("assistant", "a3")]


@dataclass
class Agents:
    manager: SessionManager
    http: httpx.AsyncClient
    streamer: ChunkAgent
    task_queue: str


@pytest_asyncio.fixture(loop_scope="session")
async def agents(stack: Stack, task_queue: str) -> AsyncIterator[Agents]:
    tq = f"{task_queue}-edit"
    streamer = ChunkAgent("streamer", chunks=10, delay=0.02)
    manager = SessionManager(stack.client, stack.store, SessionConfig(flush_interval=0.2), tq)
    app = create_app(manager, API_KEYS, events=FAST_EVENTS)
    worker = create_worker(stack.client, stack.store, task_queue=tq, agents=[streamer])  # type: ignore[arg-type]
    async with worker, make_client(app, KEY_A) as http:
        yield Agents(manager, http, streamer, tq)


async def conversation(m: SessionManager, user: str = "alice") -> str:
    sid = (await m.create(user)).session_id
    for role, content in TURNS:
        await m.add_turn(sid, SessionTurn(role=role, content=content))  # type: ignore[arg-type]
    return sid


def contiguous(turns: list[SessionTurn]) -> list[str]:
    assert [t.seq for t in turns] == list(range(len(turns)))
    return [t.content for t in turns]


async def test_edit_as_branch_at_any_turn_leaves_the_session_alone(agents: Agents) -> None:
    m = agents.manager
    sid = await conversation(m)
    branch = await m.edit(sid, 2, "u2 edited")
    assert branch.parent_session_id == sid and branch.fork_seq == 2
    edited = await m.history(branch.session_id)
    assert contiguous(edited) == ["u0", "a1", "u2 edited"]
    original = await m.history(sid)
    assert contiguous(original) == ["u0", "a1", "u2", "a3"]
    assert edited[2].metadata["edited_from"] == original[2].turn_id
    assert edited[2].role == "user"
    fork = await BranchManager(m).create_branch(sid, "at-1", at_seq=1)
    assert contiguous(await m.history(fork.session_id)) == ["u0"]


async def test_edit_by_rewind_keeps_the_old_turns_in_the_previous_generation(
    agents: Agents,
) -> None:
    m = agents.manager
    sid = await conversation(m)
    before = await m.get(sid)
    state = await m.edit(sid, 1, "a1 edited", mode="rewind")
    assert state.generation != before.generation and state.turn_count == 2
    assert contiguous(await m.history(sid)) == ["u0", "a1 edited"]
    old = await read_transcript(
        m.store, sid, generation=before.generation, turn_count=before.turn_count
    )
    assert [t.content for t in old] == ["u0", "a1", "u2", "a3"]


async def test_regenerate_drops_the_last_answer_and_streams_a_new_one(agents: Agents) -> None:
    m = agents.manager
    sid = await conversation(m)
    before = await m.get(sid)
    events: list[str] = []

    async def watch() -> None:
        async for event in m.stream(sid, poll_interval=0.05):
            events.append(event.kind)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.5)
    turn = await m.regenerate(sid, agent="streamer")
    await asyncio.sleep(0.3)
    watcher.cancel()
    assert turn.agent == "streamer" and turn.seq == 3
    assert turn.content == agents.streamer.full_text()
    history = await m.history(sid)
    assert contiguous(history) == ["u0", "a1", "u2", agents.streamer.full_text()]
    assert "delta" in events and "done" in events
    old = await read_transcript(
        m.store, sid, generation=before.generation, turn_count=before.turn_count
    )
    assert old[3].content == "a3"


async def test_edit_regenerate_and_fork_over_http(agents: Agents) -> None:
    http, m = agents.http, agents.manager
    sid = await conversation(m)
    r = await http.post(f"/sessions/{sid}/branches", json={"name": "b1", "at_seq": 3})
    assert r.status_code == 201, r.text
    assert r.json()["turn_count"] == 3 and r.json()["fork_seq"] == 3
    r = await http.post(
        f"/sessions/{sid}/branches", json={"name": "b2", "at_seq": 1, "from_checkpoint": "x"}
    )
    assert r.status_code == 422
    r = await http.post(f"/sessions/{sid}/edit", json={"seq": 0, "content": "u0 edited"})
    assert r.status_code == 200, r.text
    branch = r.json()
    assert branch["parent_session_id"] == sid and branch["turn_count"] == 1
    r = await http.post(
        f"/sessions/{sid}/edit", json={"seq": 2, "content": "u2 edited", "mode": "rewind"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["session_id"] == sid and r.json()["turn_count"] == 3
    r = await http.post(f"/sessions/{sid}/regenerate", json={"agent": "streamer"})
    assert r.status_code == 201, r.text
    assert r.json()["seq"] == 3 and r.json()["agent"] == "streamer"
    r = await http.get(f"/sessions/{sid}/turns")
    assert [t["content"] for t in r.json()] == [
        "u0",
        "a1",
        "u2 edited",
        agents.streamer.full_text(),
    ]
    # Another user's session is not there.
    other = await conversation(m, user="bob")
    r = await http.post(f"/sessions/{other}/edit", json={"seq": 0, "content": "x"})
    assert r.status_code == 404


async def _cli(env: dict[str, str], *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "durable_sessions.cli",
        "session",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_cli_watch_edit_and_regenerate(agents: Agents, stack: Stack) -> None:
    m = agents.manager
    store = stack.store
    assert isinstance(store, PostgresSessionStore)
    env = {
        **os.environ,
        "DURABLE_SESSIONS_TEMPORAL_ADDRESS": stack.client.service_client.config.target_host,
        "DURABLE_SESSIONS_TASK_QUEUE": agents.task_queue,
        "DURABLE_SESSIONS_DATABASE_URL": f"{store.dsn}?schema={store.schema}",
    }
    sid = await conversation(m)
    watch = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "durable_sessions.cli",
        "session",
        "watch",
        sid,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert watch.stdout is not None
        lines: list[str] = []
        while not any(line.startswith("[status]") for line in lines):
            lines.append((await asyncio.wait_for(watch.stdout.readline(), 30)).decode())
        await asyncio.sleep(1.0)  # the watcher listens for chunks
        out = await _cli(env, "regenerate", sid, "--agent", "streamer")
        assert agents.streamer.full_text().strip() in out
        text = agents.streamer.full_text()
        while not any(line.startswith("[3] assistant:streamer: ") for line in lines):
            lines.append((await asyncio.wait_for(watch.stdout.readline(), 30)).decode())
        prefix = "[streaming] streamer: "
        streamed = [line[len(prefix) :] for line in lines if line.startswith(prefix)]
        assert "".join(s.rstrip("\n") for s in streamed) == text
    finally:
        watch.kill()
        await watch.wait()
    branch = json.loads(await _cli(env, "edit", sid, "0", "u0 edited", "--json"))
    assert branch["parent_session_id"] == sid and branch["turn_count"] == 1
    state = json.loads(await _cli(env, "edit", sid, "1", "a1 edited", "--mode", "rewind", "--json"))
    assert state["turn_count"] == 2
    assert contiguous(await m.history(sid)) == ["u0", "a1 edited"]

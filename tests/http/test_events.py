"""Server-sent events: live turns and status changes, resuming with Last-Event-ID."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from durable_sessions.http import create_app
from durable_sessions.models import SessionTurn
from tests.http.conftest import API_KEYS, FAST_EVENTS, KEY_A, KEY_B, Api, auth, serve


@dataclass
class Event:
    event: str
    data: Any
    id: str | None = None
    comments: list[str] = field(default_factory=list)


def parse_events(text: str) -> list[Event]:
    events: list[Event] = []
    for block in text.split("\n\n"):
        ev = _parse_block(block)
        if ev is not None:
            events.append(ev)
    return events


def _parse_block(block: str) -> Event | None:
    name, data, ident = "message", None, None
    for line in block.splitlines():
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            data = json.loads(line[len("data: ") :])
        elif line.startswith("id: "):
            ident = line[len("id: ") :]
        elif line == "id":
            ident = ""
    return None if data is None else Event(name, data, ident)


async def iter_events(response: httpx.Response) -> AsyncIterator[Event]:
    buffer: list[str] = []
    async for line in response.aiter_lines():
        if line:
            buffer.append(line)
            continue
        ev = _parse_block("\n".join(buffer))
        buffer.clear()
        if ev is not None:
            yield ev


async def test_replay_of_a_closed_session_and_resume(api: Api) -> None:
    sid = await api.create()
    for text in ["a", "b", "c"]:
        await api.add(sid, text)
    await api.alice.post(f"/sessions/{sid}/close")

    r = await api.alice.get(f"/sessions/{sid}/events")  # ends after the final status
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["cache-control"] == "no-cache"
    assert r.text.startswith("retry: ")
    events = parse_events(r.text)
    assert [(e.event, e.id) for e in events] == [
        ("turn", "0"),
        ("turn", "1"),
        ("turn", "2"),
        ("status", None),
    ]
    assert [e.data["content"] for e in events[:3]] == ["a", "b", "c"]
    assert events[-1].data["status"] == "closed"
    SessionTurn.model_validate(events[0].data)

    r = await api.alice.get(f"/sessions/{sid}/events", headers={"Last-Event-ID": "1"})
    events = parse_events(r.text)
    assert [(e.event, e.id) for e in events] == [("turn", "2"), ("status", None)]
    r = await api.alice.get(f"/sessions/{sid}/events", headers={"Last-Event-ID": "2"})
    assert [e.event for e in parse_events(r.text)] == ["status"]
    r = await api.alice.get(f"/sessions/{sid}/events", headers={"Last-Event-ID": "-1"})
    assert len(parse_events(r.text)) == 4
    # Past the end (the client saw turns a restore has since rewound): told where the end is.
    r = await api.alice.get(f"/sessions/{sid}/events", headers={"Last-Event-ID": "7"})
    events = parse_events(r.text)
    assert [(e.event, e.id) for e in events] == [("rewind", "2"), ("status", None)]
    assert events[0].data == {"generation": 0, "turn_count": 3}


async def next_event(events: AsyncIterator[Event], timeout: float = 10.0) -> Event:
    return await asyncio.wait_for(anext(events), timeout)


async def test_live_stream_turns_status_rewind_and_end(api: Api) -> None:
    m = api.stack.manager
    sid = await api.create()
    await api.add(sid, "before")
    app = create_app(m, API_KEYS, events=FAST_EVENTS)
    async with (
        serve(app) as url,
        httpx.AsyncClient(base_url=url, headers=auth(KEY_A)) as client,
        client.stream("GET", f"/sessions/{sid}/events") as response,
    ):
        assert response.status_code == 200
        events = iter_events(response)
        first = await next_event(events)
        assert (first.event, first.id, first.data["content"]) == ("turn", "0", "before")
        status = await next_event(events)
        assert status.event == "status" and status.data["status"] == "active"

        await m.add_turn(sid, SessionTurn(role="user", content="live 1"))
        cp = await m.checkpoint(sid)
        await m.add_turn(sid, SessionTurn(role="assistant", content="live 2"))
        ev = await next_event(events)
        assert (ev.event, ev.id, ev.data["content"]) == ("turn", "1", "live 1")
        ev = await next_event(events)
        assert (ev.event, ev.id, ev.data["content"]) == ("turn", "2", "live 2")

        await m.suspend(sid)
        ev = await next_event(events)
        assert ev.event == "status" and ev.data["status"] == "suspended"
        await m.resume(sid)
        ev = await next_event(events)
        assert ev.event == "status" and ev.data["status"] == "active"

        # An in-place restore rewinds the transcript: the stream says so, then goes on.
        await m.restore(cp.checkpoint_id)
        await m.add_turn(sid, SessionTurn(role="assistant", content="after restore"))
        ev = await next_event(events)
        assert ev.event == "rewind", ev
        assert ev.data["turn_count"] == 2 and ev.id == "1"
        ev = await next_event(events)
        assert (ev.event, ev.id, ev.data["content"]) == ("turn", "2", "after restore")

        await m.close(sid)
        ev = await next_event(events)
        assert ev.event == "status" and ev.data["status"] == "closed"
        rest = [e async for e in events]  # the stream ends
        assert rest == []


async def test_live_resume_with_last_event_id(api: Api) -> None:
    m = api.stack.manager
    sid = await api.create()
    app = create_app(m, API_KEYS, events=FAST_EVENTS)
    async with serve(app) as url, httpx.AsyncClient(base_url=url, headers=auth(KEY_A)) as client:
        async with client.stream("GET", f"/sessions/{sid}/events") as response:
            events = iter_events(response)
            assert (await next_event(events)).event == "status"
            await m.add_turn(sid, SessionTurn(role="user", content="t0"))
            await m.add_turn(sid, SessionTurn(role="user", content="t1"))
            assert (await next_event(events)).id == "0"
            last = await next_event(events)
            assert last.id == "1"
        # Disconnected; turns arrive meanwhile.
        await m.add_turn(sid, SessionTurn(role="user", content="t2"))
        await m.add_turn(sid, SessionTurn(role="user", content="t3"))
        async with client.stream(
            "GET", f"/sessions/{sid}/events", headers={"Last-Event-ID": last.id or ""}
        ) as response:
            events = iter_events(response)
            got = [await next_event(events), await next_event(events)]
            assert [(e.event, e.id, e.data["content"]) for e in got] == [
                ("turn", "2", "t2"),
                ("turn", "3", "t3"),
            ]
            assert (await next_event(events)).event == "status"

        # Heartbeats keep an idle stream alive.
        async with client.stream("GET", f"/sessions/{sid}/events") as response:
            seen_ping = False
            async for line in response.aiter_lines():
                if line.startswith(": ping"):
                    seen_ping = True
                    break
            assert seen_ping

        # Another user cannot stream it.
        r = await client.get(f"/sessions/{sid}/events", headers=auth(KEY_B))
        assert r.status_code == 404


async def test_stream_ends_with_error_when_the_session_is_deleted(api: Api) -> None:
    m = api.stack.manager
    sid = await api.create()
    app = create_app(m, API_KEYS, events=FAST_EVENTS)
    async with (
        serve(app) as url,
        httpx.AsyncClient(base_url=url, headers=auth(KEY_A)) as client,
        client.stream("GET", f"/sessions/{sid}/events") as response,
    ):
        events = iter_events(response)
        assert (await next_event(events)).event == "status"
        await m.delete(sid)
        ev = await next_event(events)
        assert ev.event == "error" and ev.data["code"] == "session_not_found"
        assert [e async for e in events] == []

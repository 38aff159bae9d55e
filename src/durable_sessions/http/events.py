"""Server-sent events of one session: its new turns, streamed chunks and status changes.

The events are those of ``durable_sessions.streaming.watch`` (one SSE event each, ``event:``
its kind, ``data:`` its JSON):

* ``event: status`` with the ``SessionState`` as data: once when the stream starts, then on
  every change of status. The stream ends after the status of a closed or expired session.
* ``event: turn`` with ``id: <seq>`` and the stored ``SessionTurn`` as data, in seq order.
  A client that reconnects with ``Last-Event-ID: <seq>`` gets every turn after that seq.
* ``event: delta`` while an agent writes a turn: ``{"turn_id", "agent", "attempt", "index",
  "chunks", "text", "at"}``, chunks ``index .. index + chunks - 1`` of the turn. ``event:
  restart`` (``{"turn_id", "attempt"}``): the agent's activity was retried; drop what was
  received for that turn. ``event: done``: the agent finished; the ``turn`` event follows once
  the session stored it. Chunk events carry no ``id`` and are not replayed on reconnect.
* ``event: rewind`` when the transcript is rewound (restore, edit, regenerate) while the
  stream is open: data ``{"generation", "turn_count"}``, and ``id`` the last seq still in the
  transcript (empty when none is), so a reconnect resumes from the right place. Turns from
  ``turn_count`` on are then sent again as they are in the new transcript.
* ``event: branch`` with the ``SessionState`` of a branch created while the stream is open.
* ``event: error`` with ``{"code", "message"}`` when the session disappears (deleted) or
  cannot be read; the stream ends after it.
* ``: ping`` comments when nothing else was sent for a while, so proxies keep the stream open.

Status events carry no ``id``, so the last event id a client holds is always a turn's seq.
``Last-Event-ID`` is read as a seq of the transcript as it is now: one past its end (the
transcript was rewound while the client was away) gets a ``rewind`` to the end first. Across
an in-place restore the client did not see, turns whose seq is at or below its id are not
sent again: the seq alone cannot tell which transcript the client saw.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from durable_sessions.client import SessionManager
from durable_sessions.streaming._watch import watch

__all__ = ["EventStreamOptions", "format_event", "session_events"]


@dataclass(frozen=True)
class EventStreamOptions:
    """Tuning of ``GET /sessions/{id}/events``.

    Attributes:
        poll_interval: seconds between two polls of the session.
        heartbeat_interval: seconds of silence after which a ``: ping`` comment is sent.
        retry_ms: the reconnection delay suggested to clients (the SSE ``retry:`` field).
    """

    poll_interval: float = 0.25
    heartbeat_interval: float = 15.0
    retry_ms: int = 1000


def format_event(event: str, data: str, *, id: str | None = None) -> bytes:
    """One SSE event. ``data`` must be a single line (compact JSON is)."""
    lines = [f"event: {event}"]
    if id is not None:
        lines.append(f"id: {id}" if id else "id")
    lines.append(f"data: {data}")
    return ("\n".join(lines) + "\n\n").encode("utf-8")


async def session_events(
    manager: SessionManager,
    session_id: str,
    *,
    after_seq: int = -1,
    options: EventStreamOptions | None = None,
) -> AsyncIterator[bytes]:
    """The SSE byte stream of one session, starting with the turns after ``after_seq``.

    The caller checks that the session exists and belongs to the client before streaming.
    """
    opts = options or EventStreamOptions()
    yield f"retry: {opts.retry_ms}\n\n".encode()
    async for event in watch(
        manager,
        session_id,
        after_seq=after_seq,
        poll_interval=opts.poll_interval,
        heartbeat_interval=opts.heartbeat_interval,
    ):
        if event.kind == "ping":
            yield b": ping\n\n"
        else:
            data = json.dumps(event.data, ensure_ascii=False, separators=(",", ":"))
            yield format_event(event.kind, data, id=event.id)

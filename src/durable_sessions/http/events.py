"""Server-sent events of one session: its new turns and its status changes, as they happen.

The stream polls the manager (one ``get`` per poll; ``history`` only when there are new turns)
and writes:

* ``event: status`` with the ``SessionState`` as data: once when the stream starts, then on
  every change of status. The stream ends after the status of a closed or expired session.
* ``event: turn`` with ``id: <seq>`` and the stored ``SessionTurn`` as data, in seq order.
  A client that reconnects with ``Last-Event-ID: <seq>`` gets every turn after that seq.
* ``event: rewind`` when an in-place restore rewinds the transcript while the stream is open:
  data ``{"generation", "turn_count"}``, and ``id`` the last seq still in the transcript (empty
  when none is), so a reconnect resumes from the right place. Turns from ``turn_count`` on are
  then sent again as they are in the new transcript.
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

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from durable_sessions.client import SessionManager
from durable_sessions.errors import SessionBusyError, SessionError, WorkerUnavailableError
from durable_sessions.models import SessionStatus
from durable_sessions.stores.base import SessionStore

MAX_LINEAGE = 10_000


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


def _error_event(exc: SessionError) -> bytes:
    message = "no such session" if exc.code == "session_not_found" else exc.message
    return format_event("error", json.dumps({"code": exc.code, "message": message}))


async def _rewind_point(store: SessionStore, session_id: str, old: int, new: int) -> int:
    """How many leading turns generation ``new`` shares with generation ``old`` (0 when the
    lineage cannot be followed back to ``old``)."""
    point: int | None = None
    generation = new
    for _ in range(MAX_LINEAGE):
        if generation == old:
            return point if point is not None else 2**63
        parent = await store.get_generation_parent(session_id, generation)
        if parent is None:
            return 0
        generation, fork_seq = parent
        point = fork_seq if point is None else min(point, fork_seq)
    return 0


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
    loop = asyncio.get_running_loop()
    yield f"retry: {opts.retry_ms}\n\n".encode()
    last_sent = loop.time()
    next_seq = max(0, after_seq + 1)
    last_status: SessionStatus | None = None
    generation: int | None = None
    while True:
        out: list[bytes] = []
        try:
            state = await manager.get(session_id)
            seq = next_seq
            point: int | None = None
            if generation is None:
                # Resuming past the end: the transcript was rewound while the client was away.
                point = state.turn_count if seq > state.turn_count else None
            elif state.generation != generation:
                point = await _rewind_point(manager.store, session_id, generation, state.generation)
            if point is not None and point < seq:
                seq = point
                data = json.dumps({"generation": state.generation, "turn_count": point})
                out.append(format_event("rewind", data, id=str(point - 1) if point else ""))
            if state.turn_count > seq:
                for turn in await manager.history(session_id, offset=seq):
                    assert turn.seq is not None
                    out.append(format_event("turn", turn.model_dump_json(), id=str(turn.seq)))
                    seq = turn.seq + 1
        except (WorkerUnavailableError, SessionBusyError):
            # Transient: nothing of this poll is kept; poll again.
            out.clear()
        except SessionError as exc:
            yield _error_event(exc)
            return
        else:
            generation, next_seq = state.generation, seq
            if state.status is not last_status:
                out.append(format_event("status", state.model_dump_json()))
                last_status = state.status
        for chunk in out:
            yield chunk
        if out:
            last_sent = loop.time()
        if last_status is not None and last_status.is_terminal:
            return
        if loop.time() - last_sent >= opts.heartbeat_interval:
            yield b": ping\n\n"
            last_sent = loop.time()
        await asyncio.sleep(opts.poll_interval)

"""``watch``: a session's live events, merged from its workflow/store and the chunk channel.

The session part polls (one ``get`` per poll; ``history`` only when there are new turns;
the session's branches once a second) and yields:

* ``status`` with the ``SessionState``: once at the start, then on every change of status; the
  stream ends after the status of a closed or expired session.
* ``turn`` (id = seq) with the stored ``SessionTurn``, in seq order, from ``after_seq + 1``.
* ``rewind`` when the transcript is rewound (restore, truncate, edit, regenerate) while
  watching: ``{"generation", "turn_count"}``, id the last seq still in the transcript (empty
  when none); turns from ``turn_count`` on are then sent again as they are now.
* ``branch`` with the ``SessionState`` of each branch of the session created while watching.
* ``error`` ``{"code", "message"}`` when the session disappears or cannot be read; then ends.

Chunk events (``delta``, ``restart``, ``done``, see ``ChunkEvent``) are pushed by the channel
and yielded as they arrive, between polls, with no polling delay.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from durable_sessions.errors import SessionBusyError, SessionError, WorkerUnavailableError
from durable_sessions.models import SessionStatus
from durable_sessions.stores.base import SessionStore
from durable_sessions.streaming._broker import StreamBroker, broker_for_store
from durable_sessions.streaming._events import ChunkEvent, SessionEvent

if TYPE_CHECKING:
    from durable_sessions.client import SessionManager

__all__ = ["watch"]

MAX_LINEAGE = 10_000
BRANCH_POLL_SECONDS = 1.0


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


def _error(exc: SessionError) -> SessionEvent:
    message = "no such session" if exc.code == "session_not_found" else exc.message
    return SessionEvent(kind="error", data={"code": exc.code, "message": message})


class _Poller:
    """The session part of the stream: one poll at a time."""

    def __init__(self, manager: SessionManager, session_id: str, after_seq: int) -> None:
        self.manager = manager
        self.session_id = session_id
        self.next_seq = max(0, after_seq + 1)
        self.last_status: SessionStatus | None = None
        self.generation: int | None = None
        self.branches: set[str] | None = None
        self.branches_polled = 0.0

    async def poll(self, now: float) -> list[SessionEvent]:
        out: list[SessionEvent] = []
        manager, session_id = self.manager, self.session_id
        state = await manager.get(session_id)
        seq = self.next_seq
        point: int | None = None
        if self.generation is None:
            # Resuming past the end: the transcript was rewound while the client was away.
            point = state.turn_count if seq > state.turn_count else None
        elif state.generation != self.generation:
            point = await _rewind_point(
                manager.store, session_id, self.generation, state.generation
            )
        if point is not None and point < seq:
            seq = point
            data = {"generation": state.generation, "turn_count": point}
            out.append(SessionEvent(kind="rewind", data=data, id=str(point - 1) if point else ""))
        if state.turn_count > seq:
            for turn in await manager.history(session_id, offset=seq):
                assert turn.seq is not None
                out.append(
                    SessionEvent(kind="turn", data=turn.model_dump(mode="json"), id=str(turn.seq))
                )
                seq = turn.seq + 1
        if now - self.branches_polled >= BRANCH_POLL_SECONDS:
            self.branches_polled = now
            found = await manager.store.list_branches(session_id)
            known = self.branches
            self.branches = {b.session_id for b in found}
            if known is not None:
                out.extend(
                    SessionEvent(kind="branch", data=b.model_dump(mode="json"))
                    for b in found
                    if b.session_id not in known
                )
        self.generation, self.next_seq = state.generation, seq
        if state.status is not self.last_status:
            out.append(SessionEvent(kind="status", data=state.model_dump(mode="json")))
            self.last_status = state.status
        return out


_END = SessionEvent(kind="ping", data={"end": True})


async def _pump(events: AsyncIterator[ChunkEvent], queue: asyncio.Queue[SessionEvent]) -> None:
    async for chunk in events:
        await queue.put(SessionEvent(kind=chunk.kind, data=chunk.data()))


async def _poll_loop(
    poller: _Poller, queue: asyncio.Queue[SessionEvent], poll_interval: float
) -> None:
    """Polls in its own task, so a slow poll never holds chunks back."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            out = await poller.poll(loop.time())
        except (WorkerUnavailableError, SessionBusyError):
            out = []  # transient: poll again
        except SessionError as exc:
            await queue.put(_error(exc))
            await queue.put(_END)
            return
        for event in out:
            await queue.put(event)
        if poller.last_status is not None and poller.last_status.is_terminal:
            await queue.put(_END)
            return
        await asyncio.sleep(poll_interval)


async def watch(
    manager: SessionManager,
    session_id: str,
    *,
    after_seq: int = -1,
    poll_interval: float = 0.25,
    heartbeat_interval: float | None = None,
    broker: StreamBroker | None = None,
    chunks: bool = True,
) -> AsyncIterator[SessionEvent]:
    """The live events of one session (see the module docstring).

    Args:
        after_seq: send turns after this seq (``-1``: the whole transcript).
        poll_interval: seconds between two polls of the session.
        heartbeat_interval: yield a ``ping`` after this many seconds of silence (None: never).
        broker: the chunk channel; the one matching the manager's store by default.
        chunks: False leaves chunk events out (only stored turns).
    """
    queue: asyncio.Queue[SessionEvent] = asyncio.Queue()
    tasks: list[asyncio.Task[None]] = []
    async with contextlib.AsyncExitStack() as stack:
        try:
            if chunks:
                channel = broker or broker_for_store(manager.store)
                events = await stack.enter_async_context(channel.subscribe(session_id))
                tasks.append(asyncio.create_task(_pump(events, queue)))
            poller = _Poller(manager, session_id, after_seq)
            tasks.append(asyncio.create_task(_poll_loop(poller, queue, poll_interval)))
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), heartbeat_interval)
                except TimeoutError:
                    yield SessionEvent(kind="ping")
                    continue
                if event is _END:
                    return
                yield event
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

"""The read side of ``SessionManager``: live reads from the workflow, the rest from the store.

Private; ``SessionManager`` inherits it (``durable_sessions.client``). Live reads are queries
(nothing is written to the session's history); persisted reads (history, listings,
checkpoints, sessions long closed) go to the store directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar

from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from durable_sessions._transport import SessionTransport
from durable_sessions.activities.compaction import with_summaries
from durable_sessions.activities.context import ContextActivities, ContextResult
from durable_sessions.errors import (
    SessionBusyError,
    SessionClosedError,
    SessionError,
    SessionNotFoundError,
    TemporalUnavailableError,
)
from durable_sessions.models import Checkpoint, SessionState, SessionStatus, SessionTurn
from durable_sessions.stores.base import read_transcript
from durable_sessions.workflows.messages import ContextQuery, RecentWindow, SessionSnapshot

if TYPE_CHECKING:
    from durable_sessions.recall import RecallHit

__all__ = ["SessionReads", "window_tail"]

T = TypeVar("T")


RECENT_WINDOW_RETRY_SECONDS = 300.0
"""After workers answered that they lack ``recent_window``, ask them again this much later."""


def window_tail(recent: list[SessionTurn], turn_count: int, limit: int) -> list[SessionTurn] | None:
    """The last ``limit`` turns of a ``turn_count``-turn transcript out of the workflow's
    recent window, or None when the window does not hold all of them (it must end at the
    head's last turn, with no gap)."""
    want = min(limit, turn_count)
    if want <= 0:
        return []
    if len(recent) < want or recent[-1].seq != turn_count - 1:
        return None
    window = recent[-want:]
    first = window[0].seq
    if first is None or any(t.seq != first + i for i, t in enumerate(window)):
        return None
    return window


class SessionReads(SessionTransport):
    """Reads of ``SessionManager`` (see the module docstring)."""

    _no_recent_window_until: float = 0.0

    async def _missing(self, session_id: str, message: str) -> SessionError:
        """What a NOT_FOUND from Temporal means for this session."""
        # A call aimed at a run that has just continued as new reads "already completed": the
        # session's latest run is what counts, and Temporal answers that even while the store is
        # down.
        try:
            latest = await self.client.get_workflow_handle(session_id).describe(
                rpc_timeout=self.call_timeout
            )
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                return TemporalUnavailableError(
                    f"the Temporal service did not complete the call ({exc.status.name})",
                    session_id=session_id,
                )
        else:
            if latest.status == WorkflowExecutionStatus.RUNNING:
                return SessionBusyError(
                    "the session's run was ending; retry in a moment", session_id=session_id
                )
        # Every session's header is stored before ``create`` returns, so no header means no
        # session (never created, or deleted), whatever Temporal still remembers.
        header = await self.store.get_session(session_id)
        if header is None:
            return SessionNotFoundError("no such session", session_id=session_id)
        if "completed" in message or header.status.is_terminal:
            return SessionClosedError(
                f"session is {header.status.value}", session_id=session_id, field="status"
            )
        return SessionNotFoundError("no such session", session_id=session_id)

    # ------------------------------------------------------------------ reads

    async def _live_snapshot(self, session_id: str) -> SessionSnapshot | None:
        """The workflow's snapshot if the session is running, else None (read the store).

        A terminal header in the store is usually the run's last write, but it may be the
        write of a workflow task that then timed out (its local-activity flush ran, its
        commands, the close among them, were discarded) while the run goes on, until the run's
        next flush rewrites it. So it is checked with Temporal first (``describe``: a server
        call, no worker, no replay), and the run answers when it is still running.
        """
        header = await self.store.get_session(session_id)
        if header is None:
            raise SessionNotFoundError("no such session", session_id=session_id)
        if await self._ended(header):
            return None
        try:
            return await self._query(session_id, "snapshot", SessionSnapshot)
        except (SessionClosedError, SessionNotFoundError):
            return None

    async def _ended(self, header: SessionState) -> bool:
        """Whether the session has ended, by its stored header confirmed with Temporal (see
        ``_live_snapshot``): a header that says it is live is taken at its word."""
        return header.status.is_terminal and not await self._still_running(header.session_id)

    async def _still_running(self, session_id: str) -> bool:
        """Whether the session's latest run is still running (one server call, no worker).
        When Temporal cannot say (unreachable), the store's header is taken at its word, so an
        ended session stays readable from the store alone."""
        try:
            described = await self.client.get_workflow_handle(session_id).describe(
                rpc_timeout=self.call_timeout
            )
        except RPCError:
            return False
        return described.status == WorkflowExecutionStatus.RUNNING

    async def get(self, session_id: str) -> SessionState:
        """The session's header: live from its workflow, or from the store once it has ended."""
        snap = await self._live_snapshot(session_id)
        if snap is not None:
            return snap.state
        header = await self.store.get_session(session_id)
        if header is None:
            raise SessionNotFoundError("no such session", session_id=session_id)
        return header

    async def history(
        self, session_id: str, offset: int = 0, limit: int | None = None
    ) -> list[SessionTurn]:
        """The whole transcript in order (a page of it with offset/limit), flushed or not."""
        if offset < 0 or (limit is not None and limit < 0):
            raise SessionError("offset and limit must be >= 0", field="offset")
        snap = await self._live_snapshot(session_id)
        if snap is None:
            header = await self.store.get_session(session_id)
            if header is None:
                raise SessionNotFoundError("no such session", session_id=session_id)
            return await read_transcript(self.store, session_id, offset=offset, limit=limit)
        state = snap.state
        first_pending = snap.pending[0].seq if snap.pending else state.turn_count
        assert first_pending is not None
        end = state.turn_count if limit is None else min(state.turn_count, offset + limit)
        turns = await read_transcript(
            self.store,
            session_id,
            generation=state.generation,
            turn_count=first_pending,
            offset=offset,
            limit=None if limit is None else max(0, min(end, first_pending) - offset),
        )
        turns.extend(t for t in snap.pending if t.seq is not None and offset <= t.seq < end)
        return turns

    async def recent_turns(self, session_id: str) -> list[SessionTurn]:
        """The workflow's bounded window of latest turns (a query)."""
        return await self._query(session_id, "recent_turns", list[SessionTurn])

    async def tail(self, session_id: str, limit: int) -> list[SessionTurn]:
        """The transcript's last ``limit`` turns, oldest first.

        From the workflow's recent window (one query, no store read) when it holds them all,
        which it does for the last ``recent_window`` turns (20 by default) of moderate size;
        else from the store, like ``history``.
        """
        if limit <= 0:
            return []
        try:
            count, recent = await self._recent_window(session_id)
        except (SessionClosedError, SessionNotFoundError):
            header = await self.store.get_session(session_id)
            if header is None:
                raise SessionNotFoundError("no such session", session_id=session_id) from None
            count = header.turn_count
        else:
            window = window_tail(recent, count, limit)
            if window is not None:
                return window
        if limit >= count:
            return await self.history(session_id)
        return await self.history(session_id, offset=count - limit, limit=limit)

    async def _recent_window(self, session_id: str) -> tuple[int, list[SessionTurn]]:
        """The head's turn count and the workflow's recent window, read together."""
        loop = asyncio.get_running_loop()
        if loop.time() >= self._no_recent_window_until:
            try:
                win = await self._query(session_id, "recent_window", RecentWindow)
            except SessionError as exc:
                if "recent_window" not in exc.message:
                    raise
                # Workers of an older version: fall back to two queries for a while.
                self.__dict__["_no_recent_window_until"] = loop.time() + RECENT_WINDOW_RETRY_SECONDS
            else:
                return win.turn_count, win.turns
        state = await self._query(session_id, "state", SessionState)
        recent = await self._query(session_id, "recent_turns", list[SessionTurn])
        return state.turn_count, recent

    async def list_sessions(
        self, user_id: str, status: SessionStatus | None = None
    ) -> list[SessionState]:
        """A user's sessions from the store (headers are at most one flush interval behind)."""
        return await self.store.list_sessions(user_id, status)

    async def recall(
        self,
        user_id: str,
        query: str,
        limit: int = 20,
        sessions: Sequence[str] | None = None,
    ) -> list[RecallHit]:
        """The turns of the user's sessions most relevant to ``query``, best first, each with
        its session id and seq (``durable_sessions.recall``: searched in the store).

        Raises:
            RecallUnavailableError: If the store has no full-text index (see the README).
        """
        from durable_sessions.recall import recall

        return await recall(self.store, user_id, query, limit=limit, sessions=sessions)

    async def context(
        self,
        session_id: str,
        query: str = "",
        max_turns: int | None = 20,
        max_tokens: int | None = None,
        *,
        pruner: str = "relevance",
    ) -> list[SessionTurn]:
        """The turns an agent should see for ``query``, in order, within the budgets.

        Computed by the ``compute_context`` activity on a worker (which caches the transcript
        and its relevance index); only the chosen turn numbers cross Temporal. A session that
        has ended is pruned here, from the store.
        """
        header = await self.store.get_session(session_id)
        if header is None:
            raise SessionNotFoundError("no such session", session_id=session_id)
        if not await self._ended(header):
            try:
                result = await self._update(
                    session_id,
                    "context",
                    ContextQuery(
                        query=query, max_turns=max_turns, max_tokens=max_tokens, pruner=pruner
                    ),
                    ContextResult,
                )
                turns = await self._turns_by_seq(
                    session_id, result.generation, result.turn_count, result.seqs
                )
                return await with_summaries(self.store, turns, result.summaries)
            except SessionClosedError:
                header = await self.store.get_session(session_id) or header
        history = await read_transcript(self.store, session_id)
        local = ContextActivities(self.store).pruner(pruner)
        return await local.prune(history, query, max_turns=max_turns, max_tokens=max_tokens)

    async def _turns_by_seq(
        self, session_id: str, generation: int, turn_count: int, seqs: list[int]
    ) -> list[SessionTurn]:
        """Read the given turns, one store range per run of consecutive seqs."""
        out: list[SessionTurn] = []
        i = 0
        while i < len(seqs):
            j = i
            while j + 1 < len(seqs) and seqs[j + 1] == seqs[j] + 1:
                j += 1
            out.extend(
                await read_transcript(
                    self.store,
                    session_id,
                    generation=generation,
                    turn_count=turn_count,
                    offset=seqs[i],
                    limit=seqs[j] - seqs[i] + 1,
                )
            )
            i = j + 1
        return out

    async def list_checkpoints(self, session_id: str) -> list[Checkpoint]:
        return await self.store.list_checkpoints(session_id)

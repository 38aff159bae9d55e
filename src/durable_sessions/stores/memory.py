"""An in-memory ``SessionStore`` for unit tests and ``durable_sessions.testing``.

It is the reference implementation of the contract: small enough to read in one go.
"""

from __future__ import annotations

from collections.abc import Sequence

from durable_sessions.core.compaction import Summary
from durable_sessions.models import (
    Checkpoint,
    SessionState,
    SessionStats,
    SessionStatus,
    SessionTurn,
)
from durable_sessions.stores._search import TurnMatch, scan_search
from durable_sessions.stores.base import PersistBatch

__all__ = ["InMemorySessionStore"]


class InMemorySessionStore:
    """Keeps everything in dicts; nothing survives the process."""

    def __init__(self) -> None:
        self._sessions: dict[str, SessionState] = {}
        self._turns: dict[tuple[str, int], dict[int, SessionTurn]] = {}
        self._generations: dict[tuple[str, int], tuple[int, int]] = {}
        self._checkpoints: dict[str, Checkpoint] = {}
        self._summaries: dict[tuple[str, int], dict[tuple[int, int], Summary]] = {}
        self._fences: dict[str, tuple[int, int]] = {}

    async def setup(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _admit(self, session_id: str, fence: int | None, tiebreak: int | None = None) -> bool:
        """Whether a write fenced at ``fence`` (ties broken by ``tiebreak``) may go ahead
        (``SessionStore.persist``); if so, it becomes the session's fence."""
        if fence is None:
            return True
        mine = (fence, tiebreak or 0)
        if mine < self._fences.get(session_id, mine):
            return False
        self._fences[session_id] = mine
        return True

    async def persist(self, batch: PersistBatch) -> bool:
        state = batch.state
        if any(turn.seq is None for turn in batch.turns):  # all or nothing, like a transaction
            raise ValueError("turn.seq must be set before it is persisted")
        if not self._admit(state.session_id, batch.fence, batch.fence_tiebreak):
            return False
        log = self._turns.setdefault((state.session_id, state.generation), {})
        ids = {turn.turn_id for turn in batch.turns}
        strays = [s for s, t in log.items() if s >= state.turn_count and t.turn_id in ids]
        for seq in strays:
            del log[seq]  # a stray copy past the head: see ``PersistBatch``
        for turn in batch.turns:
            assert turn.seq is not None
            log[turn.seq] = turn.model_copy(deep=True)
        # Checkpoints of this generation past the head were written by a timed-out task's
        # flush (PersistBatch): a fenced batch drops all but its own; after strays went, any
        # whose turns are no longer all in the log.
        fenced = batch.fence is not None
        own = {cp.checkpoint_id for cp in batch.checkpoints}
        for cp_id, cp in list(self._checkpoints.items()) if fenced or strays else ():
            mine = cp.session_id == state.session_id and cp.generation == state.generation
            if not mine or cp.turn_count <= state.turn_count:
                continue
            past = range(state.turn_count, cp.turn_count)
            if (fenced and cp_id not in own) or (strays and any(s not in log for s in past)):
                del self._checkpoints[cp_id]
        for cp in batch.checkpoints:
            self._checkpoints[cp.checkpoint_id] = cp.model_copy(deep=True)
        await self.upsert_session(state)
        return True

    async def upsert_session(self, state: SessionState) -> None:
        self._sessions[state.session_id] = state.model_copy(deep=True)

    async def get_session(self, session_id: str) -> SessionState | None:
        state = self._sessions.get(session_id)
        return state.model_copy(deep=True) if state else None

    async def list_sessions(
        self,
        user_id: str | None = None,
        status: SessionStatus | None = None,
        *,
        limit: int | None = None,
    ) -> list[SessionState]:
        rows = [
            s.model_copy(deep=True)
            for s in self._sessions.values()
            if (user_id is None or s.user_id == user_id) and (status is None or s.status == status)
        ]
        rows.sort(key=lambda s: (s.created_at, s.session_id))
        return rows if limit is None else rows[:limit]

    async def count_live_sessions(self, user_id: str) -> int:
        return sum(
            1 for s in self._sessions.values() if s.user_id == user_id and not s.status.is_terminal
        )

    async def list_branches(self, parent_session_id: str) -> list[SessionState]:
        rows = [
            s.model_copy(deep=True)
            for s in self._sessions.values()
            if s.parent_session_id == parent_session_id
        ]
        rows.sort(key=lambda s: (s.created_at, s.session_id))
        return rows

    async def add_generation(
        self,
        session_id: str,
        generation: int,
        parent_generation: int,
        fork_seq: int,
        *,
        prior_head: int | None = None,
        fence: int | None = None,
    ) -> bool:
        if not self._admit(session_id, fence):
            return False
        self._generations[(session_id, generation)] = (parent_generation, fork_seq)
        if prior_head is None:
            return True
        # Strays of timed-out workflow tasks' flushes: see ``SessionStore.add_generation``.
        left = self._turns.get((session_id, generation - 1), {})
        for seq in [s for s in left if s >= prior_head]:
            del left[seq]
        self._turns.pop((session_id, generation), None)
        for cp_id, cp in list(self._checkpoints.items()):
            past = cp.generation == generation - 1 and cp.turn_count > prior_head
            if cp.session_id == session_id and (past or cp.generation == generation):
                del self._checkpoints[cp_id]
        return True

    async def get_generation_parent(
        self, session_id: str, generation: int
    ) -> tuple[int, int] | None:
        return self._generations.get((session_id, generation))

    async def get_own_turns(
        self, session_id: str, generation: int, lo: int, hi: int
    ) -> list[SessionTurn]:
        log = self._turns.get((session_id, generation), {})
        return [log[s].model_copy(deep=True) for s in sorted(log) if lo <= s < hi]

    async def put_summary(self, summary: Summary) -> bool:
        rows = self._summaries.setdefault((summary.session_id, summary.generation), {})
        if (summary.lo, summary.hi) in rows:
            return False
        rows[(summary.lo, summary.hi)] = summary.model_copy(deep=True)
        return True

    async def list_summaries(
        self, session_id: str, generation: int, lo: int, hi: int
    ) -> list[Summary]:
        rows = self._summaries.get((session_id, generation), {})
        keys = sorted((k for k in rows if lo < k[1] <= hi), key=lambda k: (k[1], k[0]))
        return [rows[k].model_copy(deep=True) for k in keys]

    async def search_turns(
        self,
        user_id: str,
        query: str,
        *,
        limit: int,
        session_ids: Sequence[str] | None = None,
    ) -> list[TurnMatch]:
        """BM25 over the user's transcripts, read in full (``stores._search.scan_search``)."""
        return await scan_search(self, user_id, query, limit=limit, session_ids=session_ids)

    async def get_checkpoint(self, checkpoint_id: str) -> Checkpoint | None:
        cp = self._checkpoints.get(checkpoint_id)
        return cp.model_copy(deep=True) if cp else None

    async def list_checkpoints(self, session_id: str) -> list[Checkpoint]:
        rows = [c for c in self._checkpoints.values() if c.session_id == session_id]
        rows.sort(key=lambda c: (c.created_at, c.turn_count, c.checkpoint_id))
        return [c.model_copy(deep=True) for c in rows]

    async def delete_session(self, session_id: str) -> bool:
        existed = self._sessions.pop(session_id, None) is not None
        self._fences.pop(session_id, None)
        for key in [k for k in self._turns if k[0] == session_id]:
            del self._turns[key]
            existed = True
        for gkey in [k for k in self._generations if k[0] == session_id]:
            del self._generations[gkey]
        for skey in [k for k in self._summaries if k[0] == session_id]:
            del self._summaries[skey]
        for cid in [c for c, cp in self._checkpoints.items() if cp.session_id == session_id]:
            del self._checkpoints[cid]
            existed = True
        return existed

    async def get_stats(self, user_id: str | None = None) -> SessionStats:
        sessions = [s for s in self._sessions.values() if user_id is None or s.user_id == user_id]
        counts = {status: 0 for status in SessionStatus}
        for s in sessions:
            counts[s.status] += 1
        ids = {s.session_id for s in sessions}
        n = len(sessions)
        n_cps = sum(1 for c in self._checkpoints.values() if c.session_id in ids)
        return SessionStats(
            active=counts[SessionStatus.ACTIVE],
            suspended=counts[SessionStatus.SUSPENDED],
            closed=counts[SessionStatus.CLOSED],
            expired=counts[SessionStatus.EXPIRED],
            avg_turns=(sum(s.turn_count for s in sessions) / n) if n else 0.0,
            checkpoints_per_session=(n_cps / n) if n else 0.0,
            total_tokens=sum(s.total_tokens for s in sessions),
            total_cost=sum(s.total_cost for s in sessions),
        )

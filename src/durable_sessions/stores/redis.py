"""``RedisSessionStore``: a read-through cache of headers and recent turns in front of a store.

The worker writes through it: every ``persist`` goes to the wrapped store (the system of record)
first, then the header and the last ``recent`` turns of the session's current generation go to
Redis. Readers (the HTTP API, the CLI, ``SessionManager``) are served from Redis when it holds
the answer and from the wrapped store otherwise, populating Redis on the way back.

What is cached, and when Redis answers:

* headers (``get_session``): always, once written or read;
* own turns (``get_own_turns``): when the requested ``[lo, hi)`` lies inside the window of
  consecutive turns Redis holds for that generation (the last ``recent`` written or read);
* generation parents (``get_generation_parent``): immutable once written;
* a user's sessions (``list_sessions(user_id, ...)``, ``count_live_sessions``) and a session's
  branches (``list_branches``): once a full listing was read, from the cached headers.

Everything else (checkpoints, stats, listings across users) goes to the wrapped store.

Consistency. Every write bumps a version key of the session (and of the user and the parent),
and a read populates Redis only when those versions did not move while it read the wrapped
store, so a slow reader never puts back what a writer or ``delete_session`` replaced. The cache
is written after the wrapped store accepted a batch, so it never holds turns the store refused.
If that cache write fails, the store tries to drop the session's cached keys; when it cannot
(Redis unreachable) and ``strict`` is true (the default) the call raises, so the persist activity
is retried (it is idempotent) instead of leaving a stale header behind. Reads that hit a Redis
error fall back to the wrapped store. Keys expire after ``ttl`` seconds without writes.

Values are JSON; non-finite floats in metadata survive (``NaN``/``Infinity`` literals). Use one
Redis server (or a primary with replicas), not Redis Cluster: the scripts touch several keys.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from durable_sessions.core.compaction import Summary
from durable_sessions.errors import RecallUnavailableError
from durable_sessions.models import (
    Checkpoint,
    SessionState,
    SessionStats,
    SessionStatus,
    SessionTurn,
)
from durable_sessions.stores import _redis_scripts as _lua
from durable_sessions.stores._redis_client import CACHE_ERRORS, RedisPlumbing
from durable_sessions.stores._redis_codec import dump as _dump
from durable_sessions.stores._redis_codec import load_all as _load_all
from durable_sessions.stores._redis_codec import sort_key as _sort_key
from durable_sessions.stores._redis_codec import text as _text
from durable_sessions.stores._search import TurnMatch, TurnSearch
from durable_sessions.stores._summaries import summaries_of
from durable_sessions.stores.base import PersistBatch

__all__ = ["RedisSessionStore"]

log = logging.getLogger("durable_sessions.stores.redis")


class RedisSessionStore(RedisPlumbing):
    """A ``SessionStore`` that caches another one in Redis (see the module docstring).

    Args:
        url: ``redis://[:password@]host:6379/0`` (``rediss://`` for TLS).
        inner: the store of record; ``setup()`` and ``close()`` are passed on to it.
        ttl: seconds a cached key lives after its last write.
        recent: how many recent turns per session (and generation) Redis keeps.
        prefix: prepended to every key, so several deployments can share one Redis.
        strict: raise when a write cannot be mirrored to Redis nor its stale keys removed.
        client: an existing ``redis.asyncio.Redis`` to use instead of connecting to ``url``
            (it is not closed by ``close()``).
    """

    def __repr__(self) -> str:
        return f"RedisSessionStore(prefix={self.prefix!r}, inner={self.inner!r})"

    # --- writes -------------------------------------------------------------------------------

    async def persist(self, batch: PersistBatch) -> bool:
        if await self.inner.persist(batch) is False:
            return False  # refused as stale (SessionStore.persist): the cache holds newer
        await self._write_through(batch.state, batch.turns)
        return True

    async def upsert_session(self, state: SessionState) -> None:
        await self.inner.upsert_session(state)
        await self._write_through(state, [])

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
        written = await self.inner.add_generation(
            session_id, generation, parent_generation, fork_seq, prior_head=prior_head, fence=fence
        )
        if written is False:
            return False
        keys = [self._k_gen_parents(session_id), self._k_version(session_id)]
        keys += [self._k_turns(session_id, generation - 1), self._k_turns(session_id, generation)]
        dropped = "1" if prior_head is not None else "0"
        args = [self._ttl_ms, generation, f"{parent_generation}:{fork_seq}", dropped]
        await self._mirror(session_id, lambda: self._script(_lua.ADD_GENERATION, keys, args))
        return True

    async def delete_session(self, session_id: str) -> bool:
        state = await self._cached_or_inner_header(session_id)
        existed = await self.inner.delete_session(session_id)
        await self._mirror(session_id, lambda: self._forget(session_id, state), state)
        return existed

    async def put_summary(self, summary: Summary) -> bool:
        """Summaries are not cached: compaction reads a few per context call."""
        return await summaries_of(self.inner).put_summary(summary)

    async def list_summaries(
        self, session_id: str, generation: int, lo: int, hi: int
    ) -> list[Summary]:
        return await summaries_of(self.inner).list_summaries(session_id, generation, lo, hi)

    async def _write_through(self, state: SessionState, new_turns: Sequence[SessionTurn]) -> None:
        by_seq: dict[int, SessionTurn] = {}
        for turn in new_turns:  # the store already refused a batch with a turn lacking seq
            if turn.seq is not None:
                by_seq[turn.seq] = turn  # a later duplicate wins, as in the stores
        pairs: list[Any] = []
        for seq in sorted(by_seq):
            pairs += [str(seq), _dump(by_seq[seq])]
        sid = state.session_id
        parent = state.parent_session_id
        keys = [
            self._k_header(sid),
            self._k_version(sid),
            self._k_turns(sid, state.generation),
            self._k_generations(sid),
            self._k_user(state.user_id),
            self._k_user_version(state.user_id),
            self._k_branches(parent or ""),
            self._k_branches_version(parent or ""),
        ]
        args: list[Any] = [
            _dump(state),
            self._ttl_ms,
            self.recent,
            str(state.generation),
            sid,
            "1" if parent is not None else "0",
            len(by_seq),
            *pairs,
            state.turn_count,
        ]
        await self._mirror(sid, lambda: self._script(_lua.WRITE, keys, args), state)

    async def _mirror(
        self,
        session_id: str,
        write: Callable[[], Awaitable[Any]],
        state: SessionState | None = None,
    ) -> None:
        """Apply a write to Redis after the store took it; on failure drop the session's keys."""
        try:
            await write()
            return
        except CACHE_ERRORS as exc:
            log.warning("redis cache write for %r failed: %r", session_id, exc)
            first = exc
        try:
            await self._forget(session_id, state)
        except CACHE_ERRORS as exc:
            if self.strict:
                raise RuntimeError(
                    f"the store accepted a write for session {session_id!r} but the Redis cache "
                    "could neither be updated nor invalidated; retry the call"
                ) from first
            log.error("redis cache may be stale for %r until its keys expire: %r", session_id, exc)

    async def _forget(self, session_id: str, state: SessionState | None) -> None:
        """Drop every cached key of a session and bump the versions of its listings."""
        generations = await self.redis.smembers(self._k_generations(session_id))
        turn_keys = [self._k_turns(session_id, int(g)) for g in sorted(generations)]
        user = state.user_id if state is not None else ""
        parent = (state.parent_session_id or "") if state is not None else ""
        keys = [
            self._k_header(session_id),
            self._k_version(session_id),
            self._k_generations(session_id),
            self._k_gen_parents(session_id),
            self._k_user(user),
            self._k_user_version(user),
            self._k_branches(parent),
            self._k_branches_version(parent),
            *turn_keys,
        ]
        await self._script(_lua.FORGET, keys, [self._ttl_ms, session_id])

    # --- reads --------------------------------------------------------------------------------

    async def _cached_or_inner_header(self, session_id: str) -> SessionState | None:
        raw = await self._try("read", lambda: self.redis.get(self._k_header(session_id)))
        cached = _load_all(SessionState, [raw]) if raw is not None else None
        if cached:
            return cached[0]
        return await self.inner.get_session(session_id)

    async def get_session(self, session_id: str) -> SessionState | None:
        hkey, vkey = self._k_header(session_id), self._k_version(session_id)
        hit = await self._try("read", lambda: self._script(_lua.READ_HEADER, [hkey, vkey], []))
        if hit is not None and int(hit[0]) == 1:
            cached = _load_all(SessionState, [hit[1]])
            if cached:
                return cached[0]
            hit = None  # unreadable: answer from the store, leave the key to expire
        state = await self.inner.get_session(session_id)
        if state is not None and hit is not None:
            version = hit[1]
            await self._try(
                "populate",
                lambda: self._script(
                    _lua.POPULATE_HEADER, [hkey, vkey], [version, _dump(state), self._ttl_ms]
                ),
            )
        return state

    async def get_own_turns(
        self, session_id: str, generation: int, lo: int, hi: int
    ) -> list[SessionTurn]:
        if hi <= lo:
            return await self.inner.get_own_turns(session_id, generation, lo, hi)
        tkey, vkey = self._k_turns(session_id, generation), self._k_version(session_id)
        hit = await self._try("read", lambda: self._script(_lua.READ_TURNS, [tkey, vkey], [lo, hi]))
        if hit is not None and int(hit[0]) == 1:
            cached_turns = _load_all(SessionTurn, hit[1:])
            if cached_turns is not None:
                return cached_turns
            hit = None
        found = await self.inner.get_own_turns(session_id, generation, lo, hi)
        if hit is not None and found:
            version = hit[1]
            top = max(t.seq for t in found if t.seq is not None) + 1
            start = max(lo, top - self.recent)
            pairs: list[Any] = []
            for t in found:
                if t.seq is not None and start <= t.seq < top:
                    pairs += [str(t.seq), _dump(t)]
            args = [version, self._ttl_ms, start, top, str(generation), *pairs]
            keys = [tkey, vkey, self._k_generations(session_id)]
            await self._try("populate", lambda: self._script(_lua.POPULATE_TURNS, keys, args))
        return found

    async def get_generation_parent(
        self, session_id: str, generation: int
    ) -> tuple[int, int] | None:
        gkey, vkey = self._k_gen_parents(session_id), self._k_version(session_id)

        async def read() -> list[Any]:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hget(gkey, str(generation))
                pipe.get(vkey)
                result: list[Any] = await pipe.execute()
                return result

        hit = await self._try("read", read)
        if hit is not None and hit[0] is not None:
            parent, fork = _text(hit[0]).split(":")
            return int(parent), int(fork)
        found = await self.inner.get_generation_parent(session_id, generation)
        if found is not None and hit is not None:
            version = hit[1] if hit[1] is not None else b""
            value = f"{found[0]}:{found[1]}"
            await self._try(
                "populate",
                lambda: self._script(
                    _lua.POPULATE_FIELD,
                    [gkey, vkey],
                    [version, self._ttl_ms, str(generation), value],
                ),
            )
        return found

    async def _listing(self, key: str, version_key: str) -> tuple[bool, Any, list[SessionState]]:
        """``(hit, version, headers)`` of a cached listing; a hit needs every member's header."""

        async def read() -> list[Any]:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hkeys(key)
                pipe.get(version_key)
                result: list[Any] = await pipe.execute()
                return result

        got = await self._try("read", read)
        if got is None:
            return False, None, []
        fields, version = got
        version = version if version is not None else b""
        names = {bytes(f) if not isinstance(f, str) else f.encode() for f in fields}
        if b"complete" not in names:
            return False, version, []
        ids = sorted(n[2:].decode() for n in names if n.startswith(b"s:"))
        if not ids:
            return True, version, []
        raws = await self._try("read", lambda: self.redis.mget([self._k_header(s) for s in ids]))
        if raws is None:
            return False, version, []
        headers = [r for r in raws if r is not None]
        if len(headers) < len(ids):  # a header expired: the listing is incomplete
            return False, version, []
        states = _load_all(SessionState, headers)
        if states is None:
            return False, None, []
        return True, version, states

    async def _populate_listing(
        self, key: str, version_key: str, version: Any, states: Sequence[SessionState]
    ) -> None:
        keys = [key, version_key, *(self._k_header(s.session_id) for s in states)]
        args: list[Any] = [
            version,
            self._ttl_ms,
            *(s.session_id for s in states),
            *(_dump(s) for s in states),
        ]
        await self._try("populate", lambda: self._script(_lua.POPULATE_LISTING, keys, args))

    async def list_sessions(
        self,
        user_id: str | None = None,
        status: SessionStatus | None = None,
        *,
        limit: int | None = None,
    ) -> list[SessionState]:
        if user_id is None:
            return await self.inner.list_sessions(None, status, limit=limit)
        key, vkey = self._k_user(user_id), self._k_user_version(user_id)
        hit, version, states = await self._listing(key, vkey)
        if hit:
            rows = [
                s for s in states if s.user_id == user_id and (status is None or s.status == status)
            ]
            rows.sort(key=_sort_key)
            return rows if limit is None else rows[: max(0, limit)]
        if status is not None or limit is not None or version is None:
            return await self.inner.list_sessions(user_id, status, limit=limit)
        rows = await self.inner.list_sessions(user_id)
        await self._populate_listing(key, vkey, version, rows)
        return rows

    async def count_live_sessions(self, user_id: str) -> int:
        hit, _, states = await self._listing(self._k_user(user_id), self._k_user_version(user_id))
        if hit:
            return sum(1 for s in states if s.user_id == user_id and not s.status.is_terminal)
        return await self.inner.count_live_sessions(user_id)

    async def list_branches(self, parent_session_id: str) -> list[SessionState]:
        key = self._k_branches(parent_session_id)
        vkey = self._k_branches_version(parent_session_id)
        hit, version, states = await self._listing(key, vkey)
        if hit:
            rows = [s for s in states if s.parent_session_id == parent_session_id]
            rows.sort(key=_sort_key)
            return rows
        rows = await self.inner.list_branches(parent_session_id)
        if version is not None:
            await self._populate_listing(key, vkey, version, rows)
        return rows

    # --- delegated ----------------------------------------------------------------------------

    async def get_checkpoint(self, checkpoint_id: str) -> Checkpoint | None:
        return await self.inner.get_checkpoint(checkpoint_id)

    async def list_checkpoints(self, session_id: str) -> list[Checkpoint]:
        return await self.inner.list_checkpoints(session_id)

    async def get_stats(self, user_id: str | None = None) -> SessionStats:
        return await self.inner.get_stats(user_id)

    async def search_turns(
        self,
        user_id: str,
        query: str,
        *,
        limit: int,
        session_ids: Sequence[str] | None = None,
    ) -> list[TurnMatch]:
        """Searched in the wrapped store (its full-text index); Redis holds no index."""
        if not isinstance(self.inner, TurnSearch):
            raise RecallUnavailableError("the store behind the Redis cache cannot search")
        return await self.inner.search_turns(user_id, query, limit=limit, session_ids=session_ids)

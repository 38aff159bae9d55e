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
from datetime import UTC, datetime
from typing import Any, TypeVar

import pydantic_core
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from durable_sessions.models import (
    Checkpoint,
    SessionState,
    SessionStats,
    SessionStatus,
    SessionTurn,
)
from durable_sessions.stores.base import PersistBatch, SessionStore

__all__ = ["RedisSessionStore"]

log = logging.getLogger("durable_sessions.stores.redis")

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

_CACHE_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)

# --- Lua scripts ------------------------------------------------------------------------------
# Versions: a missing version key reads as ''. A populate runs only if the version it read
# before asking the wrapped store is still current.

_READ_HEADER = """
local v = redis.call('GET', KEYS[1])
if v then return {1, v} end
return {0, redis.call('GET', KEYS[2]) or ''}
"""

_POPULATE_HEADER = """
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3], 'NX')
return 1
"""

# KEYS: 1 turns hash, 2 session version. ARGV: 1 lo, 2 hi.
# The hash holds fields 'lo', 'hi' (the window [lo, hi) it knows exactly) and one field per seq.
_READ_TURNS = """
local c = redis.call('HMGET', KEYS[1], 'lo', 'hi')
local clo, chi = tonumber(c[1]), tonumber(c[2])
local lo, hi = tonumber(ARGV[1]), tonumber(ARGV[2])
if clo and chi and clo <= lo and hi <= chi then
  local out = {1}
  for s = lo, hi - 1 do
    local v = redis.call('HGET', KEYS[1], tostring(s))
    if v then table.insert(out, v) end
  end
  return out
end
return {0, redis.call('GET', KEYS[2]) or ''}
"""

# KEYS: 1 turns hash, 2 session version, 3 generations set.
# ARGV: 1 version, 2 ttl ms, 3 lo, 4 hi, 5 generation, 6.. seq, json pairs.
_POPULATE_TURNS = """
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'lo', ARGV[3], 'hi', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[5])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
return 1
"""

# KEYS: 1 header, 2 session version, 3 turns hash, 4 generations set, 5 user listing,
#       6 user version, 7 parent's branch listing, 8 parent's branch version.
# ARGV: 1 header json ('' for none), 2 ttl ms, 3 recent, 4 generation, 5 session id,
#       6 '1' when the session has a parent, 7 number of turns, 8.. seq, json pairs
#       (sorted by seq, unique).
_WRITE = """
local ttl = tonumber(ARGV[2])
local function bump(k)
  redis.call('INCR', k)
  redis.call('PEXPIRE', k, ttl)
end
local function join(listing, member)
  if redis.call('EXISTS', listing) == 1 then
    redis.call('HSET', listing, member, '1')
    redis.call('PEXPIRE', listing, ttl)
  end
end
bump(KEYS[2])
if ARGV[1] ~= '' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
  bump(KEYS[6])
  join(KEYS[5], 's:' .. ARGV[5])
  if ARGV[6] == '1' then
    bump(KEYS[8])
    join(KEYS[7], 's:' .. ARGV[5])
  end
end
local n = tonumber(ARGV[7])
if n == 0 then return 0 end
local recent = tonumber(ARGV[3])
local first = tonumber(ARGV[8])
local last = tonumber(ARGV[8 + 2 * (n - 1)])
local c = redis.call('HMGET', KEYS[3], 'lo', 'hi')
local lo, hi = tonumber(c[1]), tonumber(c[2])
if last - first + 1 == n then
  if lo == nil or hi == nil or first > hi then
    redis.call('DEL', KEYS[3])
    lo, hi = first, last + 1
  elseif last + 1 < lo then
    return 0
  else
    lo, hi = math.min(lo, first), math.max(hi, last + 1)
  end
  for i = 0, n - 1 do redis.call('HSET', KEYS[3], ARGV[8 + 2 * i], ARGV[9 + 2 * i]) end
else
  if lo == nil or hi == nil then return 0 end
  for i = 0, n - 1 do
    local s = tonumber(ARGV[8 + 2 * i])
    if s >= lo and s < hi then redis.call('HSET', KEYS[3], ARGV[8 + 2 * i], ARGV[9 + 2 * i]) end
  end
end
local newlo = math.max(lo, hi - recent)
for s = lo, newlo - 1 do redis.call('HDEL', KEYS[3], tostring(s)) end
redis.call('HSET', KEYS[3], 'lo', tostring(newlo), 'hi', tostring(hi))
redis.call('PEXPIRE', KEYS[3], ttl)
redis.call('SADD', KEYS[4], ARGV[4])
redis.call('PEXPIRE', KEYS[4], ttl)
return 1
"""

# KEYS: 1 listing hash, 2 listing version, 3.. header keys.
# ARGV: 1 version, 2 ttl ms, then n session ids, then n header jsons.
# A listing is a hash: field 'complete' plus 's:<session id>' per member (so an empty listing
# still exists).
_POPULATE_LISTING = """
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then return 0 end
local n = #KEYS - 2
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'complete', '1')
for i = 1, n do
  redis.call('HSET', KEYS[1], 's:' .. ARGV[2 + i], '1')
  redis.call('SET', KEYS[2 + i], ARGV[2 + n + i], 'PX', ARGV[2], 'NX')
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: 1 generation parents hash, 2 session version. ARGV: 1 version, 2 ttl ms, 3 gen, 4 value.
_POPULATE_FIELD = """
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: 1 header, 2 session version, 3 generations set, 4 generation parents, 5 user listing,
#       6 user version, 7 parent's branch listing, 8 parent's branch version, 9.. turn hashes.
# ARGV: 1 ttl ms, 2 session id.
_FORGET = """
local ttl = tonumber(ARGV[1])
for _, k in ipairs({KEYS[2], KEYS[6], KEYS[8]}) do
  redis.call('INCR', k)
  redis.call('PEXPIRE', k, ttl)
end
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4])
for i = 9, #KEYS do redis.call('DEL', KEYS[i]) end
redis.call('HDEL', KEYS[5], 's:' .. ARGV[2])
redis.call('HDEL', KEYS[7], 's:' .. ARGV[2])
return 1
"""


# --- serialisation ----------------------------------------------------------------------------


def _utc(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def _dump(model: BaseModel) -> bytes:
    """JSON that round-trips every field, NaN and infinities included, datetimes in UTC."""
    data = {key: _utc(value) for key, value in model.model_dump(mode="python").items()}
    return pydantic_core.to_json(data, inf_nan_mode="constants")


def _load_all(cls: type[M], raws: Sequence[bytes | str]) -> list[M] | None:
    """Parse cached values; None when one does not fit the model (written by another version
    of the code during a rolling upgrade, say): the caller then reads the store instead."""
    try:
        return [cls.model_validate_json(raw) for raw in raws]
    except ValidationError as exc:
        log.warning("ignoring a cached %s that does not parse: %s", cls.__name__, exc)
        return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _sort_key(state: SessionState) -> tuple[datetime, str]:
    return (state.created_at, state.session_id)


class RedisSessionStore:
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

    def __init__(
        self,
        url: str,
        inner: SessionStore,
        *,
        ttl: float = 3600.0,
        recent: int = 50,
        prefix: str = "durable-sessions:",
        strict: bool = True,
        client: Redis | None = None,
    ) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        if recent < 1:
            raise ValueError("recent must be at least 1")
        self.url = url
        self.inner = inner
        self.ttl = ttl
        self.recent = recent
        self.prefix = prefix
        self.strict = strict
        self._own_client = client is None
        self._client: Redis | None = client
        self._scripts: dict[str, AsyncScript] = {}

    def __repr__(self) -> str:
        return f"RedisSessionStore(prefix={self.prefix!r}, inner={self.inner!r})"

    # --- plumbing -----------------------------------------------------------------------------

    @property
    def redis(self) -> Redis:
        """The Redis client (connected on first use)."""
        if self._client is None:
            self._client = Redis.from_url(self.url, decode_responses=False)
            self._own_client = True
        return self._client

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    async def _script(self, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self.redis.register_script(source)
        return await script(keys=list(keys), args=list(args))

    def _k_header(self, session_id: str) -> str:
        return f"{self.prefix}session:{session_id}"

    def _k_version(self, session_id: str) -> str:
        return f"{self.prefix}version:{session_id}"

    def _k_turns(self, session_id: str, generation: int) -> str:
        return f"{self.prefix}turns:{session_id}:{generation}"

    def _k_generations(self, session_id: str) -> str:
        return f"{self.prefix}generations:{session_id}"

    def _k_gen_parents(self, session_id: str) -> str:
        return f"{self.prefix}generation-parents:{session_id}"

    def _k_user(self, user_id: str) -> str:
        return f"{self.prefix}user:{user_id}"

    def _k_user_version(self, user_id: str) -> str:
        return f"{self.prefix}user-version:{user_id}"

    def _k_branches(self, parent_session_id: str) -> str:
        return f"{self.prefix}branches:{parent_session_id}"

    def _k_branches_version(self, parent_session_id: str) -> str:
        return f"{self.prefix}branches-version:{parent_session_id}"

    async def _try(self, what: str, call: Callable[[], Awaitable[T]]) -> T | None:
        """Run a cache operation; on a Redis error log it and return None (read fallback)."""
        try:
            return await call()
        except _CACHE_ERRORS as exc:
            log.warning("redis cache %s failed, using the store: %r", what, exc)
            return None

    # --- lifecycle ----------------------------------------------------------------------------

    async def setup(self) -> None:
        await self.inner.setup()
        await self.redis.ping()

    async def close(self) -> None:
        try:
            await self.inner.close()
        finally:
            client, self._client = self._client, None
            self._scripts.clear()
            if client is not None and self._own_client:
                await client.aclose()

    # --- writes -------------------------------------------------------------------------------

    async def persist(self, batch: PersistBatch) -> None:
        await self.inner.persist(batch)
        await self._write_through(batch.state, batch.turns)

    async def upsert_session(self, state: SessionState) -> None:
        await self.inner.upsert_session(state)
        await self._write_through(state, [])

    async def add_generation(
        self, session_id: str, generation: int, parent_generation: int, fork_seq: int
    ) -> None:
        await self.inner.add_generation(session_id, generation, parent_generation, fork_seq)
        # Immutable once written: cache it right away (an idempotent rewrite is the same value).
        key = self._k_gen_parents(session_id)

        async def write() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, str(generation), f"{parent_generation}:{fork_seq}")
                pipe.pexpire(key, self._ttl_ms)
                await pipe.execute()

        await self._mirror(session_id, write)

    async def delete_session(self, session_id: str) -> bool:
        state = await self._cached_or_inner_header(session_id)
        existed = await self.inner.delete_session(session_id)
        await self._mirror(session_id, lambda: self._forget(session_id, state), state)
        return existed

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
        ]
        await self._mirror(sid, lambda: self._script(_WRITE, keys, args), state)

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
        except _CACHE_ERRORS as exc:
            log.warning("redis cache write for %r failed: %r", session_id, exc)
            first = exc
        try:
            await self._forget(session_id, state)
        except _CACHE_ERRORS as exc:
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
        await self._script(_FORGET, keys, [self._ttl_ms, session_id])

    # --- reads --------------------------------------------------------------------------------

    async def _cached_or_inner_header(self, session_id: str) -> SessionState | None:
        raw = await self._try("read", lambda: self.redis.get(self._k_header(session_id)))
        cached = _load_all(SessionState, [raw]) if raw is not None else None
        if cached:
            return cached[0]
        return await self.inner.get_session(session_id)

    async def get_session(self, session_id: str) -> SessionState | None:
        hkey, vkey = self._k_header(session_id), self._k_version(session_id)
        hit = await self._try("read", lambda: self._script(_READ_HEADER, [hkey, vkey], []))
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
                    _POPULATE_HEADER, [hkey, vkey], [version, _dump(state), self._ttl_ms]
                ),
            )
        return state

    async def get_own_turns(
        self, session_id: str, generation: int, lo: int, hi: int
    ) -> list[SessionTurn]:
        if hi <= lo:
            return await self.inner.get_own_turns(session_id, generation, lo, hi)
        tkey, vkey = self._k_turns(session_id, generation), self._k_version(session_id)
        hit = await self._try("read", lambda: self._script(_READ_TURNS, [tkey, vkey], [lo, hi]))
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
            await self._try("populate", lambda: self._script(_POPULATE_TURNS, keys, args))
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
                    _POPULATE_FIELD,
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
        await self._try("populate", lambda: self._script(_POPULATE_LISTING, keys, args))

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

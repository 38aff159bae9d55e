"""The PostgreSQL ``SessionStore``: the production system of record.

Why it looks the way it does:

* **Versioned migrations.** The schema evolves with the package, and several workers may start
  at once, so ``setup()`` applies numbered migrations in one transaction serialised by
  ``pg_advisory_xact_lock`` and records them in ``schema_migrations``. Services that must not
  run DDL call ``check_schema()`` at start-up instead and fail fast with a clear message.
* **One schema per store.** Every statement uses qualified names, so a store confined to a
  schema (one per test run, one per tenant, ...) never touches another.
* **Idempotent, set-based writes.** A flush is one transaction; the header upsert and all its
  turns are one statement (``INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE``), so an
  activity retried after a timeout writes the same rows again: no duplicates, no gaps, and
  one round trip for a whole batch (plus one for its checkpoints, if any).
* **Small rows.** Turns dominate the volume, so a turn row refers to its session by a compact
  ``sid bigint`` (assigned in ``sessions``) instead of repeating the text ``session_id``: the
  primary key ``(sid, generation, seq)`` is a third of the size and the row 25 bytes shorter.
  Turns carry no secondary index, empty metadata is NULL, and fixed-width columns come first
  (no alignment padding). Content is compressed with lz4 where the server has it (PostgreSQL
  14+): it compresses any gain, where the default pglz gives up below 25 %, so a ~2 KB prose
  turn stays inline compressed instead of becoming a 2 KB TOAST chunk plus a nearly empty one.
  ``bench/bench_checkpoints.py`` measures ~1.07x the raw text for ~2 KB turns, ~1.45x for
  ~500 B turns (``storage_bytes()``).
* **Faithful text.** PostgreSQL ``text`` and ``jsonb`` refuse NUL characters, which Python
  strings may hold, and ``jsonb`` has no NaN or infinity. Such values (rare) are stored in a
  reversible escaped form marked by the private-use character U+E000, so turn content, agent,
  branch name and metadata round-trip exactly while ordinary rows stay plain, readable SQL.
  (Identifiers such as ``session_id`` and ``user_id`` are stored as is.)
"""

from __future__ import annotations

from collections.abc import Sequence

from durable_sessions.core.compaction import Summary
from durable_sessions.errors import RecallUnavailableError
from durable_sessions.models import (
    Checkpoint,
    SessionState,
    SessionStats,
    SessionStatus,
    SessionTurn,
)
from durable_sessions.stores._pg import PgPoolOwner
from durable_sessions.stores._pg_codec import ROWS as _ROWS
from durable_sessions.stores._pg_codec import TURN_COLS as _TURN_COLS
from durable_sessions.stores._pg_codec import init_connection as _init_connection
from durable_sessions.stores._pg_schema import LATEST_SCHEMA_VERSION, MIGRATIONS
from durable_sessions.stores._pg_schema import TABLES as _TABLES
from durable_sessions.stores._pg_search import (
    RECALL_DDL,
    CommonWords,
    has_recall_index,
    pg_search_turns,
)
from durable_sessions.stores._pg_writes import CHECKPOINT_ARRAYS, TURN_ARRAYS, WriteStatements
from durable_sessions.stores._rows import (
    CHECKPOINT_COLS,
    SESSION_COLS,
    list_sessions_sql,
    require_seqs,
    stats_from,
)
from durable_sessions.stores._search import TurnMatch
from durable_sessions.stores._summaries import pg_list_summaries, pg_put_summary
from durable_sessions.stores.base import PersistBatch

__all__ = ["LATEST_SCHEMA_VERSION", "MIGRATIONS", "PostgresSessionStore"]


class PostgresSessionStore(PgPoolOwner):
    """A ``SessionStore`` on PostgreSQL through an asyncpg connection pool.

    The pool is created on first use (normally by ``setup()``) and closed by ``close()``.

    Args:
        dsn: A libpq connection URL, e.g. ``postgresql://user:pw@host:5432/db``.
        schema: The schema holding the store's tables; created by ``setup()`` if missing.
        min_size: Minimum number of pooled connections.
        max_size: Maximum number of pooled connections.
        recall: Let ``setup()`` add the full-text index ``search_turns`` (``manager.recall``)
            needs; see ``_pg_search`` for its cost. Searching works whenever the schema has
            the index, whoever added it.

    Raises:
        ValueError: If ``schema`` is not a plain SQL identifier.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        min_size: int = 1,
        max_size: int = 10,
        recall: bool = False,
    ) -> None:
        super().__init__(
            dsn, schema=schema, min_size=min_size, max_size=max_size, init=_init_connection
        )
        s = '"' + schema + '"'
        self._s = s
        self.recall = recall
        self._recall_ready = False
        self._common_words = CommonWords()
        self._sql = WriteStatements.of(s)

    # --- lifecycle ----------------------------------------------------------------------------

    async def setup(self) -> None:
        """Create the schema if needed and apply every missing migration. Idempotent."""
        async with self._locked("migrate") as conn:
            exists = await conn.fetchval(
                "SELECT 1 FROM pg_namespace WHERE nspname = $1", self.schema
            )
            if not exists:
                await conn.execute(f"CREATE SCHEMA {self._s}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._s}.schema_migrations ("
                " version integer PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            applied = {
                r["version"]
                for r in await conn.fetch(f"SELECT version FROM {self._s}.schema_migrations")
            }
            for version, sql in MIGRATIONS:
                if version in applied:
                    continue
                await conn.execute(sql.replace("{s}", self._s))
                await conn.execute(
                    f"INSERT INTO {self._s}.schema_migrations (version) VALUES ($1)", version
                )
            if self.recall and not await has_recall_index(conn, self._s):
                await conn.execute(RECALL_DDL.replace("{s}", self._s))

    async def schema_version(self) -> int:
        """The highest migration applied to the store's schema, 0 when none is."""
        pool = await self._get_pool()
        async with pool.acquire() as conn:
            table = await conn.fetchval("SELECT to_regclass($1)", f"{self._s}.schema_migrations")
            if table is None:
                return 0
            version = await conn.fetchval(f"SELECT max(version) FROM {self._s}.schema_migrations")
            return int(version or 0)

    async def check_schema(self) -> None:
        """Fail fast when the database lacks migrations this code needs.

        Raises:
            RuntimeError: If the schema is older than ``LATEST_SCHEMA_VERSION``.
        """
        version = await self.schema_version()
        if version < LATEST_SCHEMA_VERSION:
            raise RuntimeError(
                f"durable-sessions: PostgreSQL schema {self.schema!r} is at version {version}, "
                f"this version needs {LATEST_SCHEMA_VERSION}. Run `durable-sessions db upgrade` "
                "(or call `await store.setup()`) to apply the missing migrations."
            )

    async def storage_bytes(self) -> int:
        """Bytes on disk of the store's tables, their indexes and TOAST data."""
        pool = await self._get_pool()
        total = await pool.fetchval(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname = ANY($2::text[])",
            self.schema,
            list(_TABLES),
        )
        return int(total)

    # --- writes -------------------------------------------------------------------------------

    async def persist(self, batch: PersistBatch) -> bool:
        turns = batch.turns
        require_seqs(turns)
        header = _ROWS.session_args(batch.state)
        pool = await self._get_pool()
        turn_columns = [list(c) for c in zip(*(_ROWS.turn_args(t) for t in turns), strict=True)]
        checkpoint_columns = [
            list(c)
            for c in zip(*(_ROWS.checkpoint_args(c) for c in batch.checkpoints), strict=True)
        ]
        first = await pool.fetchrow(
            self._sql.persist_if_no_strays,
            *header,
            *(turn_columns or [[]] * TURN_ARRAYS),
            *(checkpoint_columns or [[]] * CHECKPOINT_ARRAYS),
            batch.fence,
            batch.fence_tiebreak,
        )
        if not first["blocked"]:
            return bool(first["admitted"])
        # A stray copy of one of these turns is past the head (only turns can be strays): the
        # batch, the strays' removal and the checkpoints that leaves broken, in one transaction.
        async with pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                self._sql.upsert_session_and_turns,
                *header,
                *turn_columns,
                batch.fence,
                batch.fence_tiebreak,
            )
            if not row["admitted"]:
                return False
            if batch.fence is not None:  # past the head, only a dead task's (PersistBatch)
                await conn.execute(
                    self._sql.drop_past_the_head,
                    batch.state.session_id,
                    batch.state.generation,
                    batch.state.turn_count,
                    [c.checkpoint_id for c in batch.checkpoints],
                )
            if row["strays"]:
                state = batch.state
                await conn.execute(
                    self._sql.drop_broken_checkpoints,
                    state.session_id,
                    state.generation,
                    state.turn_count,
                    [c.checkpoint_id for c in batch.checkpoints],
                )
            if batch.checkpoints:
                await conn.executemany(
                    self._sql.upsert_checkpoint,
                    [_ROWS.checkpoint_args(c) for c in batch.checkpoints],
                )
        return True

    async def upsert_session(self, state: SessionState) -> None:
        pool = await self._get_pool()
        await pool.execute(self._sql.upsert_session, *_ROWS.session_args(state))

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
        pool = await self._get_pool()
        admitted = await pool.fetchval(
            self._sql.add_generation,
            session_id,
            generation,
            parent_generation,
            fork_seq,
            prior_head,
            fence,
        )
        return bool(admitted)

    async def delete_session(self, session_id: str) -> bool:
        pool = await self._get_pool()
        s = self._s
        # One statement, hence one transaction (data-modifying CTEs always run to completion).
        # Generations alone do not count as "something to delete", as in the reference store;
        # turns cannot exist without their header.
        deleted = await pool.fetchval(
            f"WITH d_s AS (DELETE FROM {s}.sessions WHERE session_id = $1 RETURNING sid),"
            f" d_t AS (DELETE FROM {s}.turns WHERE sid IN (SELECT sid FROM d_s)),"
            f" d_g AS (DELETE FROM {s}.generations WHERE session_id = $1),"
            f" d_c AS (DELETE FROM {s}.checkpoints WHERE session_id = $1 RETURNING 1),"
            f" d_y AS (DELETE FROM {s}.summaries WHERE session_id = $1)"
            " SELECT EXISTS (SELECT FROM d_s) OR EXISTS (SELECT FROM d_c)",
            session_id,
        )
        return bool(deleted)

    async def put_summary(self, summary: Summary) -> bool:
        return await pg_put_summary(await self._get_pool(), self._s, summary)

    async def list_summaries(
        self, session_id: str, generation: int, lo: int, hi: int
    ) -> list[Summary]:
        pool = await self._get_pool()
        return await pg_list_summaries(pool, self._s, session_id, generation, lo, hi)

    # --- reads --------------------------------------------------------------------------------

    async def search_turns(
        self,
        user_id: str,
        query: str,
        *,
        limit: int,
        session_ids: Sequence[str] | None = None,
    ) -> list[TurnMatch]:
        """Full-text search of the user's transcripts (``stores._search``, ``_pg_search``).

        Raises:
            RecallUnavailableError: If the schema has no full-text index (``recall=True``).
        """
        pool = await self._get_pool()
        if not self._recall_ready:
            if not await has_recall_index(pool, self._s):
                raise RecallUnavailableError(
                    "recall needs the full-text index: build the PostgreSQL store with "
                    "recall=True (or ?recall=true in its URL) and run setup()"
                )
            self._recall_ready = True
        return await pg_search_turns(
            pool,
            self._s,
            user_id,
            query,
            limit=limit,
            session_ids=session_ids,
            common=self._common_words,
        )

    async def get_session(self, session_id: str) -> SessionState | None:
        pool = await self._get_pool()
        row = await pool.fetchrow(
            f"SELECT {SESSION_COLS} FROM {self._s}.sessions WHERE session_id = $1", session_id
        )
        return _ROWS.session_from(row) if row is not None else None

    async def list_sessions(
        self,
        user_id: str | None = None,
        status: SessionStatus | None = None,
        *,
        limit: int | None = None,
    ) -> list[SessionState]:
        sql, args = list_sessions_sql(
            f"{self._s}.sessions", lambda n: f"${n}", user_id, status, limit
        )
        pool = await self._get_pool()
        return [_ROWS.session_from(r) for r in await pool.fetch(sql, *args)]

    async def count_live_sessions(self, user_id: str) -> int:
        pool = await self._get_pool()
        n = await pool.fetchval(
            f"SELECT count(*) FROM {self._s}.sessions"
            " WHERE user_id = $1 AND status = ANY($2::text[])",
            user_id,
            [SessionStatus.ACTIVE.value, SessionStatus.SUSPENDED.value],
        )
        return int(n)

    async def list_branches(self, parent_session_id: str) -> list[SessionState]:
        pool = await self._get_pool()
        rows = await pool.fetch(
            f"SELECT {SESSION_COLS} FROM {self._s}.sessions WHERE parent_session_id = $1"
            " ORDER BY created_at, session_id",
            parent_session_id,
        )
        return [_ROWS.session_from(r) for r in rows]

    async def get_generation_parent(
        self, session_id: str, generation: int
    ) -> tuple[int, int] | None:
        pool = await self._get_pool()
        row = await pool.fetchrow(
            f"SELECT parent_generation, fork_seq FROM {self._s}.generations"
            " WHERE session_id = $1 AND generation = $2",
            session_id,
            generation,
        )
        return (row["parent_generation"], row["fork_seq"]) if row is not None else None

    async def get_own_turns(
        self, session_id: str, generation: int, lo: int, hi: int
    ) -> list[SessionTurn]:
        pool = await self._get_pool()
        rows = await pool.fetch(
            f"SELECT {_TURN_COLS} FROM {self._s}.turns"
            f" WHERE sid = (SELECT sid FROM {self._s}.sessions WHERE session_id = $1)"
            " AND generation = $2 AND seq >= $3 AND seq < $4 ORDER BY seq",
            session_id,
            generation,
            lo,
            hi,
        )
        return [_ROWS.turn_from(r) for r in rows]

    async def get_checkpoint(self, checkpoint_id: str) -> Checkpoint | None:
        pool = await self._get_pool()
        row = await pool.fetchrow(
            f"SELECT {CHECKPOINT_COLS} FROM {self._s}.checkpoints WHERE checkpoint_id = $1",
            checkpoint_id,
        )
        return _ROWS.checkpoint_from(row) if row is not None else None

    async def list_checkpoints(self, session_id: str) -> list[Checkpoint]:
        pool = await self._get_pool()
        rows = await pool.fetch(
            f"SELECT {CHECKPOINT_COLS} FROM {self._s}.checkpoints WHERE session_id = $1"
            " ORDER BY created_at, turn_count, checkpoint_id",
            session_id,
        )
        return [_ROWS.checkpoint_from(r) for r in rows]

    async def get_stats(self, user_id: str | None = None) -> SessionStats:
        pool = await self._get_pool()
        s = self._s
        row = await pool.fetchrow(
            f"WITH sel AS (SELECT session_id, status, turn_count, total_tokens, total_cost"
            f" FROM {s}.sessions WHERE $1::text IS NULL OR user_id = $1)"
            " SELECT count(*) AS n,"
            " count(*) FILTER (WHERE status = 'active') AS active,"
            " count(*) FILTER (WHERE status = 'suspended') AS suspended,"
            " count(*) FILTER (WHERE status = 'closed') AS closed,"
            " count(*) FILTER (WHERE status = 'expired') AS expired,"
            " coalesce(sum(turn_count), 0)::bigint AS turns,"
            " coalesce(sum(total_tokens), 0)::bigint AS tokens,"
            " coalesce(sum(total_cost), 0)::float8 AS cost,"
            f" (SELECT count(*) FROM {s}.checkpoints c"
            "   WHERE c.session_id IN (SELECT session_id FROM sel)) AS checkpoints"
            " FROM sel",
            user_id,
        )
        assert row is not None
        return stats_from(row)

"""The SQLite ``SessionStore``: durable sessions on one machine, without a database server.

Why it looks the way it does:

* **Off the event loop.** ``sqlite3`` blocks, so every call runs on one dedicated thread that
  owns the connection. One thread also serialises the work: each store method is one function
  run there, and writes are one ``BEGIN IMMEDIATE`` transaction, so a flush is atomic.
* **WAL, ``synchronous=NORMAL``.** Readers do not block the writer, and a commit costs no fsync
  (a power loss may drop the last commits but never corrupts the database).
* **Same schema and migrations as PostgreSQL.** Numbered migrations recorded in
  ``schema_migrations`` and applied under the write lock (``BEGIN IMMEDIATE`` plays the part of
  the advisory lock), so ``check_schema()`` means the same on both backends.
* **Compact, exact values.** Datetimes are integer microseconds since the epoch (UTC): they sort
  correctly, take at most 8 bytes and round-trip exactly. Empty metadata is NULL. As in the
  PostgreSQL store, turns refer to their session by its integer ``sid`` (the rowid of
  ``sessions``), so the turn key and its index stay small.
* **16 KiB pages.** With SQLite's default 4 KiB pages a 2 KB turn fills a page by itself; 16 KiB
  pages hold seven, keeping the file within ~1.4x the raw text for 0.5-2 KB turns.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from durable_sessions.core.clock import utcnow
from durable_sessions.core.compaction import Summary
from durable_sessions.errors import RecallUnavailableError
from durable_sessions.models import (
    Checkpoint,
    SessionState,
    SessionStats,
    SessionStatus,
    SessionTurn,
)
from durable_sessions.stores._rows import (
    CHECKPOINT_COLS,
    SESSION_COLS,
    list_sessions_sql,
    require_seqs,
    stats_from,
)
from durable_sessions.stores._search import TurnMatch
from durable_sessions.stores._sqlite_codec import BUSY_TIMEOUT_S as _BUSY_TIMEOUT_S
from durable_sessions.stores._sqlite_codec import ROWS as _ROWS
from durable_sessions.stores._sqlite_codec import TURN_COLS as _TURN_COLS
from durable_sessions.stores._sqlite_codec import UPSERT_CHECKPOINT as _UPSERT_CHECKPOINT
from durable_sessions.stores._sqlite_codec import UPSERT_SESSION as _UPSERT_SESSION
from durable_sessions.stores._sqlite_codec import UPSERT_TURN as _UPSERT_TURN
from durable_sessions.stores._sqlite_codec import retry_locked as _retry_locked
from durable_sessions.stores._sqlite_codec import write as _write
from durable_sessions.stores._sqlite_schema import LATEST_SCHEMA_VERSION, MIGRATIONS
from durable_sessions.stores._sqlite_search import (
    RECALL_DDL,
    has_recall_index,
    sqlite_search_turns,
)
from durable_sessions.stores._sqlite_thread import SQLiteThread
from durable_sessions.stores._summaries import sqlite_list_summaries, sqlite_put_summary
from durable_sessions.stores.base import PersistBatch

__all__ = ["LATEST_SCHEMA_VERSION", "MIGRATIONS", "SQLiteSessionStore"]


class SQLiteSessionStore(SQLiteThread):
    """A ``SessionStore`` in one SQLite database file (or ``":memory:"``).

    The connection is opened on first use (normally by ``setup()``) on a dedicated worker thread
    and closed by ``close()``. With ``":memory:"`` the data lives as long as that connection.

    Args:
        path: The database file, created if missing, or ``":memory:"``.
        recall: Let ``setup()`` add the FTS5 index ``search_turns`` (``manager.recall``) needs
            (see ``_sqlite_search``); searching works whenever the database has it.
    """

    _thread_name = "ds-sqlite"

    def __init__(self, path: str | Path, *, recall: bool = True) -> None:
        super().__init__(path)
        self.recall = recall

    # --- plumbing -----------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=_BUSY_TIMEOUT_S)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA page_size=16384")  # only takes effect on a new database
        # Switching to WAL needs the database to itself; SQLite can answer "locked" at once,
        # without waiting on the busy handler, while another process creates it.
        _retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"))
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    # --- lifecycle ----------------------------------------------------------------------------

    async def setup(self) -> None:
        """Create the tables and apply every missing migration. Idempotent."""

        def migrate(conn: sqlite3.Connection) -> None:
            with _write(conn):
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
                )
                applied = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
                for version, statements in MIGRATIONS:
                    if version in applied:
                        continue
                    for statement in statements:
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                        (version, utcnow().isoformat()),
                    )
                if self.recall and not has_recall_index(conn):
                    for statement in RECALL_DDL:
                        conn.execute(statement)

        await self._run(lambda conn: _retry_locked(lambda: migrate(conn)))

    async def schema_version(self) -> int:
        """The highest migration applied to the database, 0 when none is."""

        def read(conn: sqlite3.Connection) -> int:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
            ).fetchone()
            if exists is None:
                return 0
            row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
            return int(row[0] or 0)

        return await self._run(read)

    async def check_schema(self) -> None:
        """Fail fast when the database lacks migrations this code needs.

        Raises:
            RuntimeError: If the schema is older than ``LATEST_SCHEMA_VERSION``.
        """
        version = await self.schema_version()
        if version < LATEST_SCHEMA_VERSION:
            raise RuntimeError(
                f"durable-sessions: SQLite database {self.path!r} is at schema version {version}, "
                f"this version needs {LATEST_SCHEMA_VERSION}. Run `durable-sessions db upgrade` "
                "(or call `await store.setup()`) to apply the missing migrations."
            )

    async def storage_bytes(self) -> int:
        """Bytes used by the database (``page_count * page_size``)."""

        def read(conn: sqlite3.Connection) -> int:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            size = conn.execute("PRAGMA page_size").fetchone()[0]
            return int(pages) * int(size)

        return await self._run(read)

    # --- writes -------------------------------------------------------------------------------

    async def persist(self, batch: PersistBatch) -> bool:
        state = batch.state
        require_seqs(batch.turns)
        turn_rows = [_ROWS.turn_args(t) for t in batch.turns]
        checkpoint_rows = [_ROWS.checkpoint_args(c) for c in batch.checkpoints]
        session_row = _ROWS.session_args(state)

        def write(conn: sqlite3.Connection) -> bool:
            with _write(conn):
                if not _admit(conn, state.session_id, batch.fence, batch.fence_tiebreak):
                    return False
                conn.execute(_UPSERT_SESSION, session_row)  # first: it assigns the sid
                _set_fence(conn, state.session_id, batch.fence, batch.fence_tiebreak)
                strays = 0
                if turn_rows:
                    sid = conn.execute(
                        "SELECT sid FROM sessions WHERE session_id = ?", (state.session_id,)
                    ).fetchone()[0]
                    strays = conn.executemany(  # stray copies past the head: see PersistBatch
                        "DELETE FROM turns WHERE sid = ? AND generation = ? AND seq >= ?"
                        " AND turn_id = ?",
                        [(sid, state.generation, state.turn_count, t.turn_id) for t in batch.turns],
                    ).rowcount
                    conn.executemany(
                        _UPSERT_TURN, [(sid, state.generation, *row) for row in turn_rows]
                    )
                if strays > 0:  # see PostgresSessionStore: checkpoints of a timed-out task
                    conn.execute(
                        "DELETE FROM checkpoints WHERE session_id = ?1 AND generation = ?2"
                        " AND turn_count > ?3 AND (SELECT count(*) FROM turns t JOIN sessions h"
                        " ON t.sid = h.sid WHERE h.session_id = ?1 AND t.generation = ?2"
                        " AND t.seq >= ?3 AND t.seq < checkpoints.turn_count)"
                        " < checkpoints.turn_count - ?3",
                        (state.session_id, state.generation, state.turn_count),
                    )
                if batch.fence is not None:  # past the head, only a dead task's: PersistBatch
                    mine = [c.checkpoint_id for c in batch.checkpoints]
                    conn.execute(
                        "DELETE FROM checkpoints WHERE session_id = ? AND generation = ?"
                        " AND turn_count > ?"
                        f" AND checkpoint_id NOT IN ({', '.join('?' * len(mine))})",
                        (state.session_id, state.generation, state.turn_count, *mine),
                    )
                if checkpoint_rows:
                    conn.executemany(_UPSERT_CHECKPOINT, checkpoint_rows)
                return True

        return await self._run(write)

    async def upsert_session(self, state: SessionState) -> None:
        row = _ROWS.session_args(state)

        def write(conn: sqlite3.Connection) -> None:
            with _write(conn):
                conn.execute(_UPSERT_SESSION, row)

        await self._run(write)

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
        def write(conn: sqlite3.Connection) -> bool:
            with _write(conn):
                if not _admit(conn, session_id, fence):
                    return False
                _set_fence(conn, session_id, fence)
                conn.execute(
                    "INSERT INTO generations (session_id, generation, parent_generation, fork_seq)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (session_id, generation) DO UPDATE SET"
                    " parent_generation = excluded.parent_generation,"
                    " fork_seq = excluded.fork_seq",
                    (session_id, generation, parent_generation, fork_seq),
                )
                if prior_head is None:
                    return True
                # Strays of timed-out workflow tasks' flushes: see SessionStore.add_generation.
                conn.execute(
                    "DELETE FROM turns WHERE sid IN"
                    " (SELECT sid FROM sessions WHERE session_id = ?1)"
                    " AND ((generation = ?2 - 1 AND seq >= ?3) OR generation = ?2)",
                    (session_id, generation, prior_head),
                )
                conn.execute(
                    "DELETE FROM checkpoints WHERE session_id = ?1"
                    " AND ((generation = ?2 - 1 AND turn_count > ?3) OR generation = ?2)",
                    (session_id, generation, prior_head),
                )
                return True

        return await self._run(write)

    async def delete_session(self, session_id: str) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            with _write(conn):
                # Generations alone do not count as "something to delete", as in the
                # reference store; turns cannot exist without their header.
                conn.execute(
                    "DELETE FROM turns"
                    " WHERE sid IN (SELECT sid FROM sessions WHERE session_id = ?)",
                    (session_id,),
                )
                n = conn.execute(
                    "DELETE FROM sessions WHERE session_id = ?", (session_id,)
                ).rowcount
                n += conn.execute(
                    "DELETE FROM checkpoints WHERE session_id = ?", (session_id,)
                ).rowcount
                conn.execute("DELETE FROM generations WHERE session_id = ?", (session_id,))
                conn.execute("DELETE FROM summaries WHERE session_id = ?", (session_id,))
            return n > 0

        return await self._run(write)

    async def put_summary(self, summary: Summary) -> bool:
        return await self._run(lambda conn: sqlite_put_summary(conn, summary))

    async def list_summaries(
        self, session_id: str, generation: int, lo: int, hi: int
    ) -> list[Summary]:
        return await self._run(
            lambda conn: sqlite_list_summaries(conn, session_id, generation, lo, hi)
        )

    # --- reads --------------------------------------------------------------------------------

    async def search_turns(
        self,
        user_id: str,
        query: str,
        *,
        limit: int,
        session_ids: Sequence[str] | None = None,
    ) -> list[TurnMatch]:
        """Full-text search of the user's transcripts (``stores._search``, ``_sqlite_search``).

        Raises:
            RecallUnavailableError: If the database has no FTS5 index (``recall=False``).
        """

        def read(conn: sqlite3.Connection) -> list[TurnMatch]:
            if not has_recall_index(conn):
                raise RecallUnavailableError(
                    "recall needs the full-text index: build the SQLite store with recall=True "
                    "(the default) and run setup()"
                )
            return sqlite_search_turns(conn, user_id, query, limit=limit, session_ids=session_ids)

        return await self._run(read)

    async def _fetchall(self, sql: str, args: tuple[Any, ...]) -> list[sqlite3.Row]:
        def read(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            return conn.execute(sql, args).fetchall()

        return await self._run(read)

    async def get_session(self, session_id: str) -> SessionState | None:
        rows = await self._fetchall(
            f"SELECT {SESSION_COLS} FROM sessions WHERE session_id = ?", (session_id,)
        )
        return _ROWS.session_from(rows[0]) if rows else None

    async def list_sessions(
        self,
        user_id: str | None = None,
        status: SessionStatus | None = None,
        *,
        limit: int | None = None,
    ) -> list[SessionState]:
        sql, args = list_sessions_sql("sessions", lambda n: "?", user_id, status, limit)
        return [_ROWS.session_from(r) for r in await self._fetchall(sql, tuple(args))]

    async def count_live_sessions(self, user_id: str) -> int:
        rows = await self._fetchall(
            "SELECT count(*) FROM sessions WHERE user_id = ? AND status IN (?, ?)",
            (user_id, SessionStatus.ACTIVE.value, SessionStatus.SUSPENDED.value),
        )
        return int(rows[0][0])

    async def list_branches(self, parent_session_id: str) -> list[SessionState]:
        rows = await self._fetchall(
            f"SELECT {SESSION_COLS} FROM sessions WHERE parent_session_id = ?"
            " ORDER BY created_at, session_id",
            (parent_session_id,),
        )
        return [_ROWS.session_from(r) for r in rows]

    async def get_generation_parent(
        self, session_id: str, generation: int
    ) -> tuple[int, int] | None:
        rows = await self._fetchall(
            "SELECT parent_generation, fork_seq FROM generations"
            " WHERE session_id = ? AND generation = ?",
            (session_id, generation),
        )
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    async def get_own_turns(
        self, session_id: str, generation: int, lo: int, hi: int
    ) -> list[SessionTurn]:
        rows = await self._fetchall(
            f"SELECT {_TURN_COLS} FROM turns"
            " WHERE sid = (SELECT sid FROM sessions WHERE session_id = ?)"
            " AND generation = ? AND seq >= ? AND seq < ? ORDER BY seq",
            (session_id, generation, lo, hi),
        )
        return [_ROWS.turn_from(r) for r in rows]

    async def get_checkpoint(self, checkpoint_id: str) -> Checkpoint | None:
        rows = await self._fetchall(
            f"SELECT {CHECKPOINT_COLS} FROM checkpoints WHERE checkpoint_id = ?",
            (checkpoint_id,),
        )
        return _ROWS.checkpoint_from(rows[0]) if rows else None

    async def list_checkpoints(self, session_id: str) -> list[Checkpoint]:
        rows = await self._fetchall(
            f"SELECT {CHECKPOINT_COLS} FROM checkpoints WHERE session_id = ?"
            " ORDER BY created_at, turn_count, checkpoint_id",
            (session_id,),
        )
        return [_ROWS.checkpoint_from(r) for r in rows]

    async def get_stats(self, user_id: str | None = None) -> SessionStats:
        rows = await self._fetchall(
            "WITH sel AS (SELECT session_id, status, turn_count, total_tokens, total_cost"
            " FROM sessions WHERE ?1 IS NULL OR user_id = ?1)"
            " SELECT count(*) AS n,"
            " count(*) FILTER (WHERE status = 'active') AS active,"
            " count(*) FILTER (WHERE status = 'suspended') AS suspended,"
            " count(*) FILTER (WHERE status = 'closed') AS closed,"
            " count(*) FILTER (WHERE status = 'expired') AS expired,"
            " coalesce(sum(turn_count), 0) AS turns,"
            " coalesce(sum(total_tokens), 0) AS tokens,"
            " coalesce(total(total_cost), 0.0) AS cost,"
            " (SELECT count(*) FROM checkpoints c"
            "   WHERE c.session_id IN (SELECT session_id FROM sel)) AS checkpoints"
            " FROM sel",
            (user_id,),
        )
        return stats_from(rows[0])


def _admit(
    conn: sqlite3.Connection, session_id: str, fence: int | None, tiebreak: int | None = None
) -> bool:
    """Whether a write fenced at ``fence`` (ties broken by ``tiebreak``) may go ahead
    (``SessionStore.persist``). Called inside the write's transaction, which holds SQLite's
    one write lock."""
    if fence is None:
        return True
    row = conn.execute(
        "SELECT fence, fence_tb FROM sessions WHERE session_id = ?", (session_id,)
    ).fetchone()
    return row is None or (int(row[0]), int(row[1])) <= (fence, tiebreak or 0)


def _set_fence(
    conn: sqlite3.Connection, session_id: str, fence: int | None, tiebreak: int | None = None
) -> None:
    if fence is not None:
        conn.execute(
            "UPDATE sessions SET fence = ?2, fence_tb = ?3"
            " WHERE session_id = ?1 AND (fence, fence_tb) < (?2, ?3)",
            (session_id, fence, tiebreak or 0),
        )

"""Stored summaries (compaction): the protocol and the SQL behind the SQLite and PostgreSQL stores.

A summary of turns ``[lo, hi)`` is keyed ``(session_id, generation, lo, hi)``, where
``(session_id, generation)`` owns turn ``hi - 1`` in the lineage (``core.compaction``). Writes
insert or do nothing: the first summary written for a range stays, so a summarizer retried
after a crash, or two workers racing, leave exactly one row per range and never replace a
summary a context already used. Deleting a session deletes the summaries it owns.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import asyncpg

from durable_sessions.core.compaction import Summary

__all__ = [
    "PG_SUMMARIES_MIGRATION",
    "SQLITE_SUMMARIES_MIGRATION",
    "SummaryStore",
    "pg_list_summaries",
    "pg_put_summary",
    "sqlite_list_summaries",
    "sqlite_put_summary",
    "summaries_of",
]


@runtime_checkable
class SummaryStore(Protocol):
    """What compaction needs from a store, on top of ``SessionStore``."""

    async def put_summary(self, summary: Summary) -> bool:
        """Store ``summary`` unless its range is stored already. True when this call wrote it."""

    async def list_summaries(
        self, session_id: str, generation: int, lo: int, hi: int
    ) -> list[Summary]:
        """Summaries owned by ``(session_id, generation)`` whose last turn ``hi - 1`` lies in
        ``[lo, hi)``, ordered by ``(hi, lo)``: those a transcript segment ``[lo, hi)`` uses."""


def summaries_of(store: object) -> SummaryStore:
    """``store`` as a :class:`SummaryStore`, for wrappers that pass summaries on.

    Raises:
        TypeError: If the store keeps no summaries.
    """
    if not isinstance(store, SummaryStore):
        raise TypeError(f"{type(store).__name__} keeps no summaries")
    return store


_COLS = "session_id, generation, lo, hi, level, tokens, created_at, summarizer, content"

# --- PostgreSQL ---------------------------------------------------------------------------------

PG_SUMMARIES_MIGRATION = """
    CREATE TABLE {s}.summaries (
        created_at timestamptz NOT NULL,
        generation integer NOT NULL,
        lo         integer NOT NULL,
        hi         integer NOT NULL,
        tokens     integer NOT NULL,
        level      smallint NOT NULL,
        session_id text NOT NULL,
        summarizer text NOT NULL,
        content    text NOT NULL,
        PRIMARY KEY (session_id, generation, hi, lo)
    );
"""
"""``{s}`` is the quoted schema name, as in the store's other migrations."""


def _args(summary: Summary) -> tuple[Any, ...]:
    return (
        summary.session_id,
        summary.generation,
        summary.lo,
        summary.hi,
        summary.level,
        summary.tokens,
        summary.created_at,
        summary.summarizer,
        summary.content,
    )


def _from(row: Any, created_at: datetime) -> Summary:
    return Summary(
        session_id=row["session_id"],
        generation=row["generation"],
        lo=row["lo"],
        hi=row["hi"],
        level=row["level"],
        tokens=row["tokens"],
        created_at=created_at,
        summarizer=row["summarizer"],
        content=row["content"],
    )


async def pg_put_summary(pool: asyncpg.Pool, schema: str, summary: Summary) -> bool:
    """Insert-or-nothing; ``schema`` is the quoted schema name."""
    done = await pool.fetchval(
        f"INSERT INTO {schema}.summaries ({_COLS})"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (session_id, generation, hi, lo) DO NOTHING RETURNING true",
        *_args(summary),
    )
    return bool(done)


async def pg_list_summaries(
    pool: asyncpg.Pool, schema: str, session_id: str, generation: int, lo: int, hi: int
) -> list[Summary]:
    rows = await pool.fetch(
        f"SELECT {_COLS} FROM {schema}.summaries"
        " WHERE session_id = $1 AND generation = $2 AND hi > $3 AND hi <= $4"
        " ORDER BY hi, lo",
        session_id,
        generation,
        lo,
        hi,
    )
    return [_from(r, r["created_at"]) for r in rows]


# --- SQLite -------------------------------------------------------------------------------------

SQLITE_SUMMARIES_MIGRATION = [
    """
    CREATE TABLE summaries (
        session_id TEXT NOT NULL,
        generation INTEGER NOT NULL,
        lo         INTEGER NOT NULL,
        hi         INTEGER NOT NULL,
        level      INTEGER NOT NULL,
        tokens     INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        summarizer TEXT NOT NULL,
        content    TEXT NOT NULL,
        PRIMARY KEY (session_id, generation, hi, lo)
    )
    """,
]
"""``created_at`` in integer microseconds since the epoch, like the store's other tables."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def sqlite_put_summary(conn: sqlite3.Connection, summary: Summary) -> bool:
    """Insert-or-nothing in one ``BEGIN IMMEDIATE`` transaction (runs on the store's thread)."""
    args = list(_args(summary))
    created = summary.created_at
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    args[6] = (created - _EPOCH) // _MICRO
    conn.execute("BEGIN IMMEDIATE")
    try:
        n = conn.execute(
            f"INSERT INTO summaries ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (session_id, generation, hi, lo) DO NOTHING",
            args,
        ).rowcount
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return n > 0


def sqlite_list_summaries(
    conn: sqlite3.Connection, session_id: str, generation: int, lo: int, hi: int
) -> list[Summary]:
    cur = conn.execute(
        f"SELECT {_COLS} FROM summaries"
        " WHERE session_id = ? AND generation = ? AND hi > ? AND hi <= ? ORDER BY hi, lo",
        (session_id, generation, lo, hi),
    )
    names = [d[0] for d in cur.description]
    out: list[Summary] = []
    for values in cur.fetchall():
        row = dict(zip(names, values, strict=True))
        out.append(_from(row, _EPOCH + int(row["created_at"]) * _MICRO))
    return out

"""Row mapping shared by the SQL stores (PostgreSQL and SQLite).

Both stores have the same tables with the same columns in the same order; they differ only in
how a few values are stored: datetimes (``timestamptz`` vs. integer microseconds), text the
database cannot hold as is (PostgreSQL escapes NUL characters) and metadata (``jsonb`` through
the connection's codec vs. JSON text). A :class:`RowCodec` holds a backend's conversions and
does the rest the same way for both. SQL that differs by dialect (placeholders, casts, schema
prefixes) stays in each store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from durable_sessions.models import (
    Checkpoint,
    SessionState,
    SessionStats,
    SessionStatus,
    SessionTurn,
)

T = TypeVar("T")
V = TypeVar("V")

SESSION_COLS = (
    "session_id, user_id, status, created_at, updated_at, expires_at, total_cost, total_tokens,"
    " turn_count, generation, fork_seq, parent_generation, parent_session_id, branch_name,"
    " last_checkpoint_id, metadata"
)
"""The ``sessions`` columns, in the order of :meth:`RowCodec.session_args`."""

CHECKPOINT_COLS = (
    "checkpoint_id, session_id, created_at, total_cost, total_tokens, generation, turn_count,"
    " reason, status, metadata"
)
"""The ``checkpoints`` columns, in the order of :meth:`RowCodec.checkpoint_args`."""


class Row(Protocol):
    """A result row readable by column name (``asyncpg.Record``, ``sqlite3.Row``)."""

    def __getitem__(self, key: str, /) -> Any: ...


def update_all(cols: str, key: str) -> str:
    """The ``DO UPDATE SET`` list of an upsert: every column of ``cols`` but ``key`` is set to
    the proposed row's value (``EXCLUDED``, as both PostgreSQL and SQLite call it)."""
    names = [name.strip() for name in cols.split(",")]
    return ", ".join(f"{name} = EXCLUDED.{name}" for name in names if name != key)


def require_seqs(turns: Sequence[SessionTurn]) -> None:
    """Raise ``ValueError`` unless every turn has its ``seq`` (the log's key) set."""
    for turn in turns:
        if turn.seq is None:
            raise ValueError("turn.seq must be set before it is persisted")


def _same(value: T) -> T:
    return value


def _opt(convert: Callable[[T], V], value: T | None) -> V | None:
    return None if value is None else convert(value)


@dataclass(frozen=True, slots=True)
class RowCodec:
    """A backend's value conversions, and the row mapping built on them.

    ``*_in`` converts a model value to what the driver stores, ``*_out`` converts back. ``text``
    applies to free text the user controls (turn content, agent, branch name); identifiers are
    stored as is. Optional values are None in both directions.
    """

    meta_in: Callable[[dict[str, Any]], Any]
    meta_out: Callable[[Any], dict[str, Any]]
    ts_in: Callable[[datetime], Any] = _same
    ts_out: Callable[[Any], datetime] = _same
    text_in: Callable[[str], str] = _same
    text_out: Callable[[str], str] = _same

    # --- model -> row -------------------------------------------------------------------------

    def session_args(self, s: SessionState) -> tuple[Any, ...]:
        """A header's values in ``SESSION_COLS`` order."""
        return (
            s.session_id,
            s.user_id,
            s.status.value,
            self.ts_in(s.created_at),
            self.ts_in(s.updated_at),
            _opt(self.ts_in, s.expires_at),
            s.total_cost,
            s.total_tokens,
            s.turn_count,
            s.generation,
            s.fork_seq,
            s.parent_generation,
            s.parent_session_id,
            _opt(self.text_in, s.branch_name),
            s.last_checkpoint_id,
            self.meta_in(s.metadata),
        )

    def turn_args(self, t: SessionTurn) -> tuple[Any, ...]:
        """A turn's values after ``(sid, generation)``: ``seq, turn_id, role, content,
        timestamp, tokens, cost, agent, metadata``."""
        return (
            t.seq,
            t.turn_id,
            t.role,
            self.text_in(t.content),
            self.ts_in(t.timestamp),
            t.tokens,
            t.cost,
            _opt(self.text_in, t.agent),
            self.meta_in(t.metadata),
        )

    def checkpoint_args(self, c: Checkpoint) -> tuple[Any, ...]:
        """A checkpoint's values in ``CHECKPOINT_COLS`` order."""
        return (
            c.checkpoint_id,
            c.session_id,
            self.ts_in(c.created_at),
            c.total_cost,
            c.total_tokens,
            c.generation,
            c.turn_count,
            c.reason,
            c.status.value,
            self.meta_in(c.metadata),
        )

    # --- row -> model -------------------------------------------------------------------------

    def session_from(self, r: Row) -> SessionState:
        return SessionState(
            session_id=r["session_id"],
            user_id=r["user_id"],
            status=SessionStatus(r["status"]),
            metadata=self.meta_out(r["metadata"]),
            created_at=self.ts_out(r["created_at"]),
            updated_at=self.ts_out(r["updated_at"]),
            turn_count=r["turn_count"],
            total_tokens=r["total_tokens"],
            total_cost=r["total_cost"],
            parent_session_id=r["parent_session_id"],
            branch_name=_opt(self.text_out, r["branch_name"]),
            fork_seq=r["fork_seq"],
            last_checkpoint_id=r["last_checkpoint_id"],
            expires_at=_opt(self.ts_out, r["expires_at"]),
            generation=r["generation"],
            parent_generation=r["parent_generation"],
        )

    def turn_from(self, r: Row) -> SessionTurn:
        return SessionTurn(
            turn_id=r["turn_id"],
            role=r["role"],
            content=self.text_out(r["content"]),
            timestamp=self.ts_out(r["timestamp"]),
            tokens=r["tokens"],
            cost=r["cost"],
            agent=_opt(self.text_out, r["agent"]),
            metadata=self.meta_out(r["metadata"]),
            seq=r["seq"],
        )

    def checkpoint_from(self, r: Row) -> Checkpoint:
        return Checkpoint(
            checkpoint_id=r["checkpoint_id"],
            session_id=r["session_id"],
            turn_count=r["turn_count"],
            created_at=self.ts_out(r["created_at"]),
            reason=r["reason"],
            generation=r["generation"],
            status=SessionStatus(r["status"]),
            metadata=self.meta_out(r["metadata"]),
            total_tokens=r["total_tokens"],
            total_cost=r["total_cost"],
        )


def stats_from(row: Row) -> SessionStats:
    """``SessionStats`` from a row with ``n, active, suspended, closed, expired, turns, tokens,
    cost, checkpoints`` (the stores' ``get_stats`` query)."""
    n = int(row["n"])
    return SessionStats(
        active=row["active"],
        suspended=row["suspended"],
        closed=row["closed"],
        expired=row["expired"],
        avg_turns=(int(row["turns"]) / n) if n else 0.0,
        checkpoints_per_session=(int(row["checkpoints"]) / n) if n else 0.0,
        total_tokens=int(row["tokens"]),
        total_cost=float(row["cost"]),
    )


def list_sessions_sql(
    table: str,
    placeholder: Callable[[int], str],
    user_id: str | None,
    status: SessionStatus | None,
    limit: int | None,
) -> tuple[str, list[Any]]:
    """The ``list_sessions`` query and its arguments; ``placeholder(n)`` spells argument n."""
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return placeholder(len(args))

    where: list[str] = []
    if user_id is not None:
        where.append(f"user_id = {arg(user_id)}")
    if status is not None:
        where.append(f"status = {arg(SessionStatus(status).value)}")
    sql = f"SELECT {SESSION_COLS} FROM {table}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY created_at, session_id"
    if limit is not None:
        sql += f" LIMIT {arg(limit)}"
    return sql, args

"""Value conversions, upsert statements and transaction helpers of the SQLite store."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from durable_sessions.stores._rows import CHECKPOINT_COLS, SESSION_COLS, RowCodec, update_all

__all__ = [
    "BUSY_TIMEOUT_S",
    "ROWS",
    "TURN_COLS",
    "UPSERT_CHECKPOINT",
    "UPSERT_SESSION",
    "UPSERT_TURN",
    "retry_locked",
    "write",
]

T = TypeVar("T")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def _ts_in(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // _MICRO


def _ts_out(value: int) -> datetime:
    return _EPOCH + value * _MICRO


def _meta_in(metadata: dict[str, Any]) -> str | None:
    if not metadata:
        return None
    return json.dumps(metadata, ensure_ascii=False, separators=(",", ":"))


def _meta_out(value: str | None) -> dict[str, Any]:
    if not value:
        return {}
    decoded: dict[str, Any] = json.loads(value)
    return decoded


# Datetimes are integer microseconds, metadata JSON text (empty is NULL), text as is.
ROWS = RowCodec(meta_in=_meta_in, meta_out=_meta_out, ts_in=_ts_in, ts_out=_ts_out)
TURN_COLS = "seq, turn_id, role, content, timestamp, tokens, cost, agent, metadata"

UPSERT_SESSION = (
    f"INSERT INTO sessions ({SESSION_COLS}) VALUES"
    " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    f" ON CONFLICT (session_id) DO UPDATE SET {update_all(SESSION_COLS, 'session_id')}"
)
UPSERT_TURN = (
    f"INSERT INTO turns (sid, generation, {TURN_COLS})"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    f" ON CONFLICT (sid, generation, seq) DO UPDATE SET {update_all(TURN_COLS, 'seq')}"
)
UPSERT_CHECKPOINT = (
    f"INSERT INTO checkpoints ({CHECKPOINT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    f" ON CONFLICT (checkpoint_id) DO UPDATE SET {update_all(CHECKPOINT_COLS, 'checkpoint_id')}"
)


@contextmanager
def write(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction: takes the database write lock at once, commits or rolls back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


BUSY_TIMEOUT_S = 5.0


def retry_locked(fn: Callable[[], T], *, attempts: int = 40) -> T:
    """Run ``fn``, retrying with a growing pause while SQLite reports the database locked.

    The busy handler covers ordinary lock waits; this covers the cases SQLite reports at once
    (changing the journal mode, a write lock upgrade that would deadlock) when several processes
    open and migrate one new database together.
    """
    delay = 0.01
    for attempt in range(attempts):
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
    raise AssertionError("unreachable")

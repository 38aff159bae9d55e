"""Where wrapped per-session data keys live: the ``KeyStore`` protocol and three backends.

Why it looks the way it does:

* **Shared and durable.** A session's payloads are encrypted by whichever process touches them
  first (normally the client starting the session) and decrypted by others (workers, the codec
  server, other clients), possibly years later. So the wrapped keys live in a database every
  process reaches, not in process memory (``InMemoryKeyStore`` is for tests and single-process
  use only).
* **Only wrapped keys.** Rows hold a session's data key encrypted by a master key
  (``key_id`` says which). A dump of the table is useless without the master keys, which never
  touch the database.
* **Create-if-absent.** Two processes may mint a key for a new session at the same time; the
  first insert wins and ``put_wrapped`` returns the winner, so both use the same key.
* **Tombstones, not deletion.** ``destroy`` keeps the row with ``wrapped`` set to NULL. A deleted
  row would let the next write for that session id silently mint a fresh key, and a session
  resurrected under its old id (a retried start, a late signal, a restore) would go on as if
  nothing happened while its old history stays unreadable. With a tombstone the id is erased for
  good: encoding for it fails just like decoding.
* **Compare-and-set re-wrapping.** Retiring a master key means re-wrapping every data key it
  wrapped under the active one; ``replace_wrapped`` only replaces the exact row it read, so it
  can never resurrect a key destroyed in between.

Erasure caveat, PostgreSQL and SQLite alike: the old row version of a destroyed key (still
wrapped) survives until ``VACUUM`` and lives on in backups and WAL archives. Against those, the
erasure is as strong as the master key's secrecy; to make it final, rotate the master key,
``Keyring.rewrap`` the live keys and drop the old master key from every config.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from durable_sessions.core.clock import utcnow
from durable_sessions.stores._pg import PgPoolOwner
from durable_sessions.stores._sqlite_thread import SQLiteThread

__all__ = [
    "InMemoryKeyStore",
    "KeyStore",
    "PostgresKeyStore",
    "SQLiteKeyStore",
    "WrappedKey",
    "keystore_for",
]


@dataclass(frozen=True)
class WrappedKey:
    """A session's data key as stored: wrapped by master key ``key_id``, or a tombstone."""

    key_id: str | None
    """The master key that wrapped ``wrapped``; None for a tombstone."""
    wrapped: bytes | None
    """``nonce || AES-GCM(master, data key)``; None once the key was destroyed."""

    @property
    def destroyed(self) -> bool:
        return self.wrapped is None

    @classmethod
    def tombstone(cls) -> WrappedKey:
        return cls(key_id=None, wrapped=None)


@runtime_checkable
class KeyStore(Protocol):
    """Durable storage of wrapped per-session data keys, shared by clients and workers."""

    async def setup(self) -> None:
        """Create the table if absent. Idempotent; safe to call from every process."""

    async def close(self) -> None: ...

    async def get_wrapped(self, session_id: str) -> WrappedKey | None:
        """The stored key (or tombstone) of a session, None when it has none."""

    async def put_wrapped(self, session_id: str, key: WrappedKey) -> WrappedKey:
        """Store ``key`` unless the session already has a row; return the row now stored.

        The result may be another process's key or a tombstone: callers must use it, not
        ``key``.
        """

    async def destroy(self, session_id: str) -> bool:
        """Replace the session's key by a tombstone (creating one if it had none).

        Returns True when a live key was destroyed, False when there was none or it was
        destroyed already. Idempotent.
        """

    async def replace_wrapped(self, session_id: str, old: WrappedKey, new: WrappedKey) -> bool:
        """Replace the row by ``new`` if it still equals ``old`` (re-wrapping). True if done."""

    async def list_wrapped_by_other(
        self, active_key_id: str, *, limit: int = 500
    ) -> list[tuple[str, WrappedKey]]:
        """Live keys wrapped by a master key other than ``active_key_id`` (to re-wrap)."""


class InMemoryKeyStore:
    """A ``KeyStore`` in a dict: one process only (tests, ``dev``); nothing survives it."""

    def __init__(self) -> None:
        self._rows: dict[str, WrappedKey] = {}

    async def setup(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def get_wrapped(self, session_id: str) -> WrappedKey | None:
        return self._rows.get(session_id)

    async def put_wrapped(self, session_id: str, key: WrappedKey) -> WrappedKey:
        return self._rows.setdefault(session_id, key)

    async def destroy(self, session_id: str) -> bool:
        old = self._rows.get(session_id)
        self._rows[session_id] = WrappedKey.tombstone()
        return old is not None and not old.destroyed

    async def replace_wrapped(self, session_id: str, old: WrappedKey, new: WrappedKey) -> bool:
        if self._rows.get(session_id) != old or old.destroyed:
            return False
        self._rows[session_id] = new
        return True

    async def list_wrapped_by_other(
        self, active_key_id: str, *, limit: int = 500
    ) -> list[tuple[str, WrappedKey]]:
        rows = [
            (sid, key)
            for sid, key in sorted(self._rows.items())
            if not key.destroyed and key.key_id != active_key_id
        ]
        return rows[:limit]


def _row_key(row: Any) -> WrappedKey:
    wrapped = row["wrapped"] if row["wrapped"] is None else bytes(row["wrapped"])
    return WrappedKey(key_id=row["key_id"], wrapped=wrapped)


class PostgresKeyStore(PgPoolOwner):
    """A ``KeyStore`` on PostgreSQL: table ``<schema>.session_keys``.

    It may share the sessions' database and schema (``PostgresKeyStore.for_store(store)``) or
    live in a database of its own: erasure only needs the rows gone from wherever they are.

    Args:
        dsn: A libpq connection URL.
        schema: The schema holding ``session_keys``; created by ``setup()`` if missing.
        min_size: Minimum pooled connections.
        max_size: Maximum pooled connections (key lookups are rare: keys are cached).

    Raises:
        ValueError: If ``schema`` is not a plain SQL identifier.
    """

    def __init__(
        self, dsn: str, *, schema: str = "public", min_size: int = 1, max_size: int = 4
    ) -> None:
        super().__init__(dsn, schema=schema, min_size=min_size, max_size=max_size)
        self._t = f'"{schema}".session_keys'

    @classmethod
    def for_store(cls, store: Any) -> PostgresKeyStore:
        """A key store in the same database and schema as a ``PostgresSessionStore``."""
        return cls(store.dsn, schema=store.schema)

    async def setup(self) -> None:
        # Serialised like the session store's migrations.
        async with self._locked("session_keys") as conn:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._t} ("
                " session_id   text PRIMARY KEY,"
                " key_id       text,"
                " wrapped      bytea,"
                " created_at   timestamptz NOT NULL DEFAULT now(),"
                " destroyed_at timestamptz,"
                " CHECK ((wrapped IS NULL) = (destroyed_at IS NOT NULL)))"
            )

    async def get_wrapped(self, session_id: str) -> WrappedKey | None:
        pool = await self._get_pool()
        row = await pool.fetchrow(
            f"SELECT key_id, wrapped FROM {self._t} WHERE session_id = $1", session_id
        )
        return None if row is None else _row_key(row)

    async def put_wrapped(self, session_id: str, key: WrappedKey) -> WrappedKey:
        if key.destroyed:
            raise ValueError("put_wrapped stores live keys; use destroy() for tombstones")
        pool = await self._get_pool()
        row = await pool.fetchrow(
            f"INSERT INTO {self._t} (session_id, key_id, wrapped) VALUES ($1, $2, $3)"
            " ON CONFLICT (session_id) DO NOTHING RETURNING key_id, wrapped",
            session_id,
            key.key_id,
            key.wrapped,
        )
        if row is not None:
            return _row_key(row)
        # Lost the race (or the id is erased): a new statement sees the committed winner.
        existing = await self.get_wrapped(session_id)
        if existing is None:  # pragma: no cover - rows are never deleted
            raise RuntimeError(f"session key row of {session_id!r} vanished")
        return existing

    async def destroy(self, session_id: str) -> bool:
        pool = await self._get_pool()
        async with pool.acquire() as conn, conn.transaction():
            live = await conn.fetchval(
                f"SELECT wrapped IS NOT NULL FROM {self._t} WHERE session_id = $1 FOR UPDATE",
                session_id,
            )
            await conn.execute(
                f"INSERT INTO {self._t} AS k (session_id, key_id, wrapped, destroyed_at)"
                " VALUES ($1, NULL, NULL, now())"
                " ON CONFLICT (session_id) DO UPDATE SET key_id = NULL, wrapped = NULL,"
                " destroyed_at = coalesce(k.destroyed_at, now())",
                session_id,
            )
        return bool(live)

    async def replace_wrapped(self, session_id: str, old: WrappedKey, new: WrappedKey) -> bool:
        if old.destroyed or new.destroyed:
            return False
        pool = await self._get_pool()
        status: str = await pool.execute(
            f"UPDATE {self._t} SET key_id = $4, wrapped = $5"
            " WHERE session_id = $1 AND key_id = $2 AND wrapped = $3",
            session_id,
            old.key_id,
            old.wrapped,
            new.key_id,
            new.wrapped,
        )
        return status.endswith(" 1")

    async def list_wrapped_by_other(
        self, active_key_id: str, *, limit: int = 500
    ) -> list[tuple[str, WrappedKey]]:
        pool = await self._get_pool()
        rows = await pool.fetch(
            f"SELECT session_id, key_id, wrapped FROM {self._t}"
            " WHERE wrapped IS NOT NULL AND key_id IS DISTINCT FROM $1"
            " ORDER BY session_id LIMIT $2",
            active_key_id,
            limit,
        )
        return [(r["session_id"], _row_key(r)) for r in rows]


class SQLiteKeyStore(SQLiteThread):
    """A ``KeyStore`` in a SQLite file (one machine: the ``dev`` stack, single-host deployments).

    Every call runs on one dedicated thread owning the connection, as in the SQLite session
    store: ``sqlite3`` blocks, and one thread serialises the writes.
    """

    _thread_name = "ds-keys"

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=5000")
        # Freed space is zeroed, so a destroyed key's old row does not linger in pages.
        conn.execute("PRAGMA secure_delete=ON")
        return conn

    async def setup(self) -> None:
        def create(conn: sqlite3.Connection) -> None:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS session_keys ("
                " session_id TEXT PRIMARY KEY,"
                " key_id TEXT,"
                " wrapped BLOB,"
                " created_at TEXT NOT NULL,"
                " destroyed_at TEXT)"
            )

        await self._run(create)

    async def get_wrapped(self, session_id: str) -> WrappedKey | None:
        def get(conn: sqlite3.Connection) -> WrappedKey | None:
            row = conn.execute(
                "SELECT key_id, wrapped FROM session_keys WHERE session_id = ?", (session_id,)
            ).fetchone()
            return None if row is None else WrappedKey(row[0], row[1])

        return await self._run(get)

    async def put_wrapped(self, session_id: str, key: WrappedKey) -> WrappedKey:
        if key.destroyed:
            raise ValueError("put_wrapped stores live keys; use destroy() for tombstones")

        def put(conn: sqlite3.Connection) -> WrappedKey:
            conn.execute(
                "INSERT INTO session_keys (session_id, key_id, wrapped, created_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (session_id) DO NOTHING",
                (session_id, key.key_id, key.wrapped, _now()),
            )
            row = conn.execute(
                "SELECT key_id, wrapped FROM session_keys WHERE session_id = ?", (session_id,)
            ).fetchone()
            return WrappedKey(row[0], row[1])

        return await self._run(put)

    async def destroy(self, session_id: str) -> bool:
        def destroy(conn: sqlite3.Connection) -> bool:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT wrapped IS NOT NULL FROM session_keys WHERE session_id = ?",
                    (session_id,),
                ).fetchone()
                now = _now()
                conn.execute(
                    "INSERT INTO session_keys (session_id, key_id, wrapped, created_at,"
                    " destroyed_at) VALUES (?, NULL, NULL, ?, ?)"
                    " ON CONFLICT (session_id) DO UPDATE SET key_id = NULL, wrapped = NULL,"
                    " destroyed_at = coalesce(destroyed_at, excluded.destroyed_at)",
                    (session_id, now, now),
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            # Move the change out of the WAL now, so the old page is overwritten in the file.
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return bool(row and row[0])

        return await self._run(destroy)

    async def replace_wrapped(self, session_id: str, old: WrappedKey, new: WrappedKey) -> bool:
        if old.destroyed or new.destroyed:
            return False

        def replace(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE session_keys SET key_id = ?, wrapped = ?"
                " WHERE session_id = ? AND key_id = ? AND wrapped = ?",
                (new.key_id, new.wrapped, session_id, old.key_id, old.wrapped),
            )
            return cur.rowcount == 1

        return await self._run(replace)

    async def list_wrapped_by_other(
        self, active_key_id: str, *, limit: int = 500
    ) -> list[tuple[str, WrappedKey]]:
        def select(conn: sqlite3.Connection) -> list[tuple[str, WrappedKey]]:
            rows = conn.execute(
                "SELECT session_id, key_id, wrapped FROM session_keys"
                " WHERE wrapped IS NOT NULL AND key_id IS NOT ? ORDER BY session_id LIMIT ?",
                (active_key_id, limit),
            ).fetchall()
            return [(r[0], WrappedKey(r[1], r[2])) for r in rows]

        return await self._run(select)


def _now() -> str:
    return utcnow().isoformat()


def keystore_for(store: object) -> KeyStore:
    """The natural key store next to a session store (behind any wrappers).

    The same PostgreSQL schema; a sibling SQLite file (``sessions.db`` -> ``sessions.keys.db``:
    the session store tunes its own file's page size, and keys are better kept apart anyway);
    memory for the in-memory store.

    Raises:
        TypeError: For another kind of store (pass a ``KeyStore`` explicitly then).
    """
    from durable_sessions.stores.memory import InMemorySessionStore
    from durable_sessions.stores.postgres import PostgresSessionStore
    from durable_sessions.stores.sqlite import SQLiteSessionStore

    # Wrappers (EncryptedStore, the Redis cache, ...) keep the store they wrap in ``inner``:
    # the keys belong next to the system of record.
    for _ in range(16):
        inner = getattr(store, "inner", None)
        if inner is None:
            break
        store = inner
    if isinstance(store, PostgresSessionStore):
        return PostgresKeyStore.for_store(store)
    if isinstance(store, SQLiteSessionStore) and store.path != ":memory:":
        path = Path(store.path)
        return SQLiteKeyStore(path.with_name(f"{path.stem}.keys{path.suffix or '.db'}"))
    if isinstance(store, InMemorySessionStore | SQLiteSessionStore):
        return InMemoryKeyStore()
    raise TypeError(f"no default key store for {type(store).__name__}; pass one explicitly")

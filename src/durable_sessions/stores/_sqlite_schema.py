"""The SQLite store's schema: numbered migrations, each a list of statements.

Never edit a released migration: append a new one.
"""

from __future__ import annotations

from durable_sessions.stores._summaries import SQLITE_SUMMARIES_MIGRATION

__all__ = ["LATEST_SCHEMA_VERSION", "MIGRATIONS"]

MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """
            CREATE TABLE sessions (
                sid                INTEGER PRIMARY KEY,
                session_id         TEXT NOT NULL UNIQUE,
                user_id            TEXT NOT NULL,
                status             TEXT NOT NULL,
                created_at         INTEGER NOT NULL,
                updated_at         INTEGER NOT NULL,
                expires_at         INTEGER,
                total_cost         REAL NOT NULL DEFAULT 0,
                total_tokens       INTEGER NOT NULL DEFAULT 0,
                turn_count         INTEGER NOT NULL DEFAULT 0,
                generation         INTEGER NOT NULL DEFAULT 0,
                fork_seq           INTEGER,
                parent_generation  INTEGER,
                parent_session_id  TEXT,
                branch_name        TEXT,
                last_checkpoint_id TEXT,
                metadata           TEXT
            )
            """,
            "CREATE INDEX sessions_user_status_idx ON sessions (user_id, status)",
            "CREATE INDEX sessions_parent_idx ON sessions (parent_session_id)"
            " WHERE parent_session_id IS NOT NULL",
            "CREATE INDEX sessions_status_idx ON sessions (status)",
            # sid is sessions.sid: the logical key is (session_id, generation, seq). A rowid
            # table (not WITHOUT ROWID), so turns up to 16 KB stay on their leaf page instead of
            # spilling to overflow pages.
            """
            CREATE TABLE turns (
                sid         INTEGER NOT NULL,
                generation  INTEGER NOT NULL,
                seq         INTEGER NOT NULL,
                turn_id     TEXT NOT NULL,
                role        TEXT NOT NULL,
                content     TEXT NOT NULL,
                timestamp   INTEGER NOT NULL,
                tokens      INTEGER,
                cost        REAL NOT NULL DEFAULT 0,
                agent       TEXT,
                metadata    TEXT,
                PRIMARY KEY (sid, generation, seq)
            )
            """,
            """
            CREATE TABLE generations (
                session_id        TEXT NOT NULL,
                generation        INTEGER NOT NULL,
                parent_generation INTEGER NOT NULL,
                fork_seq          INTEGER NOT NULL,
                PRIMARY KEY (session_id, generation)
            ) WITHOUT ROWID
            """,
            """
            CREATE TABLE checkpoints (
                checkpoint_id TEXT PRIMARY KEY,
                session_id    TEXT NOT NULL,
                created_at    INTEGER NOT NULL,
                total_cost    REAL NOT NULL DEFAULT 0,
                total_tokens  INTEGER NOT NULL DEFAULT 0,
                generation    INTEGER NOT NULL DEFAULT 0,
                turn_count    INTEGER NOT NULL,
                reason        TEXT NOT NULL,
                status        TEXT NOT NULL,
                metadata      TEXT
            )
            """,
            "CREATE INDEX checkpoints_session_idx ON checkpoints (session_id, created_at)",
        ],
    ),
    (2, SQLITE_SUMMARIES_MIGRATION),  # compaction summaries (stores/_summaries.py)
    # The fence of the session's writes (SessionStore.persist): 0 until a fenced write.
    (3, ["ALTER TABLE sessions ADD COLUMN fence INTEGER NOT NULL DEFAULT 0"]),
    # What orders two writes of one fence (PersistBatch.fence_tiebreak): 0 until one.
    (4, ["ALTER TABLE sessions ADD COLUMN fence_tb INTEGER NOT NULL DEFAULT 0"]),
]

LATEST_SCHEMA_VERSION: int = MIGRATIONS[-1][0]
"""The schema version this code needs; ``check_schema()`` compares the database against it."""

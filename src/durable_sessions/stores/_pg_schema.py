"""The PostgreSQL store's schema: numbered migrations and the tables they create.

Never edit a released migration: append a new one. Kept apart from ``postgres`` so the schema
reads in one place.
"""

from __future__ import annotations

from durable_sessions.stores._summaries import PG_SUMMARIES_MIGRATION

__all__ = ["LATEST_SCHEMA_VERSION", "MIGRATIONS", "TABLES"]

# Numbered migrations, applied in order. Never edit a released migration: append a new one.
# ``{s}`` is replaced by the quoted schema name.
MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE {s}.sessions (
            session_id         text PRIMARY KEY,
            sid                bigint GENERATED ALWAYS AS IDENTITY,
            user_id            text NOT NULL,
            status             text NOT NULL,
            created_at         timestamptz NOT NULL,
            updated_at         timestamptz NOT NULL,
            expires_at         timestamptz,
            total_cost         double precision NOT NULL DEFAULT 0,
            total_tokens       bigint NOT NULL DEFAULT 0,
            turn_count         integer NOT NULL DEFAULT 0,
            generation         integer NOT NULL DEFAULT 0,
            fork_seq           integer,
            parent_generation  integer,
            parent_session_id  text,
            branch_name        text,
            last_checkpoint_id text,
            metadata           jsonb
        );
        CREATE INDEX sessions_user_status_idx ON {s}.sessions (user_id, status);
        CREATE INDEX sessions_parent_idx ON {s}.sessions (parent_session_id)
            WHERE parent_session_id IS NOT NULL;
        CREATE INDEX sessions_status_idx ON {s}.sessions (status);

        -- The turn log. sid is sessions.sid: the logical key is (session_id, generation, seq).
        -- Fixed-width columns first: no alignment padding between them.
        CREATE TABLE {s}.turns (
            "timestamp" timestamptz NOT NULL,
            cost        double precision NOT NULL DEFAULT 0,
            sid         bigint NOT NULL,
            generation  integer NOT NULL,
            seq         integer NOT NULL,
            tokens      integer,
            turn_id     text NOT NULL,
            role        text NOT NULL,
            agent       text,
            content     text NOT NULL,
            metadata    jsonb,
            PRIMARY KEY (sid, generation, seq)
        );
        DO $$
        BEGIN
            IF EXISTS (SELECT FROM pg_settings
                       WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals))
            THEN
                ALTER TABLE {s}.turns ALTER COLUMN content SET COMPRESSION lz4;
            END IF;
        END $$;

        CREATE TABLE {s}.generations (
            session_id        text NOT NULL,
            generation        integer NOT NULL,
            parent_generation integer NOT NULL,
            fork_seq          integer NOT NULL,
            PRIMARY KEY (session_id, generation)
        );

        CREATE TABLE {s}.checkpoints (
            checkpoint_id text PRIMARY KEY,
            session_id    text NOT NULL,
            created_at    timestamptz NOT NULL,
            total_cost    double precision NOT NULL DEFAULT 0,
            total_tokens  bigint NOT NULL DEFAULT 0,
            generation    integer NOT NULL DEFAULT 0,
            turn_count    integer NOT NULL,
            reason        text NOT NULL,
            status        text NOT NULL,
            metadata      jsonb
        );
        CREATE INDEX checkpoints_session_idx ON {s}.checkpoints (session_id, created_at);
        """,
    ),
    (2, PG_SUMMARIES_MIGRATION),  # compaction summaries (stores/_summaries.py)
    # The fence of the session's writes (SessionStore.persist): 0 until a fenced write.
    (3, "ALTER TABLE {s}.sessions ADD COLUMN fence bigint NOT NULL DEFAULT 0"),
    # What orders two writes of one fence (PersistBatch.fence_tiebreak): 0 until one.
    (4, "ALTER TABLE {s}.sessions ADD COLUMN fence_tb bigint NOT NULL DEFAULT 0"),
]

LATEST_SCHEMA_VERSION: int = MIGRATIONS[-1][0]
"""The schema version this code needs; ``check_schema()`` compares the database against it."""


TABLES = ("sessions", "turns", "generations", "checkpoints", "summaries", "schema_migrations")
"""The store's tables, as ``storage_bytes()`` counts them."""

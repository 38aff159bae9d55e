"""The SQL of ``PostgresSessionStore``'s writes, built once per schema.

Every write of a session is fenced (``SessionStore.persist``): the header upsert's ``ON
CONFLICT ... WHERE`` refuses a write whose fence is lower than the one the session holds, and
returns no row, so the statements below gate their turns and checkpoints on it (``FROM h``).
"""

from __future__ import annotations

from dataclasses import dataclass

from durable_sessions.stores._pg_codec import TURN_COLS
from durable_sessions.stores._rows import CHECKPOINT_COLS, SESSION_COLS, update_all

__all__ = ["CHECKPOINT_ARRAYS", "TURN_ARRAYS", "WriteStatements"]

TURN_ARRAYS = 9
"""Array parameters a batch's turns take ($17..$25: one per ``TURN_COLS`` column)."""
CHECKPOINT_ARRAYS = 10
"""Array parameters a batch's checkpoints take ($26..$35: one per ``CHECKPOINT_COLS`` column)."""


def past_the_head(session: str, generation: str, head: str, keep: str) -> str:
    """The checkpoints of a generation past its head but those of the batch (``keep``): only a
    flush of a workflow task that then timed out stores one there (``PersistBatch``)."""
    return (
        f"session_id = {session} AND generation = {generation} AND turn_count > {head}"
        f" AND checkpoint_id <> ALL({keep}::text[])"
    )


@dataclass(frozen=True, slots=True)
class WriteStatements:
    """The write statements of one schema (``s``, already quoted)."""

    upsert_session: str
    upsert_session_and_turns: str
    drop_past_the_head: str
    drop_broken_checkpoints: str
    persist_if_no_strays: str
    upsert_checkpoint: str
    add_generation: str

    @classmethod
    def of(cls, s: str) -> WriteStatements:
        def fenced_upsert(fence: str, tiebreak: str, where: str = "") -> str:
            """The header upsert of a fenced write: it writes nothing, and returns no row,
            when the session holds a higher fence, or the same fence with a higher
            tiebreak (``PersistBatch.fence_tiebreak``)."""
            tb = f"coalesce({tiebreak}::bigint, 0)"
            return (
                f"INSERT INTO {s}.sessions ({SESSION_COLS}, fence, fence_tb) SELECT"
                " $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,"
                f" coalesce({fence}::bigint, 0), {tb}{where}"
                f" ON CONFLICT (session_id) DO UPDATE SET {update_all(SESSION_COLS, 'session_id')},"
                f" fence = coalesce({fence}::bigint, sessions.fence),"
                f" fence_tb = CASE WHEN {fence}::bigint IS NULL THEN sessions.fence_tb"
                f" ELSE {tb} END"
                f" WHERE {fence}::bigint IS NULL"
                f" OR (sessions.fence, sessions.fence_tb) <= ({fence}::bigint, {tb})"
                " RETURNING sid"
            )

        # The batch's turns (arrays $17..$25, in TURN_COLS order) under the sid of ``h``.
        # A retried batch rewrites no turn: the WHERE skips rows that are already identical.
        insert_turns = (
            f"INSERT INTO {s}.turns (sid, generation, {TURN_COLS})"
            " SELECT h.sid, $10, u.* FROM h, unnest($17::int[], $18::text[], $19::text[],"
            " $20::text[], $21::timestamptz[], $22::int[], $23::float8[], $24::text[],"
            " $25::jsonb[]) AS u"
            f" ON CONFLICT (sid, generation, seq) DO UPDATE SET {update_all(TURN_COLS, 'seq')}"
            ' WHERE (turns.turn_id, turns.role, turns.content, turns."timestamp",'
            " turns.tokens, turns.cost, turns.agent, turns.metadata)"
            " IS DISTINCT FROM (EXCLUDED.turn_id, EXCLUDED.role, EXCLUDED.content,"
            ' EXCLUDED."timestamp", EXCLUDED.tokens, EXCLUDED.cost, EXCLUDED.agent,'
            " EXCLUDED.metadata)"
        )
        return cls(
            upsert_session=(
                f"INSERT INTO {s}.sessions ({SESSION_COLS}) VALUES"
                " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
                f" ON CONFLICT (session_id) DO UPDATE SET {update_all(SESSION_COLS, 'session_id')}"
            ),
            # Header and turns in one statement: the upsert hands the session's sid to the
            # turns. ``d`` drops stray copies of this batch's turns past the head (``seq >=
            # turn_count``), left by a flush whose workflow task then timed out (see
            # ``PersistBatch``); it touches other rows than the insert, which only writes below
            # ``turn_count``. The statement answers whether the fence admitted the write and
            # how many strays it dropped (the insert runs to completion all the same).
            upsert_session_and_turns=(
                f"WITH h AS ({fenced_upsert('$26', '$27')}),"
                f" d AS (DELETE FROM {s}.turns USING h WHERE turns.sid = h.sid"
                " AND turns.generation = $10 AND turns.seq >= $9"
                " AND turns.turn_id = ANY($18::text[]) RETURNING 1),"
                f" i AS ({insert_turns})"
                " SELECT (SELECT count(*) FROM h) AS admitted, (SELECT count(*) FROM d) AS strays"
            ),
            drop_past_the_head=(
                f"DELETE FROM {s}.checkpoints WHERE {past_the_head('$1', '$2', '$3', '$4')}"
            ),
            # Checkpoints of this generation past the head whose turns are not all in the log:
            # a flush of a timed-out workflow task wrote them (see ``PersistBatch``). Only stray
            # copies going can leave one so, so it runs only after ``d`` dropped some.
            drop_broken_checkpoints=(
                f"DELETE FROM {s}.checkpoints c WHERE {past_the_head('$1', '$2', '$3', '$4')}"
                f" AND (SELECT count(*) FROM {s}.turns t JOIN {s}.sessions h ON t.sid = h.sid"
                " WHERE h.session_id = $1 AND t.generation = $2 AND t.seq >= $3"
                " AND t.seq < c.turn_count) < c.turn_count - $3"
            ),
            # The common flush in one statement, without a transaction around it: header,
            # turns and checkpoints, unless a stray copy of one of the batch's turns is past
            # the head (then it writes nothing and says so, and ``persist`` takes the
            # transaction path). One round trip instead of five (begin, statement, checkpoints,
            # commit, the pool's reset): a worker's event loop is busy, and each round trip
            # waits for it. ``x`` is ``drop_past_the_head`` for a fenced write.
            persist_if_no_strays=(
                f"WITH s0 AS (SELECT sid FROM {s}.sessions WHERE session_id = $1),"
                f" stray AS (SELECT 1 FROM {s}.turns t JOIN s0 ON t.sid = s0.sid"
                " WHERE t.generation = $10 AND t.seq >= $9 AND t.turn_id = ANY($18::text[])"
                " LIMIT 1),"
                f" h AS ({fenced_upsert('$36', '$37', ' WHERE NOT EXISTS (SELECT 1 FROM stray)')}),"
                f" i AS ({insert_turns}),"
                f" x AS (DELETE FROM {s}.checkpoints USING h WHERE $36::bigint IS NOT NULL"
                f" AND {past_the_head('$1', '$10', '$9', '$26')}),"
                f" c AS (INSERT INTO {s}.checkpoints ({CHECKPOINT_COLS})"
                " SELECT u.* FROM h, unnest($26::text[], $27::text[], $28::timestamptz[],"
                " $29::float8[], $30::bigint[], $31::int[], $32::int[], $33::text[],"
                " $34::text[], $35::jsonb[]) AS u"
                " ON CONFLICT (checkpoint_id) DO UPDATE SET"
                f" {update_all(CHECKPOINT_COLS, 'checkpoint_id')})"
                " SELECT EXISTS (SELECT 1 FROM stray) AS blocked,"
                " EXISTS (SELECT 1 FROM h) AS admitted"
            ),
            upsert_checkpoint=(
                f"INSERT INTO {s}.checkpoints ({CHECKPOINT_COLS}) VALUES"
                " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                " ON CONFLICT (checkpoint_id) DO UPDATE SET"
                f" {update_all(CHECKPOINT_COLS, 'checkpoint_id')}"
            ),
            # One statement, one transaction: the fence (see SessionStore.persist; a session
            # with no header yet has none), the record, and with a prior head the strays of
            # timed-out workflow tasks' flushes (see SessionStore.add_generation).
            add_generation=(
                f"WITH f AS (UPDATE {s}.sessions SET fence = $6::bigint, fence_tb = 0"
                " WHERE session_id = $1 AND (fence, fence_tb) <= ($6::bigint, 0) RETURNING 1),"
                " ok AS (SELECT 1 WHERE $6::bigint IS NULL OR EXISTS (SELECT 1 FROM f)"
                f" OR NOT EXISTS (SELECT 1 FROM {s}.sessions WHERE session_id = $1)),"
                f" g AS (INSERT INTO {s}.generations"
                " (session_id, generation, parent_generation, fork_seq)"
                " SELECT $1, $2, $3, $4 FROM ok"
                " ON CONFLICT (session_id, generation) DO UPDATE SET"
                " parent_generation = EXCLUDED.parent_generation, fork_seq = EXCLUDED.fork_seq),"
                f" t AS (DELETE FROM {s}.turns WHERE $5::int IS NOT NULL"
                " AND EXISTS (SELECT 1 FROM ok)"
                f" AND sid IN (SELECT sid FROM {s}.sessions WHERE session_id = $1)"
                " AND ((generation = $2 - 1 AND seq >= $5::int) OR generation = $2)),"
                f" c AS (DELETE FROM {s}.checkpoints WHERE $5::int IS NOT NULL"
                " AND EXISTS (SELECT 1 FROM ok) AND session_id = $1"
                " AND ((generation = $2 - 1 AND turn_count > $5::int) OR generation = $2))"
                " SELECT EXISTS (SELECT 1 FROM ok)"
            ),
        )

"""Full-text search of transcripts in PostgreSQL: a ``tsvector`` column, a GIN index, BM25 in SQL.

* **Opt-in** (``PostgresSessionStore(..., recall=True)``, or ``?recall=true`` in the store URL):
  the index stores roughly as much again as the turn text (the ``tsvector`` ~0.8x of ~2 KB
  prose, plus the GIN index), so a deployment that never recalls does not pay for it. Enabling
  it adds a generated column (``to_tsvector('english', ...)`` of the first 64 KiB of a turn,
  computed by PostgreSQL on every insert, whichever process writes) and rewrites the turns table
  once. It is a property of the schema, not of a process: once on, every writer maintains it.
* **Ranking is Okapi BM25** (k1 = 1.5, b = 0.75, as ``bm25s``) computed in the statement over
  the matching turns: ``ts_rank`` knows no inverse document frequency, and a name that appears in
  every other turn would otherwise outrank the rare words of a question. Document frequencies
  are counted over the searched transcripts; a turn's length is its number of distinct lexemes.
* **One round trip**: the lineage walk (``_sql_search``), the GIN lookup, de-duplication of
  shared prefixes, scoring, and reading the text of only the best ``limit`` turns.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from durable_sessions.stores._pg_codec import ROWS, TURN_COLS
from durable_sessions.stores._search import TurnMatch, check_limit, query_terms
from durable_sessions.stores._sql_search import segments_cte

__all__ = ["INDEXED_CHARS", "RECALL_DDL", "has_recall_index", "pg_search_turns"]

INDEXED_CHARS = 65_536
"""Characters of a turn that are indexed (a ``tsvector`` is limited to 1 MB)."""

RECALL_DDL = f"""
ALTER TABLE {{s}}.turns ADD COLUMN IF NOT EXISTS tsv tsvector
    GENERATED ALWAYS AS (to_tsvector('english'::regconfig, left(content, {INDEXED_CHARS}))) STORED;
CREATE INDEX IF NOT EXISTS turns_tsv_idx ON {{s}}.turns USING gin (tsv);
"""
"""Applied by ``setup()`` when the store is built with ``recall=True``; idempotent."""

_K1 = 1.5
_B = 0.75


def _search_sql(s: str) -> str:
    cols = ", ".join(f"t.{c.strip()}" for c in TURN_COLS.split(","))
    sessions = "($3::text[] IS NULL OR session_id = ANY($3::text[]))"
    segs = segments_cte(f"{s}.", "$1", sessions, "least")
    return (
        f"{segs},"
        # The query's lexemes as PostgreSQL analyses the turns (stemmed, stop words dropped).
        " q AS (SELECT lex, quote_literal(lex)::tsquery AS tq"
        " FROM unnest(tsvector_to_array(to_tsvector('english'::regconfig, $2))) AS lex),"
        " m AS MATERIALIZED ("
        " SELECT DISTINCT ON (t.sid, t.generation, t.seq)"
        " sg.owner, t.sid, t.generation, t.seq, t.tsv, length(t.tsv) AS len"
        f" FROM segs sg JOIN {s}.turns t ON t.sid = sg.sid AND t.generation = sg.gen"
        " AND t.seq >= sg.lo AND t.seq < sg.hi"
        " WHERE t.tsv @@ (SELECT string_agg(quote_literal(lex), ' | ')::tsquery FROM q)"
        " ORDER BY t.sid, t.generation, t.seq, sg.own DESC, sg.depth, sg.owner),"
        " idf AS (SELECT q.lex, ln(1 + (n.total - d.df + 0.5) / (d.df + 0.5)) AS w"
        " FROM q, (SELECT greatest(sum(hi - lo), 1)::float8 AS total FROM segs) n,"
        " LATERAL (SELECT count(*)::float8 AS df FROM m WHERE m.tsv @@ q.tq) d),"
        " dl AS (SELECT greatest(avg(len), 1)::float8 AS avg FROM m),"
        " scored AS ("
        " SELECT m.owner, m.sid, m.generation, m.seq,"
        f" sum(idf.w * greatest(cardinality(u.positions), 1) * {_K1 + 1}"
        f" / (greatest(cardinality(u.positions), 1) + {_K1} * ({1 - _B} + {_B} * m.len / dl.avg)))"
        " AS score"
        " FROM m CROSS JOIN dl CROSS JOIN LATERAL unnest(m.tsv) AS u"
        " JOIN idf ON idf.lex = u.lexeme"
        " GROUP BY m.owner, m.sid, m.generation, m.seq"
        " ORDER BY score DESC, m.owner, m.seq LIMIT $4)"
        f" SELECT sc.owner, sc.score, {cols} FROM scored sc"
        f" JOIN {s}.turns t ON t.sid = sc.sid AND t.generation = sc.generation"
        " AND t.seq = sc.seq"
        " ORDER BY sc.score DESC, sc.owner, sc.seq"
    )


async def has_recall_index(conn: asyncpg.Pool | asyncpg.Connection, s: str) -> bool:
    """Whether the schema's turns carry the ``tsv`` column (``s`` is the quoted schema)."""
    found = await conn.fetchval(
        "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'tsv'"
        " AND NOT attisdropped",
        f"{s}.turns",
    )
    return found is not None


async def pg_search_turns(
    pool: asyncpg.Pool,
    s: str,
    user_id: str,
    query: str,
    *,
    limit: int,
    session_ids: Sequence[str] | None,
) -> list[TurnMatch]:
    """``TurnSearch.search_turns`` on the schema ``s`` (quoted); the caller checked the index."""
    limit = check_limit(limit)
    if limit == 0 or (session_ids is not None and not session_ids):
        return []
    # Only the words our tokenizer keeps reach to_tsvector (no punctuation, no stop words).
    terms = query_terms(query)
    if not terms:
        return []
    sessions = None if session_ids is None else list(session_ids)
    rows = await pool.fetch(_search_sql(s), user_id, " ".join(terms), sessions, limit)
    return [TurnMatch(r["owner"], ROWS.turn_from(r), float(r["score"])) for r in rows]

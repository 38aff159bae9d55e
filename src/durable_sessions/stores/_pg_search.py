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
* **Bounded work for common words.** A question names the people in the conversation, whose
  names are in a large share of all turns; scoring every such turn would cost milliseconds per
  thousand turns. Words in at least ``COMMON_ROWS`` of the turns (per ``ANALYZE``'s statistics
  of the column, so an un-analysed table is searched exhaustively) still add to the scores of
  the candidates found through the rarer words, but make turns candidates on their own only
  when the rarer words find fewer than ``limit``. Their document frequency is then the
  statistics' estimate.
* **One round trip**: the lineage walk (``_sql_search``), the GIN lookup, de-duplication of
  shared prefixes, scoring, and reading the text of only the best ``limit`` turns.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import asyncpg

from durable_sessions.stores._pg_codec import ROWS, TURN_COLS
from durable_sessions.stores._search import TurnMatch, check_limit, query_terms
from durable_sessions.stores._sql_search import segments_cte

__all__ = ["INDEXED_CHARS", "RECALL_DDL", "CommonWords", "has_recall_index", "pg_search_turns"]

INDEXED_CHARS = 65_536
"""Characters of a turn that are indexed (a ``tsvector`` is limited to 1 MB)."""

RECALL_DDL = f"""
ALTER TABLE {{s}}.turns ADD COLUMN IF NOT EXISTS tsv tsvector
    GENERATED ALWAYS AS (to_tsvector('english'::regconfig, left(content, {INDEXED_CHARS}))) STORED;
CREATE INDEX IF NOT EXISTS turns_tsv_idx ON {{s}}.turns USING gin (tsv);
"""
"""Applied by ``setup()`` when the store is built with ``recall=True``; idempotent."""

COMMON_ROWS = 500
"""A word held by at least this many turns of the table (per ``ANALYZE``'s statistics of the
``tsv`` column) is *very common*: it adds to the score of the candidates, but turns holding no
rarer query word are only candidates when those holding one are fewer than the limit."""

COMMON_CANDIDATES = 1000
"""Most turns holding only very common query words that are taken as candidates."""

_K1 = 1.5
_B = 0.75


def _search_sql(s: str) -> str:
    cols = ", ".join(f"t.{c.strip()}" for c in TURN_COLS.split(","))
    sessions = "($3::text[] IS NULL OR s.session_id = ANY($3::text[]))"
    segs = segments_cte(f"{s}.", "$1", sessions, "least")
    in_segment = (
        "sg.sid = {t}.sid AND sg.gen = {t}.generation AND {t}.seq >= sg.lo AND {t}.seq < sg.hi"
    )
    cols_sel = " SELECT t.sid, t.generation, t.seq, t.tsv, length(t.tsv) AS len"
    seg = f"EXISTS (SELECT FROM segs sg WHERE {in_segment.format(t='t')})"
    return (
        f"{segs},"
        # The query's lexemes as PostgreSQL analyses the turns (stemmed, stop words dropped),
        # each with the share of turns holding it per the column statistics (0 when unknown).
        " q AS MATERIALIZED (SELECT l.lex, quote_literal(l.lex)::tsquery AS tq,"
        " coalesce((SELECT max(c.freq) FROM unnest($5::text[], $6::float8[]) AS c(lex, freq)"
        " WHERE c.lex = l.lex), 0) AS freq"
        " FROM unnest(tsvector_to_array(to_tsvector('english'::regconfig, $2))) AS l(lex)),"
        " rare AS MATERIALIZED (SELECT string_agg(quote_literal(lex), ' | ')::tsquery AS tq"
        " FROM q WHERE freq < $7),"
        " pairs AS MATERIALIZED (SELECT string_agg('(' || quote_literal(a.lex) || ' & '"
        " || quote_literal(b.lex) || ')', ' | ')::tsquery AS tq"
        " FROM q a JOIN q b ON a.lex < b.lex WHERE a.freq >= $7 AND b.freq >= $7),"
        " anyq AS MATERIALIZED (SELECT string_agg(quote_literal(lex), ' | ')::tsquery AS tq"
        " FROM q),"
        # Candidates: stored turns of the searched transcripts (the GIN index, then the
        # lineage) that hold a rarer query word; while those are fewer than the limit, up to
        # $8 more that hold two of the very common words, then one.
        " cand1 AS MATERIALIZED ("
        f"{cols_sel} FROM {s}.turns t WHERE t.tsv @@ (SELECT tq FROM rare)"
        f" AND {seg}),"
        " n1 AS MATERIALIZED (SELECT count(*) AS c FROM cand1),"
        " cand2 AS MATERIALIZED ("
        f"{cols_sel} FROM {s}.turns t WHERE (SELECT c FROM n1) < $4"
        " AND t.tsv @@ (SELECT tq FROM pairs)"
        " AND NOT coalesce(t.tsv @@ (SELECT tq FROM rare), false)"
        f" AND {seg} LIMIT $8),"
        " n2 AS MATERIALIZED (SELECT (SELECT c FROM n1) + count(*) AS c FROM cand2),"
        " cand3 AS MATERIALIZED ("
        f"{cols_sel} FROM {s}.turns t WHERE (SELECT c FROM n2) < $4"
        " AND t.tsv @@ (SELECT tq FROM anyq)"
        " AND NOT coalesce(t.tsv @@ (SELECT tq FROM rare), false)"
        " AND NOT coalesce(t.tsv @@ (SELECT tq FROM pairs), false)"
        f" AND {seg} LIMIT greatest($8 - (SELECT count(*) FROM cand2), 0)),"
        " cand AS MATERIALIZED (SELECT * FROM cand1 UNION ALL SELECT * FROM cand2"
        " UNION ALL SELECT * FROM cand3),"
        # One row per (candidate, query lexeme it holds), with the term's frequency in it.
        " hit AS MATERIALIZED (SELECT c.sid, c.generation, c.seq, c.len, u.lexeme AS lex,"
        " greatest(cardinality(u.positions), 1) AS tf"
        " FROM cand c CROSS JOIN LATERAL unnest(c.tsv) AS u"
        " WHERE u.lexeme = ANY (ARRAY(SELECT lex FROM q))),"
        " n AS MATERIALIZED (SELECT greatest(sum(hi - lo), 1)::float8 AS total FROM segs),"
        # Document frequencies: counted for the rarer words (every turn holding one is a
        # candidate), else the larger of the count and the statistics' estimate.
        " df AS MATERIALIZED (SELECT hit.lex, CASE WHEN q.freq < $7"
        " THEN count(*)::float8 ELSE greatest(count(*)::float8, q.freq * n.total) END AS d"
        " FROM hit JOIN q ON q.lex = hit.lex CROSS JOIN n GROUP BY hit.lex, q.freq, n.total),"
        " idf AS MATERIALIZED (SELECT df.lex, ln(1 + (n.total - df.d + 0.5) / (df.d + 0.5)) AS w"
        " FROM df CROSS JOIN n),"
        " dl AS MATERIALIZED (SELECT greatest(avg(len), 1)::float8 AS avg FROM cand),"
        " scored AS MATERIALIZED ("
        f" SELECT h.sid, h.generation, h.seq, sum(idf.w * h.tf * {_K1 + 1}"
        f" / (h.tf + {_K1} * ({1 - _B} + {_B} * h.len / dl.avg))) AS score"
        " FROM hit h JOIN idf ON idf.lex = h.lex CROSS JOIN dl"
        " GROUP BY h.sid, h.generation, h.seq, h.len, dl.avg"
        " ORDER BY score DESC, h.sid, h.seq LIMIT $4),"
        # Whom each of the best is reported under: its own session if searched, else the
        # searched session nearest to it.
        " owned AS (SELECT DISTINCT ON (sc.sid, sc.generation, sc.seq) sg.owner, sc.*"
        f" FROM scored sc JOIN segs sg ON {in_segment.format(t='sc')}"
        " ORDER BY sc.sid, sc.generation, sc.seq, sg.own DESC, sg.depth, sg.owner)"
        f" SELECT o.owner, o.score, {cols} FROM owned o"
        f" JOIN {s}.turns t ON t.sid = o.sid AND t.generation = o.generation AND t.seq = o.seq"
        " ORDER BY o.score DESC, o.owner, o.seq"
    )


class CommonWords:
    """The very common lexemes of a schema's turns and their shares, from the statistics
    ``ANALYZE`` keeps on the ``tsv`` column, read again every ``ttl`` seconds."""

    def __init__(self, ttl: float = 300.0) -> None:
        self.ttl = ttl
        self._read_at = -math.inf
        self._words: tuple[list[str], list[float], float] = ([], [], 1.0)

    async def get(self, pool: asyncpg.Pool, schema: str) -> tuple[list[str], list[float], float]:
        """``(lexemes, shares, threshold)``: the very common lexemes, the share of turns
        holding each, and the share from which a lexeme is very common."""
        if time.monotonic() - self._read_at < self.ttl:
            return self._words
        row = await pool.fetchrow(
            "SELECT st.most_common_elems::text::text[] AS lexemes,"
            " st.most_common_elem_freqs AS freqs, c.reltuples AS n"
            " FROM pg_stats st JOIN pg_class c ON c.oid = to_regclass($2)"
            " WHERE st.schemaname = $1 AND st.tablename = 'turns' AND st.attname = 'tsv'",
            schema,
            f'"{schema}".turns',
        )
        lexemes: list[str] = []
        shares: list[float] = []
        threshold = 1.0
        if row is not None and row["lexemes"] is not None and row["n"] > 0:
            threshold = COMMON_ROWS / float(row["n"])
            for lex, freq in zip(row["lexemes"], row["freqs"], strict=False):
                if freq >= threshold:
                    lexemes.append(lex)
                    shares.append(float(freq))
        self._words, self._read_at = (lexemes, shares, threshold), time.monotonic()
        return self._words


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
    common: CommonWords,
) -> list[TurnMatch]:
    """``TurnSearch.search_turns`` on the schema ``s`` (quoted); the caller checked the index."""
    limit = check_limit(limit)
    if limit == 0 or (session_ids is not None and not session_ids):
        return []
    # Only the words our tokenizer keeps reach to_tsvector (no punctuation, no stop words).
    terms = query_terms(query)
    if not terms:
        return []
    sessions = None
    if session_ids is not None:  # PostgreSQL text holds no NUL, so no session id has one
        sessions = [sid for sid in session_ids if "\x00" not in sid]
        if not sessions:
            return []
    lexemes, shares, threshold = await common.get(pool, s.strip('"'))
    cap = max(COMMON_CANDIDATES, limit)
    args = (user_id, " ".join(terms), sessions, limit, lexemes, shares, threshold, cap)
    rows = await pool.fetch(_search_sql(s), *args)
    return [TurnMatch(r["owner"], ROWS.turn_from(r), float(r["score"])) for r in rows]

"""Full-text search of transcripts in SQLite: an FTS5 index over the turns, ranked by ``bm25()``.

* **On by default** in the SQLite store (the embedded default of ``durable-sessions dev``):
  ``SQLiteSessionStore(path, recall=False)`` leaves it out. The index is an external-content
  FTS5 table (``turns_fts``: only the index, the text stays in ``turns``), kept in step by
  triggers on ``turns``, so every insert, upsert and delete (``delete_session``) updates it in
  the same transaction, whichever process writes. Enabling it on an existing database indexes
  the turns already there once.
* **Tokenizer** ``porter unicode61 remove_diacritics 2``: words in any script, case and accents
  folded, English stemming, as PostgreSQL's ``english`` configuration does.
* **Ranking** is FTS5's own Okapi BM25 (``bm25()``), whose document frequencies are counted over
  every turn in the database.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from durable_sessions.stores._search import TurnMatch, check_limit, query_terms
from durable_sessions.stores._sql_search import segments_cte
from durable_sessions.stores._sqlite_codec import ROWS, TURN_COLS

__all__ = ["RECALL_DDL", "has_recall_index", "sqlite_search_turns"]

RECALL_DDL: list[str] = [
    "CREATE VIRTUAL TABLE turns_fts USING fts5(content, content='turns',"
    " tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER turns_fts_insert AFTER INSERT ON turns BEGIN"
    " INSERT INTO turns_fts (rowid, content) VALUES (new.rowid, new.content); END",
    "CREATE TRIGGER turns_fts_delete AFTER DELETE ON turns BEGIN"
    " INSERT INTO turns_fts (turns_fts, rowid, content) VALUES ('delete', old.rowid, old.content);"
    " END",
    "CREATE TRIGGER turns_fts_update AFTER UPDATE OF content ON turns BEGIN"
    " INSERT INTO turns_fts (turns_fts, rowid, content) VALUES ('delete', old.rowid, old.content);"
    " INSERT INTO turns_fts (rowid, content) VALUES (new.rowid, new.content); END",
    "INSERT INTO turns_fts (turns_fts) VALUES ('rebuild')",
]
"""Run by ``setup()`` (in its write transaction) when the index is missing and wanted."""


def has_recall_index(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'turns_fts'"
    ).fetchone()
    return row is not None


def _search_sql() -> str:
    cols = ", ".join(f"t.{c.strip()}" for c in TURN_COLS.split(","))
    sessions = "(?2 IS NULL OR s.session_id IN (SELECT value FROM json_each(?2)))"
    segs = segments_cte("", "?1", sessions, "min")
    return (
        f"{segs},"
        " m AS (SELECT rowid AS rid, -bm25(turns_fts) AS score FROM turns_fts"
        " WHERE turns_fts MATCH ?3),"
        " hits AS ("
        " SELECT sg.owner, t.rowid AS rid, t.seq, m.score, row_number() OVER ("
        " PARTITION BY t.rowid ORDER BY sg.own DESC, sg.depth, sg.owner) AS rn"
        " FROM m JOIN turns t ON t.rowid = m.rid"
        " JOIN segs sg ON sg.sid = t.sid AND sg.gen = t.generation"
        " AND t.seq >= sg.lo AND t.seq < sg.hi)"
        f" SELECT h.owner, h.score, {cols} FROM hits h JOIN turns t ON t.rowid = h.rid"
        " WHERE h.rn = 1 ORDER BY h.score DESC, h.owner, h.seq LIMIT ?4"
    )


_SQL = _search_sql()


def sqlite_search_turns(
    conn: sqlite3.Connection,
    user_id: str,
    query: str,
    *,
    limit: int,
    session_ids: Sequence[str] | None,
) -> list[TurnMatch]:
    """``TurnSearch.search_turns`` on the connection (run on the store's thread)."""
    limit = check_limit(limit)
    terms = query_terms(query)
    if limit == 0 or not terms or (session_ids is not None and not session_ids):
        return []
    # Each term quoted (a string, never FTS5 syntax), any of them may match.
    match = " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)
    sessions = None if session_ids is None else json.dumps(list(session_ids))
    rows = conn.execute(_SQL, (user_id, sessions, match, limit)).fetchall()
    return [TurnMatch(r["owner"], ROWS.turn_from(r), float(r["score"])) for r in rows]

"""The SQL both stores share for searching transcripts: which turns a user's transcripts hold.

``segments_cte`` walks the lineage of each searched session in the database, as
``stores.base.resolve_segments`` does one session at a time, with a recursive CTE: ``walk`` has
one row per segment ``(owner, session_id, gen, hi, depth)`` (``owner`` the searched session,
``depth`` 0 for its own generation), and a segment's ``lo`` is the ``hi`` of the next one up
the lineage (0 at the root). ``segs`` adds the turns' ``sid`` and whether the segment is the
owner's own (``own``), which decides whom a shared turn is reported under.
"""

from __future__ import annotations

__all__ = ["segments_cte"]

MAX_DEPTH = 10_000
"""Longest lineage walked (as ``resolve_segments``)."""


def segments_cte(prefix: str, p_user: str, p_sessions: str | None, least: str) -> str:
    """``WITH RECURSIVE walk AS (...), segs AS (...)`` for one dialect.

    Args:
        prefix: The schema prefix of table names (``'"s".'`` or ``''``).
        p_user: The placeholder of the user id.
        p_sessions: A condition restricting the searched ``session_id`` (or None for all).
        least: The dialect's two-argument minimum (``least`` or ``min``).
    """
    t = prefix
    parent = "CASE WHEN w.gen > 0 THEN w.session_id ELSE h.parent_session_id END"
    parent_gen = (
        "CASE WHEN w.gen > 0 THEN g.parent_generation ELSE coalesce(h.parent_generation, 0) END"
    )
    fork = "CASE WHEN w.gen > 0 THEN g.fork_seq ELSE coalesce(h.fork_seq, 0) END"
    has_parent = (
        "CASE WHEN w.gen > 0 THEN g.session_id IS NOT NULL ELSE h.parent_session_id IS NOT NULL END"
    )
    where_sessions = f" AND {p_sessions}" if p_sessions else ""
    return (
        "WITH RECURSIVE walk(owner, session_id, gen, hi, depth) AS ("
        f" SELECT session_id, session_id, generation, turn_count, 0 FROM {t}sessions"
        f" WHERE user_id = {p_user}{where_sessions}"
        " UNION ALL"
        f" SELECT w.owner, {parent}, {parent_gen}, {least}({fork}, w.hi), w.depth + 1"
        " FROM walk w"
        f" LEFT JOIN {t}generations g"
        " ON w.gen > 0 AND g.session_id = w.session_id AND g.generation = w.gen"
        f" LEFT JOIN {t}sessions h ON w.gen = 0 AND h.session_id = w.session_id"
        f" WHERE w.depth < {MAX_DEPTH} AND {has_parent} AND {least}({fork}, w.hi) > 0"
        "),"
        " segs AS ("
        " SELECT a.owner, x.sid, a.gen, coalesce(b.hi, 0) AS lo, a.hi, a.depth,"
        " CASE WHEN a.session_id = a.owner THEN 1 ELSE 0 END AS own"
        f" FROM walk a JOIN {t}sessions x ON x.session_id = a.session_id"
        " LEFT JOIN walk b ON b.owner = a.owner AND b.depth = a.depth + 1"
        " WHERE a.hi > coalesce(b.hi, 0)"
        ")"
    )

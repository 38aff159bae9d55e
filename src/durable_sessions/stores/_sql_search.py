"""The SQL both stores share for searching transcripts: which turns a user's transcripts hold.

``segments_cte`` walks the lineage of each searched session in the database, as
``stores.base.resolve_segments`` does one session at a time, with a recursive CTE: ``segs`` has
one row per segment, the turns ``lo <= seq < hi`` of generation ``gen`` of the session whose
turns are keyed ``sid``, for the searched session ``owner``; ``depth`` is 0 for the owner's
own generation (``own`` = 1), and the next segment up the lineage (``psid``, ``pgen``) ends
where this one starts. A segment whose session's header is gone (a deleted parent) is left out,
as its turns are.
"""

from __future__ import annotations

__all__ = ["segments_cte"]

MAX_DEPTH = 10_000
"""Longest lineage walked (as ``resolve_segments``)."""


def _parent(alias: str, gen: str, g: str) -> tuple[str, str, str, str]:
    """``(has_parent, parent session, parent generation, fork seq)`` of the generation ``gen``
    of the session whose header is ``alias``, ``g`` being its (left-joined) generations row."""
    return (
        f"CASE WHEN {gen} > 0 THEN {g}.session_id IS NOT NULL"
        f" ELSE {alias}.parent_session_id IS NOT NULL END",
        f"CASE WHEN {gen} > 0 THEN {alias}.session_id ELSE {alias}.parent_session_id END",
        f"CASE WHEN {gen} > 0 THEN {g}.parent_generation"
        f" ELSE coalesce({alias}.parent_generation, 0) END",
        f"CASE WHEN {gen} > 0 THEN {g}.fork_seq ELSE coalesce({alias}.fork_seq, 0) END",
    )


def segments_cte(prefix: str, p_user: str, p_sessions: str | None, least: str) -> str:
    """``WITH RECURSIVE segs AS (...)`` for one dialect: one row per segment of a searched
    transcript, ``(owner, sid, gen, lo, hi, depth, own, psid, pgen)``.

    Args:
        prefix: The schema prefix of table names (``'"s".'`` or ``''``).
        p_user: The placeholder of the user id.
        p_sessions: A condition on ``s.session_id`` restricting the searched sessions (or None).
        least: The dialect's two-argument minimum (``least`` or ``min``).
    """
    t = prefix
    where_sessions = f" AND {p_sessions}" if p_sessions else ""
    has0, psid0, pgen0, fork0 = _parent("s", "s.generation", "g")
    has1, psid1, pgen1, fork1 = _parent("h", "w.pgen", "g")
    return (
        "WITH RECURSIVE segs(owner, session_id, sid, gen, hi, lo, psid, pgen, depth, own) AS ("
        " SELECT s.session_id, s.session_id, s.sid, s.generation, s.turn_count,"
        f" CASE WHEN {has0} THEN {least}({fork0}, s.turn_count) ELSE 0 END,"
        f" CASE WHEN {has0} THEN {psid0} END, {pgen0}, 0, 1"
        f" FROM {t}sessions s LEFT JOIN {t}generations g"
        " ON s.generation > 0 AND g.session_id = s.session_id AND g.generation = s.generation"
        f" WHERE s.user_id = {p_user}{where_sessions}"
        " UNION ALL"
        " SELECT w.owner, h.session_id, h.sid, w.pgen, w.lo,"
        f" CASE WHEN {has1} THEN {least}({fork1}, w.lo) ELSE 0 END,"
        f" CASE WHEN {has1} THEN {psid1} END, {pgen1}, w.depth + 1,"
        " CASE WHEN h.session_id = w.owner THEN 1 ELSE 0 END"
        f" FROM segs w JOIN {t}sessions h ON h.session_id = w.psid"
        f" LEFT JOIN {t}generations g"
        " ON w.pgen > 0 AND g.session_id = h.session_id AND g.generation = w.pgen"
        f" WHERE w.lo > 0 AND w.depth < {MAX_DEPTH}"
        ")"
    )

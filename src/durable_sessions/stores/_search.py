"""Searching a user's transcripts (``manager.recall``): the store protocol and the reference scan.

What a search covers. The *current transcript* of each of the user's sessions (any status), or
of the given ones that belong to the user: the turns ``read_transcript`` returns, resolved
through the lineage (``stores.base``), so turns a restore rewound, a parent's turns after a
branch's fork point and deleted sessions are never found. A stored turn that several searched
transcripts share (a branch inherits its parent's prefix) is returned once, attributed to the
session that stores it when that session is searched, else to the searched session nearest to it
in the lineage (then by session id).

What matches. A turn that shares at least one index term with the query, after the backend's
text analysis (stop words dropped; PostgreSQL and SQLite also stem English words). Scores are
BM25-like, higher is better; results are ordered by score, then session id, then seq. Scores are
comparable within one answer, not across backends.

Where it runs: PostgreSQL (``tsvector`` + GIN) and SQLite (FTS5) search in the database
(``_pg_search``, ``_sqlite_search``); the in-memory store and the encrypted store scan the
transcripts here (:func:`scan_search`), the encrypted one because the database only holds
ciphertext.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Protocol, runtime_checkable

from durable_sessions.errors import RecallUnavailableError
from durable_sessions.models import SessionTurn
from durable_sessions.stores.base import SessionStore, resolve_segments

__all__ = [
    "MAX_QUERY_TERMS",
    "MAX_SEARCH_LIMIT",
    "TurnMatch",
    "TurnSearch",
    "query_terms",
    "scan_search",
]

MAX_QUERY_TERMS = 32
"""Distinct query terms a search uses (the first ones); longer queries are cut."""
MAX_SEARCH_LIMIT = 1000
"""Most matches one search returns."""


@dataclass(frozen=True, slots=True)
class TurnMatch:
    """One turn found by a search: the session it is reported under, the turn (``seq`` set)
    and its lexical score (higher is better)."""

    session_id: str
    turn: SessionTurn
    score: float


@runtime_checkable
class TurnSearch(Protocol):
    """What ``manager.recall`` needs from a store, on top of ``SessionStore``."""

    async def search_turns(
        self,
        user_id: str,
        query: str,
        *,
        limit: int,
        session_ids: Sequence[str] | None = None,
    ) -> list[TurnMatch]:
        """The best ``limit`` matches of ``query`` in the user's transcripts (module docstring).

        Raises:
            RecallUnavailableError: If the store cannot search (no index, encrypted text over
                its scan budget).
        """


_WORD = re.compile(r"[^\W_]+")
# Question words and pronouns, which questions are full of, on top of bm25s's English list.
_EXTRA_STOPWORDS = (
    "i me my mine myself you your yours we us our ours he him his she her it its what which "
    "who whom when where why how do does did done am been being have has had can could would "
    "should shall may might must again s t just so than too very"
)


@cache
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(str(w) for w in STOPWORDS_EN) | frozenset(_EXTRA_STOPWORDS.split())


def tokenize(text: str) -> list[str]:
    """Index terms of a text, with repeats: NFKC-normalised, casefolded runs of letters and
    digits, English stop words dropped. (The databases analyse text their own way; this is the
    scan's analysis and the filter every query goes through first.)"""
    stop = _stopwords()
    folded = unicodedata.normalize("NFKC", text).casefold()
    return [w for w in _WORD.findall(folded) if w not in stop]


def query_terms(query: str) -> list[str]:
    """The distinct index terms of a query, in order, at most ``MAX_QUERY_TERMS``."""
    seen: dict[str, None] = {}
    for term in tokenize(query):
        seen.setdefault(term)
        if len(seen) == MAX_QUERY_TERMS:
            break
    return list(seen)


def check_limit(limit: int) -> int:
    """``limit`` clamped to ``[0, MAX_SEARCH_LIMIT]``."""
    return max(0, min(int(limit), MAX_SEARCH_LIMIT))


async def scan_search(
    store: SessionStore,
    user_id: str,
    query: str,
    *,
    limit: int,
    session_ids: Sequence[str] | None = None,
    skip_errors: tuple[type[BaseException], ...] = (),
    max_turns: int | None = None,
) -> list[TurnMatch]:
    """Search by reading every searched transcript and scoring it with ``bm25s`` (Okapi BM25).

    The reference implementation of the contract, for stores that cannot search in the
    database. Its cost is linear in the user's stored turns, per query.

    Args:
        store: Where the transcripts are read (through ``get_own_turns``, so a wrapping store
            decrypts them).
        skip_errors: Errors of ``get_own_turns`` that leave a run of turns out instead of
            failing the search (an erased session's ``SessionKeyDestroyedError``).
        max_turns: Refuse to scan more stored turns than this.

    Raises:
        RecallUnavailableError: If the searched sessions hold more than ``max_turns`` turns.
    """
    limit = check_limit(limit)
    terms = query_terms(query)
    if not terms or limit == 0:
        return []
    wanted = None if session_ids is None else set(session_ids)
    headers = [
        h
        for h in await store.list_sessions(user_id)
        if h.user_id == user_id and (wanted is None or h.session_id in wanted)
    ]
    if max_turns is not None and sum(h.turn_count for h in headers) > max_turns:
        raise RecallUnavailableError(
            f"recall would scan more than {max_turns} turns of encrypted text for this user; "
            "pass sessions= to narrow it",
            field="sessions",
        )
    # Stored turn (session, generation, seq) -> (preference, reported session, turn).
    found: dict[tuple[str, int, int], tuple[tuple[bool, int, str], str, SessionTurn]] = {}
    for h in headers:
        segments = await resolve_segments(store, h.session_id, h.generation, h.turn_count)
        for depth, seg in enumerate(reversed(segments)):
            if seg.hi <= seg.lo:
                continue
            try:
                own = await store.get_own_turns(seg.session_id, seg.generation, seg.lo, seg.hi)
            except skip_errors:
                continue
            pref = (seg.session_id != h.session_id, depth, h.session_id)
            for turn in own:
                assert turn.seq is not None
                key = (seg.session_id, seg.generation, turn.seq)
                if key not in found or pref < found[key][0]:
                    found[key] = (pref, h.session_id, turn)
    if not found:
        return []
    import bm25s

    docs = list(found.values())
    index = bm25s.BM25()
    index.index([tokenize(turn.content) for _, _, turn in docs], show_progress=False)
    scores = index.get_scores(terms)
    ranked = sorted(
        (
            (-float(score), sid, turn.seq or 0, i)
            for i, ((_, sid, turn), score) in enumerate(zip(docs, scores, strict=True))
            if score > 0
        )
    )
    return [TurnMatch(docs[i][1], docs[i][2], -neg) for neg, _, _, i in ranked[:limit]]

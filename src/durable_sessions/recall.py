"""Memory across a user's sessions: ``manager.recall(user_id, query)``.

``recall`` finds the turns most relevant to a query in any of a user's sessions (or a given
subset): each session's *current transcript*, as ``history()`` reads it from the store, so turns
a restore rewound are never recalled, a branch's inherited prefix is recalled once, and a deleted
session is gone at once. Turns still waiting in a session's workflow for their flush (at most
one flush interval) are not searched yet.

Where the work happens:

* **Lexical search runs in the database**: PostgreSQL full-text search (``tsvector`` + GIN, BM25
  computed in SQL; opt-in, ``recall=True``) or SQLite FTS5 (on by default). The in-memory store
  scans. See ``stores._search`` for the contract every backend follows.
* **Semantic re-ranking** (opt-in): with a ``scorer`` (``SemanticScorer``, or ``"default"``
  for the ``[semantic]`` extra's static model) the best lexical candidates
  (``candidates_per_hit`` per requested hit) are re-scored by a blend of their normalised
  lexical score and their similarity to the query, so a paraphrase among the candidates can move
  up. It cannot find a turn that shares no word with the query, and it embeds the candidates
  per query; measured on LoCoMo it does not pay for itself with the packaged model, so it is
  off unless asked for.
* **Encrypted stores** (``EncryptedStore``): the database holds only ciphertext, which it cannot
  index, so recall decrypts and scans the user's transcripts in this process, per query, up to a
  budget of turns (``EncryptedStore.recall_scan_limit``), and skips erased sessions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel

from durable_sessions.errors import RecallUnavailableError, SessionError
from durable_sessions.models import SessionTurn
from durable_sessions.stores._search import TurnMatch, TurnSearch
from durable_sessions.stores.base import SessionStore

__all__ = [
    "MAX_QUERY_CHARS",
    "MAX_RECALL_LIMIT",
    "RecallHit",
    "SemanticScorer",
    "default_scorer",
    "recall",
]

SemanticScorer = Callable[[str, list[str]], list[float]]
"""``scorer(query, texts) -> similarities`` (the same shape as the context pruner's)."""

MAX_RECALL_LIMIT = 200
"""Most hits one recall returns."""
MAX_QUERY_CHARS = 4096
"""Longest query accepted."""


def default_scorer() -> SemanticScorer | None:
    """The ``[semantic]`` extra's embedding model as a scorer, or None when it is not installed
    (``core.semantic``; loaded once per process)."""
    from durable_sessions.core.semantic import load_default_embedder, similarity_scorer

    embedder = load_default_embedder()
    return similarity_scorer(embedder) if embedder is not None else None


class RecallHit(BaseModel):
    """One recalled turn: where it is (``session_id``, ``seq``), the turn, and its score."""

    session_id: str
    seq: int
    turn: SessionTurn
    score: float
    """Relevance, higher is better; comparable within one answer only."""


async def recall(
    store: SessionStore,
    user_id: str,
    query: str,
    *,
    limit: int = 20,
    sessions: Sequence[str] | None = None,
    scorer: SemanticScorer | Literal["default"] | None = None,
    semantic_weight: float = 0.5,
    candidates_per_hit: int = 5,
) -> list[RecallHit]:
    """The ``limit`` turns of the user's sessions most relevant to ``query``, best first.

    Args:
        store: The store the sessions are persisted to (``manager.store``).
        user_id: Whose sessions are searched; no other user's turn is ever returned.
        query: Free text; words are matched after stemming, stop words are ignored.
        limit: How many hits at most, 1 to ``MAX_RECALL_LIMIT``.
        sessions: Search only these sessions (those of them that belong to the user).
        scorer: A semantic scorer to re-rank the lexical candidates with, or ``"default"`` for
            the ``[semantic]`` extra's model when it is installed (:func:`default_scorer`).
            None (the default): lexical only; on LoCoMo the packaged model's re-ranking moved
            recall@20 by less than 0.01 for ~6x the time (``bench/bench_recall.py``).
        semantic_weight: Share of the semantic similarity in the blended score, in ``[0, 1]``.
        candidates_per_hit: Lexical candidates re-ranked per requested hit (with a scorer).

    Raises:
        SessionError: If ``limit`` or ``query`` is out of range (names the field).
        RecallUnavailableError: If the store cannot search (no full-text index).
    """
    if not 1 <= limit <= MAX_RECALL_LIMIT:
        raise SessionError(f"limit must be within 1..{MAX_RECALL_LIMIT}", field="limit")
    if len(query) > MAX_QUERY_CHARS:
        raise SessionError(f"query is longer than {MAX_QUERY_CHARS} characters", field="query")
    if not 0.0 <= semantic_weight <= 1.0:
        raise ValueError("semantic_weight must be within [0, 1]")
    if not isinstance(store, TurnSearch):
        raise RecallUnavailableError(f"{type(store).__name__} cannot search transcripts")
    if sessions is not None and not sessions:
        return []
    if scorer == "default":
        scorer = default_scorer()
    blend = scorer is not None and semantic_weight > 0.0
    pool = max(limit * candidates_per_hit, limit) if blend else limit
    matches = await store.search_turns(user_id, query, limit=pool, session_ids=sessions)
    if blend and matches:
        assert scorer is not None
        matches = _rerank(matches, query, scorer, semantic_weight)
    return [
        RecallHit(session_id=m.session_id, seq=m.turn.seq or 0, turn=m.turn, score=m.score)
        for m in matches[:limit]
    ]


def _rerank(
    matches: list[TurnMatch], query: str, scorer: SemanticScorer, weight: float
) -> list[TurnMatch]:
    """Blend ``(1 - weight) * lexical / best_lexical + weight * max(similarity, 0)``."""
    similarities = scorer(query, [m.turn.content for m in matches])
    if len(similarities) != len(matches):
        raise ValueError(
            f"semantic scorer returned {len(similarities)} scores for {len(matches)} texts"
        )
    top = max(m.score for m in matches) or 1.0
    blended = [
        # A NaN or negative similarity counts as none.
        TurnMatch(
            m.session_id, m.turn, (1 - weight) * m.score / top + weight * (s if s > 0 else 0.0)
        )
        for m, s in zip(matches, similarities, strict=True)
    ]
    blended.sort(key=lambda m: (-m.score, m.session_id, m.turn.seq or 0))
    return blended

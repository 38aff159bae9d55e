"""Context pruning: choose which turns of a long session to send to the model.

Why this package exists: a durable session never loses a turn, so its transcript grows without
bound, while a model's context window does not. Before each model call an application must pick a
subset of the history that fits a budget (a number of turns, a number of tokens, or both). Which
subset matters: the last twenty turns are usually right, but "what was my locker code again?"
needs a turn from two hundred turns ago. Three strategies share one interface,
:class:`ContextPruner`:

* :class:`SlidingWindowPruner`: the most recent *contiguous* turns that fit.
* :class:`TokenBudgetPruner`: the most recent turns that fit, skipping a group that is too
  large and carrying on with older, smaller ones so the budget is filled as far as possible.
* :class:`RelevanceContextPruner`: ranks turns by BM25 relevance to the query (``bm25s``'s
  formulas over stemmed terms), blended with semantic similarity when an embedder is given
  (``durable_sessions.core.semantic``, the ``[semantic]`` extra), boosted for turns said in a
  period the query names, plus a recency term; it then fills the budget greedily, adding the
  turns next to each kept turn.

Invariants shared by every pruner (the unit tests check each one):

* The result is a subset of the input (the same objects) in chronological (input) order.
* Budgets are exact: never more than ``max_turns`` turns, never more than ``max_tokens``
  tokens, where a turn costs ``turn.tokens`` if set, else ``count_tokens(turn.content)``.
  ``None`` means "unbounded" for that dimension; a negative budget is a ``ValueError``.
* System turns are always kept. If the system turns alone exceed a budget, the most recent
  system turns that fit are kept (newest first, skipping any that do not fit) and nothing else.
* A tool call is never split from its result (see :func:`group_turns` for the exact rule).
* An empty history gives ``[]``.

The work is pure and synchronous (no I/O, no Temporal import; ``numpy``, ``bm25s`` and the
embedding model are only imported when the relevance pruner first runs, so workflow sandboxes
that import ``durable_sessions.core`` stay light). ``prune`` is ``async`` so the public API
matches the rest of the client; ``prune_sync`` does the same work outside an event loop.

Speed: the relevance pruner keeps, per session, an incremental index
(:class:`RelevanceIndexCache`): appended turns are tokenized and embedded once, and BM25 is
evaluated at query time over the postings of the query terms only, so a warm prune of a
10,000-turn history costs a few milliseconds and scales linearly. ``bm25s.BM25`` itself
precomputes every (turn, term) score with the corpus-wide IDF and mean length, which change with
every appended turn, so its eager index cannot be extended; we keep the term frequencies and
apply bm25s's own IDF and term-frequency scorers (``bm25s.scoring``) to them; a unit test checks
the scores equal ``bm25s.BM25``'s.

Modules: ``_text`` (terms), ``_groups`` (groups and budgets), ``_base`` (interface, recency
pruners), ``_index`` (incremental index and cache), ``_dates`` (dates in queries),
``_relevance`` (the relevance pruner).
"""

from __future__ import annotations

from durable_sessions.core.pruning._base import (
    ContextPruner,
    SlidingWindowPruner,
    TokenBudgetPruner,
)
from durable_sessions.core.pruning._dates import query_date_ranges
from durable_sessions.core.pruning._groups import group_turns, turn_tokens
from durable_sessions.core.pruning._index import RelevanceIndexCache, _TurnIndex
from durable_sessions.core.pruning._relevance import RelevanceContextPruner, SemanticScorer
from durable_sessions.core.pruning._text import index_terms, tokenize

__all__ = [
    "ContextPruner",
    "RelevanceContextPruner",
    "RelevanceIndexCache",
    "SemanticScorer",
    "SlidingWindowPruner",
    "TokenBudgetPruner",
    "_TurnIndex",
    "group_turns",
    "index_terms",
    "load_default_semantic_scorer",
    "query_date_ranges",
    "tokenize",
    "turn_tokens",
]


def load_default_semantic_scorer() -> SemanticScorer | None:
    """A ``scorer(query, texts) -> cosine similarities`` backed by the packaged static
    embedding model (``durable_sessions.core.semantic.load_default_embedder``), or ``None``
    when the ``[semantic]`` extra is not installed or the model fails to load.

    For scoring a few texts per call (e.g. re-ranking recall candidates). The relevance pruner
    should get the embedder itself (``RelevanceContextPruner(embedder=...)``), which embeds
    each turn once instead of on every call.
    """
    from durable_sessions.core.semantic import load_default_embedder, similarity_scorer

    embedder = load_default_embedder()
    return None if embedder is None else similarity_scorer(embedder)

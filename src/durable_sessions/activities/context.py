"""The pruning activity: computes a session's context view next to its cached transcript.

Why an activity: pruning reads the whole transcript (thousands of turns) and scores it, which
is I/O and CPU that must stay out of deterministic workflow code. Only sequence numbers cross
Temporal (the result names the chosen turns), so a context call adds bytes, not transcripts,
to the session's history. The worker keeps each session's transcript and relevance index in
memory and extends them incrementally, so a warm call on a 10,000-turn session reads only the
turns added since the last call.

Semantic relevance: with the ``[semantic]`` extra installed the relevance pruner also uses the
packaged static embedding model (``core.semantic.load_default_embedder``, loaded once per worker
process, on the first relevance call). Each turn's vector is computed once, when a context call
first sees the turn, and kept in the worker's relevance index cache under the session id and
generation, row ``seq``: keyed by (session, generation, seq), never recomputed per query.
Evicting a session from the cache (``cache_sessions``, least recently used) drops its vectors.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field
from temporalio import activity

from durable_sessions.activities.compaction import CompactionPlan, Compactor, heartbeating
from durable_sessions.agents import Agent
from durable_sessions.core.compaction import SummaryRef
from durable_sessions.core.pruning import (
    ContextPruner,
    RelevanceContextPruner,
    RelevanceIndexCache,
    SlidingWindowPruner,
    TokenBudgetPruner,
)
from durable_sessions.models import CompactionConfig, SessionTurn
from durable_sessions.stores.base import SessionStore, read_transcript

if TYPE_CHECKING:
    from durable_sessions.core.semantic import Embedder

__all__ = [
    "PRUNERS",
    "ContextActivities",
    "ContextRequest",
    "ContextResult",
    "TranscriptCache",
]

PRUNERS = ("relevance", "sliding_window", "token_budget")


class ContextRequest(BaseModel):
    session_id: str
    generation: int
    turn_count: int
    query: str = ""
    max_turns: int | None = Field(default=20, ge=0)
    max_tokens: int | None = Field(default=None, ge=0)
    pruner: str = "relevance"
    compaction: CompactionConfig | None = None
    """The session's ``SessionConfig.compaction`` (the worker's default when None)."""


class ContextResult(BaseModel):
    """The chosen turns' ``seq`` values, ascending, and how long pruning took."""

    seqs: list[int]
    generation: int
    turn_count: int
    prune_seconds: float = 0.0
    summaries: list[SummaryRef] = Field(default_factory=list)
    """Stored summaries that come first in the context (compaction), oldest first."""
    summarized: int = 0
    """Summaries this call wrote."""


class TranscriptCache:
    """Per-session transcripts held by the worker, extended with the turns added since."""

    def __init__(self, max_sessions: int = 64) -> None:
        self.max_sessions = max_sessions
        self._entries: OrderedDict[tuple[str, int], list[SessionTurn]] = OrderedDict()
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}

    async def get(
        self, store: SessionStore, session_id: str, generation: int, turn_count: int
    ) -> list[SessionTurn]:
        key = (session_id, generation)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            turns = self._entries.pop(key, [])
            if len(turns) < turn_count:
                turns = turns + await read_transcript(
                    store,
                    session_id,
                    generation=generation,
                    turn_count=turn_count,
                    offset=len(turns),
                )
            self._entries[key] = turns
            while len(self._entries) > self.max_sessions:
                old, _ = self._entries.popitem(last=False)
                self._locks.pop(old, None)
            return turns[:turn_count]


class ContextActivities:
    """Pruning with a worker-local transcript cache and relevance index cache."""

    def __init__(
        self,
        store: SessionStore,
        *,
        cache_sessions: int = 64,
        on_prune: Callable[[float], None] | None = None,
        agents: Sequence[Agent] = (),
        compaction: CompactionConfig | None = None,
        embedder: Embedder | Literal["auto"] | None = "auto",
        semantic_weight: float = 0.05,
    ) -> None:
        """Args beyond the store: ``embedder`` is the relevance pruner's semantic model (``"auto"``:
        the packaged one when the ``[semantic]`` extra is installed, else lexical only; ``None``:
        always lexical) and ``semantic_weight`` its share of the relevance."""
        self.store = store
        self._embedder_setting = embedder
        self.semantic_weight = semantic_weight
        self.compactor = Compactor(store, {a.name: a for a in agents})
        self.compaction = compaction
        """Compaction for sessions whose request carries none (None: only those that ask)."""
        self.transcripts = TranscriptCache(cache_sessions)
        self.index_cache = RelevanceIndexCache(max_sessions=cache_sessions)
        self.on_prune = on_prune

    @property
    def embedder(self) -> Embedder | None:
        """The semantic embedder in use: with "auto", the packaged model once it has loaded (in
        the background, from construction on; until then ``None``, so no call waits for it)."""
        if self._embedder_setting == "auto":
            from durable_sessions.core.semantic import (
                default_embedder_nowait,
                preload_default_embedder,
            )

            # Loaded on the first relevance prune (not at worker start: ~400 MB of RSS for
            # workers that never prune), in the background; lexical until it is there.
            preload_default_embedder()
            return default_embedder_nowait()
        return self._embedder_setting

    def pruner(self, name: str) -> ContextPruner:
        if name == "relevance":
            return RelevanceContextPruner(
                index_cache=self.index_cache,
                embedder=self.embedder,
                semantic_weight=self.semantic_weight,
            )
        if name == "sliding_window":
            return SlidingWindowPruner()
        if name == "token_budget":
            return TokenBudgetPruner()
        raise ValueError(f"unknown pruner {name!r}; expected one of {', '.join(PRUNERS)}")

    @activity.defn(name="compute_context")
    async def compute_context(self, request: ContextRequest) -> ContextResult:
        async with heartbeating():  # only when the caller set a heartbeat timeout
            return await self._compute_context(request)

    async def _compute_context(self, request: ContextRequest) -> ContextResult:
        history = await self.transcripts.get(
            self.store, request.session_id, request.generation, request.turn_count
        )
        if request.pruner not in PRUNERS:
            self.pruner(request.pruner)  # raises the unknown-pruner error
        max_turns, max_tokens = request.max_turns, request.max_tokens
        plan: CompactionPlan | None = None
        compaction = request.compaction or self.compaction
        if compaction is not None:  # summaries first: they take their share of the budgets
            plan = await self.compactor.plan(
                request.session_id, request.generation, history, compaction, max_turns, max_tokens
            )
            max_turns, max_tokens = plan.max_turns, plan.max_tokens
        started = time.perf_counter()
        chosen = await asyncio.to_thread(self._prune, request, history, max_turns, max_tokens)
        elapsed = time.perf_counter() - started
        if self.on_prune is not None:
            self.on_prune(elapsed)
        return ContextResult(
            seqs=sorted(t.seq for t in chosen if t.seq is not None),
            generation=request.generation,
            turn_count=request.turn_count,
            prune_seconds=elapsed,
            summaries=plan.refs() if plan else [],
            summarized=plan.written if plan else 0,
        )

    def _prune(
        self,
        request: ContextRequest,
        history: list[SessionTurn],
        max_turns: int | None,
        max_tokens: int | None,
    ) -> list[SessionTurn]:
        """In a worker thread: the pruner (loading the embedding model once) and the prune."""
        pruner = self.pruner(request.pruner)
        if isinstance(pruner, RelevanceContextPruner):
            key = f"{request.session_id}:{request.generation}"
            return pruner.prune_sync(history, request.query, max_turns, max_tokens, cache_key=key)
        return pruner.prune_sync(history, request.query, max_turns, max_tokens)

    def all(self) -> list[Callable[..., Any]]:
        return [self.compute_context]

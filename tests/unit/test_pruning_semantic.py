"""Unit tests for the relevance pruner's newer signals: stemming, dates in queries, neighbours on
both sides, embeddings kept per turn, and the offline static embedding model (``[semantic]``)."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from durable_sessions.core import semantic
from durable_sessions.core.pruning import (
    RelevanceContextPruner,
    RelevanceIndexCache,
    index_terms,
    load_default_semantic_scorer,
    query_date_ranges,
)
from durable_sessions.models import Role, SessionTurn

LOCOMO_SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "locomo-dev" / "26.json"


def t(role: Role, content: str, when: datetime | None = None) -> SessionTurn:
    extra: dict[str, Any] = {} if when is None else {"timestamp": when}
    return SessionTurn(role=role, content=content, **extra)


def filler(n: int, start: datetime | None = None) -> list[SessionTurn]:
    out = []
    for i in range(n):
        when = None if start is None else start + timedelta(days=i // 10)
        out.append(t("user" if i % 2 == 0 else "assistant", f"filler chat number {i}", when))
    return out


class KeywordEmbedder:
    """A stand-in embedder: one dimension per concept, recognised by keywords; counts calls."""

    name = "keywords"
    concepts = (("peanut", "allerg", "food"), ("dog", "puppy", "pet"), ("filler", "chat"))

    def __init__(self) -> None:
        self.texts_embedded = 0
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts_embedded += len(texts)
        rows = np.zeros((len(texts), len(self.concepts) + 1), dtype=np.float32)
        for i, text in enumerate(texts):
            lowered = text.lower()
            for d, words in enumerate(self.concepts):
                rows[i, d] = sum(w in lowered for w in words)
            rows[i, -1] = 0.1
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


# --------------------------------------------------------------------------------------------
# Terms and dates
# --------------------------------------------------------------------------------------------


def test_index_terms_stem_english_words() -> None:
    assert index_terms("She painted; painting paintings") == ["paint"] * 3
    assert index_terms("camping trips, camped") == ["camp", "trip", "camp"]
    assert index_terms("我住在東京") == ["我", "住", "在", "東", "京"]
    assert index_terms("What is it?") == []


def test_stemming_matches_a_different_inflection() -> None:
    history = [*filler(40), t("user", "We went camping by the lake last weekend."), *filler(40)]
    kept = RelevanceContextPruner(neighbours=False).prune_sync(history, "Where do they camp?", 1)
    assert kept == [history[40]]


def days(text: str) -> list[tuple[date, date]]:
    return [(date.fromordinal(a), date.fromordinal(b)) for a, b in query_date_ranges(text)]


def test_query_date_ranges() -> None:
    assert days("What did she do on 3 June, 2023?") == [(date(2023, 6, 3), date(2023, 6, 3))]
    assert days("on May 23rd, 2023") == [(date(2023, 5, 23), date(2023, 5, 23))]
    assert days("since 2023-02-01") == [(date(2023, 2, 1), date(2023, 2, 1))]
    assert days("in December 2023?") == [(date(2023, 12, 1), date(2023, 12, 31))]
    assert days("Sept 2022 and Feb 2024") == [
        (date(2022, 9, 1), date(2022, 9, 30)),
        (date(2024, 2, 1), date(2024, 2, 29)),
    ]
    assert days("May I ask what we did last week?") == []
    # An impossible day falls back to its month.
    assert days("on 31 February, 2023") == [(date(2023, 2, 1), date(2023, 2, 28))]


def test_a_named_month_prefers_turns_said_then() -> None:
    start = datetime(2023, 1, 1, tzinfo=UTC)
    history = filler(200, start)  # 10 turns a day: days 0..19
    history[30] = t("user", "I adopted a puppy from the shelter.", start + timedelta(days=3))
    history[150] = t("user", "I adopted a puppy from the shelter.", start + timedelta(days=15))
    pruner = RelevanceContextPruner(neighbours=False, recency_weight=0.0)
    # Equal words: newer first without a date, the turn said in the named period with one.
    assert pruner.prune_sync(history, "adopted puppy", 1) == [history[150]]
    assert pruner.prune_sync(history, "adopted puppy on 4 January, 2023", 1) == [history[30]]
    assert pruner.prune_sync(history, "adopted puppy in January 2023", 1) == [history[150]]
    no_dates = RelevanceContextPruner(neighbours=False, recency_weight=0.0, date_weight=0.0)
    assert no_dates.prune_sync(history, "adopted puppy on 4 January, 2023", 1) == [history[150]]


# --------------------------------------------------------------------------------------------
# Embeddings kept per turn
# --------------------------------------------------------------------------------------------


def test_embedder_finds_a_paraphrase_and_embeds_each_turn_once() -> None:
    history = filler(100)
    history[11] = t("user", "I can't eat peanuts, they make me very ill.")
    query = "Any allergies I told you about?"
    assert history[11] not in RelevanceContextPruner().prune_sync(history, query, 5)

    embedder = KeywordEmbedder()
    cache = RelevanceIndexCache()
    pruner = RelevanceContextPruner(index_cache=cache, embedder=embedder, semantic_weight=0.5)
    kept = pruner.prune_sync(history, query, 5, cache_key="s")
    assert history[11] in kept
    assert (embedder.texts_embedded, cache.embedded_turns) == (101, 100)  # turns + the query
    pruner.prune_sync(history, "something else entirely", 5, cache_key="s")
    assert (embedder.texts_embedded, cache.embedded_turns) == (102, 100), "only the query"
    grown = [*history, *filler(6)]
    assert history[11] in pruner.prune_sync(grown, query, 5, cache_key="s")
    assert (embedder.texts_embedded, cache.embedded_turns) == (109, 106), "only the new turns"
    # Another transcript under the key (a rewind) is embedded again, never mixed up.
    pruner.prune_sync(grown[:50], query, 5, cache_key="s")
    assert cache.embedded_turns == 156


def test_cached_and_uncached_embeddings_choose_the_same_turns() -> None:
    history = filler(120)
    history[7] = t("user", "My dog chewed the sofa again.")
    history[60] = t("assistant", "Peanut butter is a food many people avoid.")
    cache = RelevanceIndexCache()
    cached = RelevanceContextPruner(index_cache=cache, embedder=KeywordEmbedder())
    plain = RelevanceContextPruner(embedder=KeywordEmbedder())
    for n in (40, 41, 80, 120):
        for query in ("my pet", "food allergy", "filler"):
            assert cached.prune_sync(history[:n], query, 6, cache_key="k") == plain.prune_sync(
                history[:n], query, 6
            )


def test_embedder_with_wrong_shape_is_an_error() -> None:
    class Broken:
        name = "broken"

        def embed(self, texts: Sequence[str]) -> np.ndarray:
            return np.ones((1, 3), dtype=np.float32)

    with pytest.raises(ValueError, match="embedder returned 1 vectors for 10 texts"):
        RelevanceContextPruner(embedder=Broken()).prune_sync(filler(10), "hello", 3)


def test_embedder_and_scorer_are_exclusive() -> None:
    with pytest.raises(ValueError, match="not both"):
        RelevanceContextPruner(embedder=KeywordEmbedder(), semantic_scorer=lambda q, ts: [])
    with pytest.raises(ValueError, match="date_weight"):
        RelevanceContextPruner(date_weight=-1)


# --------------------------------------------------------------------------------------------
# The packaged static model
# --------------------------------------------------------------------------------------------


@pytest.fixture
def fresh_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the process-wide default embedder for one test."""
    monkeypatch.setattr(semantic, "_default", None)
    monkeypatch.setattr(semantic, "_default_loaded", False)


@pytest.mark.usefixtures("fresh_default")
def test_no_model_package_means_lexical(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(semantic, "default_model_path", lambda: None)
    assert semantic.load_default_embedder() is None
    assert load_default_semantic_scorer() is None


@pytest.mark.usefixtures("fresh_default")
def test_a_model_that_fails_to_load_means_lexical(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("model2vec")
    (tmp_path / "model.safetensors").write_bytes(b"not a model")
    monkeypatch.setattr(semantic, "default_model_path", lambda: tmp_path)
    assert semantic.load_default_embedder() is None


@pytest.mark.usefixtures("fresh_default")
def test_packaged_model_loads_offline_and_embeds(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("model2vec")
    if semantic.default_model_path() is None:
        pytest.skip("the [semantic] extra's model package is not installed")

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model must load from site-packages, not the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    embedder = semantic.load_default_embedder()
    assert embedder is not None
    assert semantic.load_default_embedder() is embedder, "loaded once per process"
    assert isinstance(embedder, semantic.Embedder)
    vectors = embedder.embed(["I adopted a puppy", "We got a new dog", "Quarterly tax filing"])
    assert vectors.shape == (3, embedder.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    assert embedder.embed([]).shape == (0, embedder.dim)
    scorer = load_default_semantic_scorer()
    assert scorer is not None
    similarities = scorer("a new puppy", ["We got a new dog", "Quarterly tax filing"])
    assert similarities[0] > similarities[1]
    assert scorer("x", []) == []


@pytest.mark.skipif(not LOCOMO_SAMPLE.is_file(), reason="LoCoMo development data not present")
def test_locomo_sample_recall_beats_plain_recency() -> None:
    """One LoCoMo conversation (419 turns, ~200 questions): the relevance pruner keeps most
    evidence turns in 20; the last 20 turns keep almost none."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from bench.locomo import load_conversation

    conv = load_conversation(LOCOMO_SAMPLE)
    cache = RelevanceIndexCache()
    pruner = RelevanceContextPruner(index_cache=cache)
    recalls = []
    for q in conv.questions:
        kept = {turn.seq for turn in pruner.prune_sync(conv.turns, q.text, 20, cache_key="c")}
        recalls.append(sum(e in kept for e in q.evidence) / len(q.evidence))
    assert cache.tokenized_turns == len(conv.turns)
    assert float(np.mean(recalls)) >= 0.72


# --------------------------------------------------------------------------------------------
# The worker's compute_context activity
# --------------------------------------------------------------------------------------------


async def test_compute_context_embeds_each_turn_once_per_session_generation() -> None:
    from durable_sessions.activities.context import ContextActivities, ContextRequest
    from durable_sessions.models import SessionState
    from durable_sessions.stores.base import PersistBatch
    from durable_sessions.stores.memory import InMemorySessionStore

    t0 = datetime(2025, 1, 1, tzinfo=UTC)

    def state(n: int) -> SessionState:
        return SessionState(session_id="s", user_id="u", created_at=t0, updated_at=t0, turn_count=n)

    def turns(lo: int, hi: int) -> list[SessionTurn]:
        out = []
        for seq in range(lo, hi):
            text = "My dog ate the peanut butter." if seq == 7 else f"filler chat number {seq}"
            out.append(SessionTurn(role="user" if seq % 2 else "assistant", content=text, seq=seq))
        return out

    store = InMemorySessionStore()
    await store.persist(PersistBatch(state=state(60), turns=turns(0, 60)))
    embedder = KeywordEmbedder()
    activities = ContextActivities(store, embedder=embedder, semantic_weight=0.5)
    assert activities.embedder is embedder

    async def context(n: int, query: str) -> list[int]:
        request = ContextRequest(
            session_id="s", generation=0, turn_count=n, query=query, max_turns=4
        )
        return (await activities.compute_context(request)).seqs

    assert 7 in await context(60, "my pet")
    assert 7 in await context(60, "any puppy news?")
    assert activities.index_cache.embedded_turns == 60, "turns embedded once, queries aside"
    await store.persist(PersistBatch(state=state(70), turns=turns(60, 70)))
    assert 7 in await context(70, "the pet")
    assert activities.index_cache.embedded_turns == 70, "only the appended turns"
    assert embedder.texts_embedded == 70 + 3

    lexical = ContextActivities(store, embedder=None)
    assert lexical.embedder is None
    request = ContextRequest(
        session_id="s", generation=0, turn_count=70, query="the pet", max_turns=4
    )
    assert 7 not in (await lexical.compute_context(request)).seqs

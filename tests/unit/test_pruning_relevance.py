"""Unit tests for what is specific to the relevance pruner: planted facts, neighbours, role
weights, the BM25 reference check, the index cache and the semantic scorer hook."""

from __future__ import annotations

import random

import numpy as np
import pytest

from durable_sessions.core.pruning import (
    RelevanceContextPruner,
    RelevanceIndexCache,
    SlidingWindowPruner,
    _TurnIndex,
    index_terms,
)
from durable_sessions.models import SessionTurn
from tests.unit.test_pruning import chat, check_invariants, positions, t

# --------------------------------------------------------------------------------------------
# Relevance specifics
# --------------------------------------------------------------------------------------------

FILLER = [
    "The weather was lovely on the hike yesterday.",
    "I tried a new sourdough recipe and it was soggy.",
    "The locker room at the gym was crowded this morning.",
    "We spent the afternoon on a code review that went nowhere.",
    "Our cat knocked the plant over again.",
    "The concert last night was fantastic.",
]


def long_chat(n: int, seed: int = 7) -> list[SessionTurn]:
    rng = random.Random(seed)
    out = [t("system", "You are a concise assistant.")]
    while len(out) < n:
        out.append(t("user", rng.choice(FILLER)))
        out.append(t("assistant", f"That sounds {rng.choice(['fun', 'odd', 'nice'])}!"))
    return out[:n]


def test_planted_fact_far_back_is_selected() -> None:
    history = long_chat(400)
    history[13] = t("user", "My locker code is 4417.")
    history[14] = t("assistant", "Got it, I'll remember that.")
    query = "What was the code for my locker again?"
    kept = RelevanceContextPruner().prune_sync(history, query, 10)
    assert history[13] in kept
    assert history[14] in kept, "the answer right after the chosen user turn is a neighbour"
    assert history[12] in kept, "so is the turn right before it"
    assert history[0] in kept
    # The rest: partial matches ("locker room", "code review"), the most recent first.
    assert all(i >= 360 for i in positions(history, kept)[4:])
    # Without confounders: the neighbours' priority decays 0.6x per step away from the hit
    # (0.6, 0.36, 0.22), so turns 11-15 outrank the newest turn's recency (0.3) and recency
    # fills the rest of the budget.
    plain = [
        t("user", "nothing to see") if i not in (0, 13, 14) else x for i, x in enumerate(history)
    ]
    kept = RelevanceContextPruner().prune_sync(plain, query, 10)
    assert positions(plain, kept) == [0, 11, 12, 13, 14, 15, 396, 397, 398, 399]
    recent = SlidingWindowPruner().prune_sync(history, query, 10)
    assert history[13] not in recent
    without = RelevanceContextPruner(neighbours=False).prune_sync(history, query, 10)
    assert history[13] in without
    assert history[12] not in without
    assert history[14] not in without


def test_question_before_a_chosen_answer_is_a_neighbour() -> None:
    history = long_chat(200)
    history[41] = t("user", "Remind me what we decided?")
    history[42] = t("assistant", "We agreed the project codename is Bluefin.")
    kept = RelevanceContextPruner().prune_sync(history, "project codename", 6)
    assert history[42] in kept
    assert history[41] in kept


def test_neighbour_is_only_added_when_it_fits() -> None:
    history = long_chat(100)
    history[21] = t("user", "My locker code is 4417.", tokens=5)
    history[22] = t("assistant", "A long acknowledgement " * 20, tokens=500)
    kept = RelevanceContextPruner().prune_sync(history, "locker code", None, 60)
    assert history[21] in kept
    assert history[22] not in kept
    check_invariants("relevance", history, kept, None, 60)


def test_role_weights_break_ties_between_equal_matches() -> None:
    history = [
        t("user", "The gate code is 1234."),
        t("assistant", "The gate code is 1234."),
        *chat(10),
    ]
    kept = RelevanceContextPruner(neighbours=False, recency_weight=0.0).prune_sync(
        history, "gate code", 1
    )
    assert kept == [history[0]]
    kept = RelevanceContextPruner(
        neighbours=False, recency_weight=0.0, role_weights={"assistant": 2.0}
    ).prune_sync(history, "gate code", 1)
    assert kept == [history[1]]


def test_bm25_matches_bm25s_reference() -> None:
    import bm25s

    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(40)]
    docs = [" ".join(rng.choices(vocab, k=rng.randint(1, 12))) for _ in range(120)]
    history = [t("user", doc) for doc in docs]
    index = _TurnIndex()
    index.sync(history)
    reference = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    reference.index([index_terms(doc) for doc in docs], show_progress=False)
    for query in (["w1"], ["w3", "w7", "w11"], ["w0", "w39", "nothing"]):
        ours = index.bm25(query, k1=1.5, b=0.75, method="lucene")
        known = [q for q in query if q in reference.vocab_dict]
        theirs = reference.get_scores(known)
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_cache_gives_identical_results_after_appends() -> None:
    cache = RelevanceIndexCache()
    cached = RelevanceContextPruner(index_cache=cache)
    plain = RelevanceContextPruner()
    history = long_chat(300)
    history[31] = t("user", "The project codename is Bluefin.")
    query = "Which codename did we pick for the project?"
    budget_pairs: list[tuple[int | None, int | None]] = [(12, None), (None, 80), (3, 30)]
    for budgets in budget_pairs[:2]:
        assert cached.prune_sync(history, query, *budgets, cache_key="s1") == plain.prune_sync(
            history, query, *budgets
        )
    assert cache.tokenized_turns == 300
    assert cache.indexed_turns("s1") == 300

    grown = [*history, t("user", "The project codename changed to Marigold."), *chat(9)]
    for budgets in budget_pairs:
        got = cached.prune_sync(grown, query, *budgets, cache_key="s1")
        assert got == plain.prune_sync(grown, query, *budgets)
    assert cache.tokenized_turns == 310, "only the 10 appended turns were tokenized"
    assert history[31] in cached.prune_sync(grown, query, 12, cache_key="s1")
    assert grown[300] in cached.prune_sync(grown, query, 12, cache_key="s1")


def test_cache_rebuilds_when_the_prefix_changes() -> None:
    cache = RelevanceIndexCache()
    cached = RelevanceContextPruner(index_cache=cache)
    plain = RelevanceContextPruner()
    history = long_chat(120)
    history[5] = t("user", "My locker code is 4417.")
    query = "locker code"
    assert cached.prune_sync(history, query, 5, cache_key="s") == plain.prune_sync(
        history, query, 5
    )
    rewound = history[:60]  # a restore to an earlier checkpoint
    assert cached.prune_sync(rewound, query, 5, cache_key="s") == plain.prune_sync(
        rewound, query, 5
    )
    other = long_chat(120, seed=99)  # another transcript under the same key
    assert cached.prune_sync(other, query, 5, cache_key="s") == plain.prune_sync(other, query, 5)
    edited = [*history[:60], t("assistant", "locker code replaced"), *history[61:]]
    assert cached.prune_sync(edited, query, 5, cache_key="s") == plain.prune_sync(edited, query, 5)
    assert cache.indexed_turns("s") == 120


def test_cache_keys_are_independent_and_bounded() -> None:
    cache = RelevanceIndexCache(max_sessions=2)
    pruner = RelevanceContextPruner(index_cache=cache)
    a, b, c = long_chat(50, 1), long_chat(60, 2), long_chat(70, 3)
    pruner.prune_sync(a, "code review", 5, cache_key="a")
    pruner.prune_sync(b, "code review", 5, cache_key="b")
    assert "a" in cache
    assert "b" in cache
    assert len(cache) == 2
    pruner.prune_sync(a, "code review", 5, cache_key="a")  # a is now most recently used
    pruner.prune_sync(c, "code review", 5, cache_key="c")
    assert "b" not in cache
    assert "a" in cache
    assert "c" in cache
    assert cache.indexed_turns("b") == 0
    cache.invalidate("a")
    assert "a" not in cache
    cache.clear()
    assert len(cache) == 0
    assert cache.tokenized_turns == 50 + 60 + 70
    with pytest.raises(ValueError, match="max_sessions"):
        RelevanceIndexCache(max_sessions=0)


def test_cache_key_without_a_cache_is_ignored() -> None:
    history = long_chat(50)
    assert RelevanceContextPruner().prune_sync(
        history, "cat", 5, cache_key="s"
    ) == RelevanceContextPruner().prune_sync(history, "cat", 5)


async def test_async_prune_accepts_cache_key() -> None:
    cache = RelevanceIndexCache()
    pruner = RelevanceContextPruner(index_cache=cache)
    history = long_chat(80)
    kept = await pruner.prune(history, "sourdough", 4, cache_key="s")
    assert kept == pruner.prune_sync(history, "sourdough", 4)
    assert cache.indexed_turns("s") == 80


def test_invalid_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="semantic_weight"):
        RelevanceContextPruner(semantic_weight=1.5)
    with pytest.raises(ValueError, match="recency_weight"):
        RelevanceContextPruner(recency_weight=-1)
    with pytest.raises(ValueError, match="recency_half_life"):
        RelevanceContextPruner(recency_half_life=0)
    with pytest.raises(ValueError, match="neighbour_weight"):
        RelevanceContextPruner(neighbour_weight=2)
    with pytest.raises(ValueError, match="bm25_method"):
        RelevanceContextPruner(bm25_method="bm25+")


# --------------------------------------------------------------------------------------------
# Semantic hook
# --------------------------------------------------------------------------------------------


def test_semantic_scorer_finds_a_turn_without_shared_words() -> None:
    history = long_chat(100)
    history[11] = t("user", "I can't eat peanuts, they make me very ill.")
    calls: list[tuple[str, int]] = []

    def scorer(query: str, texts: list[str]) -> list[float]:
        calls.append((query, len(texts)))
        return [0.9 if "peanuts" in text else 0.1 for text in texts]

    query = "Any food allergies I told you about?"
    lexical_only = RelevanceContextPruner().prune_sync(history, query, 5)
    assert history[11] not in lexical_only
    kept = RelevanceContextPruner(semantic_scorer=scorer, semantic_weight=0.5).prune_sync(
        history, query, 5
    )
    assert history[11] in kept
    assert calls == [(query, 100)]
    check_invariants("relevance", history, kept, 5, None)
    # weight 0 disables it; an empty query never calls it
    assert (
        RelevanceContextPruner(
            semantic_scorer=scorer, semantic_weight=0.0, semantic_boost=0.0
        ).prune_sync(history, query, 5)
        == lexical_only
    )
    RelevanceContextPruner(semantic_scorer=scorer, semantic_weight=0.5).prune_sync(history, "", 5)
    assert len(calls) == 1


def test_semantic_scorer_with_wrong_length_is_an_error() -> None:
    pruner = RelevanceContextPruner(semantic_scorer=lambda q, texts: [1.0])
    with pytest.raises(ValueError, match="semantic scorer returned 1 scores for 10 texts"):
        pruner.prune_sync(chat(10), "hello", 3)

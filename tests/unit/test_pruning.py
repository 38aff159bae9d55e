"""Unit tests for ``durable_sessions.core.pruning``: the invariants every pruner shares, then
what is specific to the relevance pruner (BM25, neighbours, cache, semantic hook)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable_sessions.core.pruning import (
    ContextPruner,
    RelevanceContextPruner,
    RelevanceIndexCache,
    SlidingWindowPruner,
    TokenBudgetPruner,
    _TurnIndex,
    group_turns,
    index_terms,
    tokenize,
    turn_tokens,
)
from durable_sessions.core.tokens import count_tokens
from durable_sessions.models import Role, SessionTurn


def t(role: Role, content: str, tokens: int | None = None, **metadata: Any) -> SessionTurn:
    return SessionTurn(role=role, content=content, tokens=tokens, metadata=metadata)


class CachedRelevance(ContextPruner):
    """The relevance pruner driven through its index cache, so every shared test also covers
    the cached path (one cache key reused across calls, as a session would)."""

    def __init__(self) -> None:
        self.cache = RelevanceIndexCache()
        self.inner = RelevanceContextPruner(index_cache=self.cache)

    def prune_sync(
        self,
        history: list[SessionTurn],
        query: str = "",
        max_turns: int | None = None,
        max_tokens: int | None = None,
    ) -> list[SessionTurn]:
        return self.inner.prune_sync(history, query, max_turns, max_tokens, cache_key="session")


PRUNER_FACTORIES: dict[str, Callable[[], ContextPruner]] = {
    "sliding": SlidingWindowPruner,
    "token_budget": TokenBudgetPruner,
    "relevance": RelevanceContextPruner,
    "relevance_cached": CachedRelevance,
}
GREEDY = {"token_budget", "relevance", "relevance_cached"}


@pytest.fixture(params=sorted(PRUNER_FACTORIES))
def named_pruner(request: pytest.FixtureRequest) -> tuple[str, ContextPruner]:
    name: str = request.param
    return name, PRUNER_FACTORIES[name]()


def positions(history: Sequence[SessionTurn], kept: Sequence[SessionTurn]) -> list[int]:
    where = {id(turn): i for i, turn in enumerate(history)}
    return [where[id(turn)] for turn in kept]


def check_invariants(
    name: str,
    history: list[SessionTurn],
    kept: list[SessionTurn],
    max_turns: int | None,
    max_tokens: int | None,
) -> None:
    """Every shared invariant, including that the budget was filled greedily."""
    idx = positions(history, kept)  # KeyError if a kept turn is not an input object
    assert idx == sorted(set(idx)), "chronological subset without repeats"
    if max_turns is not None:
        assert len(kept) <= max_turns
    spent = sum(turn_tokens(turn) for turn in kept)
    if max_tokens is not None:
        assert spent <= max_tokens
    if max_turns is None and max_tokens is None:
        assert kept == history
        return

    groups = group_turns(history)
    chosen = set(idx)
    selected = []
    for rng in groups:
        inside = [i in chosen for i in rng]
        assert all(inside) or not any(inside), f"group {list(rng)} split"
        selected.append(all(inside))

    def fits(g: int, turns_left: float, tokens_left: float) -> bool:
        cost = sum(turn_tokens(history[i]) for i in groups[g])
        return len(groups[g]) <= turns_left and cost <= tokens_left

    # System groups: the newest-first greedy choice among them, whatever else is kept.
    turns_left = float("inf") if max_turns is None else max_turns
    tokens_left = float("inf") if max_tokens is None else max_tokens
    pinned = [g for g, rng in enumerate(groups) if history[rng[0]].role == "system"]
    for g in reversed(pinned):
        expect = fits(g, turns_left, tokens_left)
        assert selected[g] == expect, "system turns are kept, newest first, while they fit"
        if expect:
            turns_left -= len(groups[g])
            tokens_left -= sum(turn_tokens(history[i]) for i in groups[g])

    # Greedy fill: nothing left out would still fit in what remains of the budgets.
    turns_left = float("inf") if max_turns is None else max_turns - len(kept)
    tokens_left = float("inf") if max_tokens is None else max_tokens - spent
    free = [g for g in range(len(groups)) if g not in pinned]
    if name in GREEDY:
        for g in free:
            if not selected[g]:
                assert not fits(g, turns_left, tokens_left), f"group {g} fits but was left out"
    else:  # the sliding window is a contiguous run of the newest groups
        taken = [selected[g] for g in free]
        n_taken = sum(taken)
        assert taken == [False] * (len(free) - n_taken) + [True] * n_taken
        if n_taken < len(free):
            assert not fits(free[len(free) - n_taken - 1], turns_left, tokens_left)


def chat(n: int, prefix: str = "turn") -> list[SessionTurn]:
    return [t("user" if i % 2 == 0 else "assistant", f"{prefix} number {i}") for i in range(n)]


# --------------------------------------------------------------------------------------------
# Grouping and costs
# --------------------------------------------------------------------------------------------


def test_group_turns_rule() -> None:
    history = [
        t("tool", "orphan result", tool_call_id="old"),  # 0: leading result, own group
        t("system", "be nice"),  # 1
        t("user", "weather?"),  # 2
        t("assistant", "calling", tool_calls=[{"id": "a"}, {"id": "b"}]),  # 3
        t("tool", "sunny", tool_call_id="a"),  # 4: joins 3
        t("tool", "warm", tool_call_id="b"),  # 5: consecutive results join too
        t("user", "result via user role", tool_call_id="c"),  # 6: names a call: joins 3
        t("assistant", "it is sunny"),  # 7
        t("system", "late system", tool_call_id="x"),  # 8: system never joins
    ]
    assert [list(r) for r in group_turns(history)] == [[0], [1], [2], [3, 4, 5, 6], [7], [8]]
    assert group_turns([]) == []


def test_turn_tokens_prefers_the_stored_count() -> None:
    assert turn_tokens(t("user", "hello there", tokens=42)) == 42
    assert turn_tokens(t("user", "hello there", tokens=0)) == 0
    assert turn_tokens(t("user", "hello there")) == count_tokens("hello there")


# --------------------------------------------------------------------------------------------
# Shared invariants
# --------------------------------------------------------------------------------------------


async def test_empty_history(named_pruner: tuple[str, ContextPruner]) -> None:
    _, pruner = named_pruner
    assert await pruner.prune([], "anything", 10, 100) == []
    assert await pruner.prune([]) == []
    assert pruner.prune_sync([], "", 0, 0) == []


async def test_no_budget_keeps_everything(named_pruner: tuple[str, ContextPruner]) -> None:
    _, pruner = named_pruner
    history = chat(30)
    kept = await pruner.prune(history, "number 3")
    assert kept == history
    assert all(a is b for a, b in zip(kept, history, strict=True))


def test_negative_budgets_are_rejected(named_pruner: tuple[str, ContextPruner]) -> None:
    _, pruner = named_pruner
    with pytest.raises(ValueError, match="max_turns"):
        pruner.prune_sync(chat(3), "", -1, None)
    with pytest.raises(ValueError, match="max_tokens"):
        pruner.prune_sync(chat(3), "", None, -5)


def test_zero_budgets(named_pruner: tuple[str, ContextPruner]) -> None:
    _, pruner = named_pruner
    history = [t("system", "rules", tokens=3), *chat(5)]
    assert pruner.prune_sync(history, "number", 0, None) == []
    assert pruner.prune_sync(history, "number", None, 0) == []


def test_order_and_subset(named_pruner: tuple[str, ContextPruner]) -> None:
    name, pruner = named_pruner
    history = [t("system", "rules"), *chat(40)]
    kept = pruner.prune_sync(history, "number 7", 12, None)
    assert len(kept) == 12
    idx = positions(history, kept)
    assert idx == sorted(idx)
    check_invariants(name, history, kept, 12, None)


def test_exact_turn_budget(named_pruner: tuple[str, ContextPruner]) -> None:
    name, pruner = named_pruner
    history = chat(25)
    for budget in (1, 2, 7, 24, 25, 26, 100):
        kept = pruner.prune_sync(history, "", budget, None)
        assert len(kept) == min(budget, len(history))
        check_invariants(name, history, kept, budget, None)


def test_exact_token_budget_with_stored_counts(named_pruner: tuple[str, ContextPruner]) -> None:
    name, pruner = named_pruner
    costs = [7, 3, 9, 1, 4, 6, 2, 8, 5, 5]
    history = [t("user", f"message {i}", tokens=c) for i, c in enumerate(costs)]
    for budget in (0, 1, 5, 10, 13, 20, sum(costs) - 1, sum(costs)):
        kept = pruner.prune_sync(history, "", None, budget)
        assert sum(turn.tokens or 0 for turn in kept) <= budget
        check_invariants(name, history, kept, None, budget)
    # The newest turns alone: 5 + 5 = 10 fits exactly.
    kept = pruner.prune_sync(history, "", None, 10)
    assert positions(history, kept) == [8, 9]


def test_token_budget_counts_content_when_tokens_unset(
    named_pruner: tuple[str, ContextPruner],
) -> None:
    name, pruner = named_pruner
    history = [t("user", f"a somewhat longer message body number {i}") for i in range(20)]
    budget = 3 * count_tokens(history[0].content) + 1
    kept = pruner.prune_sync(history, "", None, budget)
    assert len(kept) == 3
    check_invariants(name, history, kept, None, budget)


def test_both_budgets_apply(named_pruner: tuple[str, ContextPruner]) -> None:
    name, pruner = named_pruner
    history = [t("user", f"m{i}", tokens=2) for i in range(30)]
    assert len(pruner.prune_sync(history, "", 5, 100)) == 5
    assert len(pruner.prune_sync(history, "", 50, 9)) == 4
    check_invariants(name, history, pruner.prune_sync(history, "", 5, 9), 5, 9)


def test_system_turns_always_kept(named_pruner: tuple[str, ContextPruner]) -> None:
    name, pruner = named_pruner
    history = [
        t("system", "You are helpful."),
        *chat(20, "early"),
        t("system", "The user switched to French."),
        *chat(20, "late"),
    ]
    for max_turns, max_tokens in ((5, None), (2, None), (None, 40), (3, 30)):
        kept = pruner.prune_sync(history, "early number 3", max_turns, max_tokens)
        assert history[0] in kept
        assert history[21] in kept
        check_invariants(name, history, kept, max_turns, max_tokens)


def test_system_turns_over_budget_keep_newest_that_fit(
    named_pruner: tuple[str, ContextPruner],
) -> None:
    name, pruner = named_pruner
    history = [
        t("system", "first", tokens=5),
        t("user", "hi", tokens=1),
        t("system", "second", tokens=50),
        t("assistant", "hello", tokens=1),
        t("system", "third", tokens=5),
    ]
    kept = pruner.prune_sync(history, "hi", 2, None)
    assert positions(history, kept) == [2, 4]
    # Newest first, skipping the one that does not fit: third (5), not second (50), first (5).
    kept = pruner.prune_sync(history, "hi", None, 10)
    assert positions(history, kept) == [0, 4]
    check_invariants(name, history, kept, None, 10)


def test_tool_call_never_split_from_its_results(named_pruner: tuple[str, ContextPruner]) -> None:
    name, pruner = named_pruner
    history = [
        t("system", "rules", tokens=2),
        t("user", "what is the weather in Oslo", tokens=5),
        t("assistant", "checking", tokens=3, tool_calls=[{"id": "c1"}, {"id": "c2"}]),
        t("tool", "Oslo: 4C and rain", tokens=4, tool_call_id="c1"),
        t("tool", "Oslo forecast: rain", tokens=4, tool_call_id="c2"),
        t("assistant", "It is 4C and raining in Oslo.", tokens=6),
    ]
    # The call group (2, 3, 4) costs 3 turns / 11 tokens: budgets that would fit only part.
    for max_turns, max_tokens in ((3, None), (4, None), (5, None), (None, 15), (None, 19)):
        kept = pruner.prune_sync(history, "Oslo weather rain", max_turns, max_tokens)
        idx = set(positions(history, kept))
        assert {2, 3, 4} <= idx or not ({2, 3, 4} & idx)
        check_invariants(name, history, kept, max_turns, max_tokens)
    kept = pruner.prune_sync(history, "Oslo weather rain", 5, None)
    assert set(positions(history, kept)) >= {2, 3, 4}


BUDGET_PAIRS: list[tuple[int | None, int | None]] = [(10, None), (None, 30), (7, 25)]


def test_query_without_overlap_falls_back_to_recency() -> None:
    history = [t("system", "rules"), *chat(60)]
    recency = TokenBudgetPruner()
    for pruner in (RelevanceContextPruner(), CachedRelevance()):
        for query in ("", "   ", "zebra quantum", "!!!", "the and of"):
            for budgets in BUDGET_PAIRS:
                assert pruner.prune_sync(history, query, *budgets) == recency.prune_sync(
                    history, query, *budgets
                )


def test_recency_pruners_keep_the_newest() -> None:
    history = chat(50)
    for pruner in (SlidingWindowPruner(), TokenBudgetPruner()):
        assert positions(history, pruner.prune_sync(history, "number 3", 4)) == [46, 47, 48, 49]


def test_sliding_window_is_contiguous_and_token_budget_fills_gaps() -> None:
    history = [
        t("user", "old small", tokens=2),
        t("assistant", "old small reply", tokens=2),
        t("user", "huge paste", tokens=100),
        t("assistant", "short answer", tokens=3),
    ]
    assert positions(history, SlidingWindowPruner().prune_sync(history, "", None, 10)) == [3]
    assert positions(history, TokenBudgetPruner().prune_sync(history, "", None, 10)) == [0, 1, 3]


def test_unicode_content_and_queries(named_pruner: tuple[str, ContextPruner]) -> None:
    name, pruner = named_pruner
    history = [
        t("user", "Mein Nachbar heißt Herr MÜLLER und wohnt in Köln."),
        t("assistant", "Schön! 🎉"),
        t("user", "我住在東京\uff0c喜欢吃寿司。"),
        t("assistant", "Ça marche, très bien. Ω≈ç√"),
        *chat(30),
    ]
    for query in ("Wo wohnt Herr Müller?", "東京", "ÇA MARCHE", "🎉", "köln straße"):
        kept = pruner.prune_sync(history, query, 6, None)
        check_invariants(name, history, kept, 6, None)
    if name.startswith("relevance"):
        assert history[0] in pruner.prune_sync(history, "Wo wohnt Herr Müller?", 3)
        assert history[0] in pruner.prune_sync(history, "KÖLN", 3)
        assert history[2] in pruner.prune_sync(history, "东京 寿司", 3)
        assert history[2] in pruner.prune_sync(history, "寿司", 3)


def test_tokenize_is_unicode_aware() -> None:
    assert tokenize("Herr MÜLLER, Straße!") == ["herr", "müller", "strasse"]
    assert tokenize("\uff21\uff22\uff23 \uff44\uff45\uff46") == [
        "abc",
        "def",
    ]  # NFKC folds full-width forms
    assert tokenize("我住在東京") == ["我", "住", "在", "東", "京"]
    assert tokenize("snake_case and 4417") == ["snake", "case", "4417"]
    assert tokenize("What is it?") == []  # stop words only
    assert tokenize("🎉 ... ---") == []


# --------------------------------------------------------------------------------------------
# Property test over random histories
# --------------------------------------------------------------------------------------------

WORDS = ["alpha", "beta", "Gamma", "delta", "Ωmega", "東京", "código", "rain", "4417", "the"]


@st.composite
def histories(draw: st.DrawFn) -> list[SessionTurn]:
    n = draw(st.integers(min_value=0, max_value=40))
    out: list[SessionTurn] = []
    for i in range(n):
        roles: list[Role] = ["system", "user", "assistant", "assistant", "tool", "user"]
        role = draw(st.sampled_from(roles))
        words = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=6))
        tokens = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=12)))
        metadata: dict[str, Any] = {}
        if role == "assistant" and draw(st.booleans()):
            metadata["tool_calls"] = [{"id": f"c{i}"}]
        if role == "tool" or (role == "user" and draw(st.integers(0, 9)) == 0):
            metadata["tool_call_id"] = f"c{i}"
        out.append(
            SessionTurn(role=role, content=" ".join(words), tokens=tokens, metadata=metadata)
        )
    return out


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    history=histories(),
    query=st.lists(st.sampled_from([*WORDS, "zzz"]), max_size=3).map(" ".join),
    max_turns=st.one_of(st.none(), st.integers(min_value=0, max_value=30)),
    max_tokens=st.one_of(st.none(), st.integers(min_value=0, max_value=120)),
)
def test_invariants_hold_for_random_histories(
    history: list[SessionTurn], query: str, max_turns: int | None, max_tokens: int | None
) -> None:
    for name, factory in PRUNER_FACTORIES.items():
        kept = factory().prune_sync(history, query, max_turns, max_tokens)
        check_invariants(name, history, kept, max_turns, max_tokens)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    history=histories(),
    cut=st.integers(min_value=0, max_value=40),
    query=st.lists(st.sampled_from(WORDS), max_size=3).map(" ".join),
    max_turns=st.integers(min_value=0, max_value=12),
    max_tokens=st.one_of(st.none(), st.integers(min_value=0, max_value=60)),
)
def test_cache_matches_uncached_for_random_appends(
    history: list[SessionTurn], cut: int, query: str, max_turns: int, max_tokens: int | None
) -> None:
    cached = RelevanceContextPruner(index_cache=RelevanceIndexCache())
    plain = RelevanceContextPruner()
    for prefix in (history[:cut], history, history[: cut // 2], history):
        got = cached.prune_sync(prefix, query, max_turns, max_tokens, cache_key="k")
        assert got == plain.prune_sync(prefix, query, max_turns, max_tokens)


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

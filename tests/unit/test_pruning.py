"""Unit tests for ``durable_sessions.core.pruning``: the invariants every pruner shares (the
relevance pruner's specifics are in ``test_pruning_relevance`` and ``test_pruning_semantic``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable_sessions.core.pruning import (
    ContextPruner,
    RelevanceContextPruner,
    RelevanceIndexCache,
    SlidingWindowPruner,
    TokenBudgetPruner,
    group_turns,
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

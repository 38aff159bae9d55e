"""Benchmark the context pruners: evidence recall on synthetic conversations and on LoCoMo,
and prune speed.

Run ``python bench/bench_pruning.py``. Progress goes to stderr, a Markdown section to stdout,
and the exit status is 1 when a target is missed:

* quality: relevance recall >= 0.9 and >= 5x the sliding window's at a 20-turn budget;
* LoCoMo (when ``../shared/data/locomo-dev`` exists; see ``bench/locomo.py``): evidence
  recall@20 of the relevance pruner >= 0.72 lexical and >= 0.80 with the semantic extra;
* speed: a warm 10,000-turn prune <= 200 ms (median) and time(10k) / time(1k) <= 12; with the
  semantic embedder a warm 10,000-turn prune <= 50 ms (the cold one embeds every turn).

Conversations are generated deterministically (seeded ``random.Random``): chit-chat filler
over a varied vocabulary, with confounder sentences that share one key word with a fact
("the locker room at the gym", "a code review"), the odd tool call, and facts planted at
random turns ("My locker code is 4417"). The query asks about one or two of the facts in
other words ("What was the code for my locker again?"); the needed turns are the turns that
state those facts.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

for _path in (Path(__file__).resolve().parents[1], Path(__file__).resolve().parents[1] / "src"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from bench import locomo  # noqa: E402
from bench.synthetic_chat import (  # noqa: E402
    FACTS_PER_CONVERSATION,
    Conversation,
    filler,
    make_conversation,
)
from durable_sessions.core.pruning import (  # noqa: E402
    ContextPruner,
    RelevanceContextPruner,
    RelevanceIndexCache,
    SlidingWindowPruner,
    TokenBudgetPruner,
    turn_tokens,
)
from durable_sessions.core.semantic import Embedder, load_default_embedder  # noqa: E402
from durable_sessions.models import SessionTurn  # noqa: E402

SEED = 20240611
N_CONVERSATIONS = 200
CONVERSATION_TURNS = 300
TURN_BUDGET = 20
SPEED_SIZES = (1_000, 10_000)
SPEED_RUNS = 21
LOCOMO_KS = (10, 20, 50)
SEMANTIC_WEIGHT = 0.05  # the worker's default (ContextActivities)


# ------------------------------------------------------------------------------------------
# Quality
# ------------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def recall(
    pruner: ContextPruner,
    conversations: list[Conversation],
    max_turns: int | None,
    max_tokens: int | None,
) -> float:
    found = total = 0
    for conv in conversations:
        kept = pruner.prune_sync(conv.history, conv.query, max_turns, max_tokens)
        kept_ids = {id(t) for t in kept}
        for i in conv.needed:
            total += 1
            found += id(conv.history[i]) in kept_ids
    return found / total if total else 0.0


# ------------------------------------------------------------------------------------------
# Speed
# ------------------------------------------------------------------------------------------


def time_ms(fn: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def measure_speed(conv: Conversation, token_budget: int) -> dict[str, float]:
    """Cold (index build) and warm prune times for one long conversation, in ms."""
    history, query = conv.history, conv.query
    relevance = RelevanceContextPruner(index_cache=RelevanceIndexCache())
    key = "bench-session"
    start = time.perf_counter()
    relevance.prune_sync(history, query, TURN_BUDGET, None, cache_key=key)
    cold = (time.perf_counter() - start) * 1000
    warm = time_ms(
        partial(relevance.prune_sync, history, query, TURN_BUDGET, None, cache_key=key),
        SPEED_RUNS,
    )
    warm_tokens = time_ms(
        partial(relevance.prune_sync, history, query, None, token_budget, cache_key=key),
        SPEED_RUNS,
    )

    # Incremental: append one exchange, then prune (the index extends by two turns).
    grown = list(history)
    rng = random.Random(len(history))

    def append_and_prune() -> None:
        grown.append(SessionTurn(role="user", content=filler(rng, "user")))
        grown.append(SessionTurn(role="assistant", content=filler(rng, "assistant")))
        relevance.prune_sync(grown, query, TURN_BUDGET, None, cache_key=key)

    incremental = time_ms(append_and_prune, SPEED_RUNS)
    sliding = time_ms(
        partial(SlidingWindowPruner().prune_sync, history, "", TURN_BUDGET), SPEED_RUNS
    )
    return {
        "cold": cold,
        "warm": warm,
        "warm_tokens": warm_tokens,
        "incremental": incremental,
        "sliding": sliding,
    }


def measure_semantic_speed(conv: Conversation, embedder: Embedder) -> dict[str, float]:
    """Hybrid prune of one long conversation, in ms: embedding every turn alone, the cold prune
    (index + every turn embedded) and the warm median (only the query is embedded)."""
    history, query = conv.history, conv.query
    start = time.perf_counter()
    embedder.embed([turn.content for turn in history])
    embed_all = (time.perf_counter() - start) * 1000
    hybrid = RelevanceContextPruner(
        index_cache=RelevanceIndexCache(), embedder=embedder, semantic_weight=SEMANTIC_WEIGHT
    )
    start = time.perf_counter()
    hybrid.prune_sync(history, query, TURN_BUDGET, None, cache_key="s")
    cold = (time.perf_counter() - start) * 1000
    warm = time_ms(
        partial(hybrid.prune_sync, history, query, TURN_BUDGET, None, cache_key="s"), SPEED_RUNS
    )
    return {"embed_all": embed_all, "cold": cold, "warm": warm}


def main() -> int:
    started = time.perf_counter()
    rng = random.Random(SEED)
    log(f"generating {N_CONVERSATIONS} conversations of {CONVERSATION_TURNS} turns ...")
    conversations = [make_conversation(rng, CONVERSATION_TURNS) for _ in range(N_CONVERSATIONS)]
    n_needed = sum(len(c.needed) for c in conversations)
    mean_tokens = statistics.fmean(turn_tokens(t) for c in conversations for t in c.history)
    token_budget = round(TURN_BUDGET * mean_tokens)

    pruners: dict[str, ContextPruner] = {
        "SlidingWindowPruner": SlidingWindowPruner(),
        "TokenBudgetPruner": TokenBudgetPruner(),
        "RelevanceContextPruner": RelevanceContextPruner(),
    }
    by_turns: dict[str, float] = {}
    by_tokens: dict[str, float] = {}
    for name, pruner in pruners.items():
        log(f"quality: {name} ...")
        by_turns[name] = recall(pruner, conversations, TURN_BUDGET, None)
        by_tokens[name] = recall(pruner, conversations, None, token_budget)

    log("speed: building histories ...")
    speed_rng = random.Random(SEED + 1)
    speed: dict[int, dict[str, float]] = {}
    for size in SPEED_SIZES:
        log(f"speed: {size} turns ...")
        speed[size] = measure_speed(make_conversation(speed_rng, size), token_budget)

    embedder = load_default_embedder()
    semantic_speed: dict[str, float] = {}
    if embedder is not None:
        log(f"speed: {SPEED_SIZES[-1]} turns with the semantic embedder ...")
        big = make_conversation(random.Random(SEED + 2), SPEED_SIZES[-1])
        semantic_speed = measure_semantic_speed(big, embedder)
    locomo_lines, locomo_checks = locomo.report(embedder, SEMANTIC_WEIGHT, LOCOMO_KS)

    small, large = SPEED_SIZES
    ratio = speed[large]["warm"] / speed[small]["warm"]
    relevance_recall = by_turns["RelevanceContextPruner"]
    sliding_recall = by_turns["SlidingWindowPruner"]
    vs_sliding = relevance_recall / sliding_recall if sliding_recall else float("inf")
    checks = {
        f"relevance recall >= 0.9 ({relevance_recall:.3f})": relevance_recall >= 0.9,
        f"relevance >= 5x sliding window ({vs_sliding:.1f}x)": vs_sliding >= 5,
        f"10k warm prune <= 200 ms ({speed[large]['warm']:.1f} ms)": speed[large]["warm"] <= 200,
        f"10k/1k time ratio <= 12 ({ratio:.1f})": ratio <= 12,
        **locomo_checks,
    }
    if semantic_speed:
        warm = semantic_speed["warm"]
        checks[f"10k warm hybrid prune <= 50 ms ({warm:.1f} ms)"] = warm <= 50

    out = [
        "## Context pruning benchmark",
        "",
        f"Synthetic conversations: {N_CONVERSATIONS} x {CONVERSATION_TURNS} turns, "
        f"{FACTS_PER_CONVERSATION} facts planted per conversation, one question about one or two "
        f"of them ({n_needed} needed turns in all), seed {SEED}.",
        "",
        "### Evidence recall (share of needed turns kept)",
        "",
        f"| pruner | {TURN_BUDGET}-turn budget | {token_budget}-token budget "
        f"(~{TURN_BUDGET} turns) |",
        "| --- | ---: | ---: |",
    ]
    for name in pruners:
        out.append(f"| {name} | {by_turns[name]:.3f} | {by_tokens[name]:.3f} |")
    out += [
        "",
        f"### Speed (median of {SPEED_RUNS} runs, ms)",
        "",
        "| turns | relevance cold (index build) | relevance warm, 20 turns | "
        f"relevance warm, {token_budget} tokens | append 2 turns + prune | sliding window |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size in SPEED_SIZES:
        s = speed[size]
        out.append(
            f"| {size:,} | {s['cold']:.1f} | {s['warm']:.2f} | {s['warm_tokens']:.2f} | "
            f"{s['incremental']:.2f} | {s['sliding']:.2f} |"
        )
    out += ["", f"10k/1k warm time ratio: {ratio:.1f}", ""]
    if semantic_speed:
        s = semantic_speed
        out += [
            f"With the semantic embedder (`{embedder.name if embedder else ''}`, weight "
            f"{SEMANTIC_WEIGHT}), {SPEED_SIZES[-1]:,} turns: embedding every turn "
            f"{s['embed_all']:.0f} ms; cold prune (index + embeddings) {s['cold']:.0f} ms; "
            f"warm prune {s['warm']:.2f} ms (median of {SPEED_RUNS}).",
            "",
        ]
    else:
        out += ["Semantic extra not installed: no hybrid figures.", ""]
    out += [*locomo_lines, "### Targets", ""]
    out += [f"- [{'x' if ok else ' '}] {label}" for label, ok in checks.items()]
    out += ["", f"Benchmark wall time: {time.perf_counter() - started:.1f} s"]
    print("\n".join(out))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

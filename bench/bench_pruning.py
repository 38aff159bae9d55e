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
from dataclasses import dataclass
from functools import partial
from pathlib import Path

for _path in (Path(__file__).resolve().parents[1], Path(__file__).resolve().parents[1] / "src"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from bench import locomo  # noqa: E402
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
FACTS_PER_CONVERSATION = 4
SPEED_SIZES = (1_000, 10_000)
SPEED_RUNS = 21
LOCOMO_KS = (10, 20, 50)
SEMANTIC_WEIGHT = 0.1  # the worker's default (ContextActivities)

# ------------------------------------------------------------------------------------------
# Facts: statement templates, paraphrased questions, value generators
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fact:
    key: str
    statements: tuple[str, ...]
    questions: tuple[str, ...]
    value: Callable[[random.Random], str]


def _pick(words: list[str]) -> Callable[[random.Random], str]:
    return lambda r: r.choice(words)


FACTS: tuple[Fact, ...] = (
    Fact(
        "locker",
        ("My locker code is {v}.", "For the record, the code on my locker is {v}."),
        ("What was my locker code again?", "Remind me of the code for my locker?"),
        lambda r: str(r.randint(1000, 9999)),
    ),
    Fact(
        "codename",
        ("The project codename is {v}.", "We settled on {v} as the codename for the project."),
        ("Which codename did we pick for the project?", "What's the project's codename?"),
        _pick(["Bluefin", "Marigold", "Kestrel", "Tamarind", "Obsidian", "Halyard"]),
    ),
    Fact(
        "wifi",
        ("The guest wifi password is {v}.", "If anyone asks, the wifi password is {v}."),
        ("Can you tell me the wifi password again?", "What did I say the wifi password was?"),
        lambda r: f"{r.choice(['otter', 'maple', 'comet', 'pebble'])}-{r.randint(10, 99)}",
    ),
    Fact(
        "flight",
        ("My flight to {v} leaves Friday at 7:45.", "I booked a flight to {v} for Friday."),
        ("Where is my flight going on Friday?", "Which city is that flight of mine to?"),
        _pick(["Lisbon", "Oslo", "Nairobi", "Osaka", "Lima", "Tallinn", "Hanoi"]),
    ),
    Fact(
        "dentist",
        ("I booked the dentist for {v} at 3pm.", "My dentist appointment is on {v}."),
        ("When is my dentist appointment?", "Which day did I say the dentist was?"),
        _pick(["Monday", "Tuesday", "Wednesday", "Thursday"]),
    ),
    Fact(
        "sister",
        ("My sister Maya's birthday is on {v}.", "Maya, my sister, turns thirty on {v}."),
        ("When is Maya's birthday?", "What date is my sister's birthday?"),
        lambda r: f"{r.choice(['March', 'June', 'October', 'December'])} {r.randint(1, 28)}",
    ),
    Fact(
        "server",
        ("The staging server IP is {v}.", "Our staging server lives at {v}."),
        ("What's the IP address of the staging server?", "Which IP does staging use?"),
        lambda r: f"10.0.{r.randint(0, 9)}.{r.randint(2, 250)}",
    ),
    Fact(
        "doctor",
        ("My new doctor is Dr. {v}.", "I switched to a doctor called Dr. {v}."),
        ("What is my new doctor's name?", "Who did I say my doctor is now?"),
        _pick(["Okafor", "Lindqvist", "Ramirez", "Tanaka", "Novak", "Haddad"]),
    ),
    Fact(
        "bookclub",
        ("For book club we are reading {v}.", "The book club picked {v} this month."),
        ("Which book is the book club reading?", "What was the book club pick?"),
        _pick(["The Overstory", "Piranesi", "Middlemarch", "Kindred", "Solaris"]),
    ),
    Fact(
        "budget",
        ("Our Q3 marketing budget is {v}.", "Finance approved {v} as the Q3 marketing budget."),
        ("How much is the marketing budget for Q3?", "What was our Q3 budget again?"),
        lambda r: f"${r.randint(20, 90)},000",
    ),
    Fact(
        "parking",
        ("I parked on level {v}, spot B12.", "The car is parked on level {v} today."),
        ("Which level did I leave the car on?", "Where is the car parked?"),
        lambda r: str(r.randint(1, 6)),
    ),
    Fact(
        "allergy",
        ("I'm allergic to {v}, so keep that in mind for recipes.", "Heads up: {v} allergy."),
        ("Which allergy should you keep in mind for recipes?", "What am I allergic to?"),
        _pick(["peanuts", "shellfish", "sesame", "kiwi", "walnuts"]),
    ),
)

# Confounders share a key word with a fact but say something else.
CONFOUNDERS = (
    "The locker room at the gym was packed this morning.",
    "I spent the afternoon in a code review that went nowhere.",
    "The project meeting ran long again, as usual.",
    "My neighbour's flight got delayed by the storm.",
    "The dentist down the street has a terrible website.",
    "Our server at the restaurant recommended the risotto.",
    "My doctor friend says everyone should stretch more.",
    "I finally finished that book about lighthouses.",
    "The wifi at the cafe kept dropping out.",
    "We went over budget on groceries this week.",
    "The parking at the mall is a nightmare on weekends.",
    "It was my coworker's birthday, so we had cake.",
    "My sister called to talk about her garden.",
    "The staging area for the parade blocked our street.",
    "Someone said the new marketing slogan is awful.",
)

SUBJECTS = [
    "the weather",
    "my garden",
    "the new cafe",
    "that documentary",
    "our cat",
    "the football",
    "my bike",
    "the neighbours",
    "the bakery",
    "the podcast",
    "the hike",
    "the concert",
    "the museum",
    "the farmers market",
    "my running shoes",
    "the sourdough",
    "the train",
    "the jigsaw puzzle",
    "the chess club",
    "the yoga class",
    "the thunderstorm",
    "the beach",
]
VERBS = [
    "loved",
    "tried",
    "noticed",
    "watched",
    "visited",
    "fixed",
    "painted",
    "cooked",
    "ignored",
    "recommended",
    "photographed",
    "cleaned",
    "explored",
    "planned",
    "missed",
]
ADJECTIVES = [
    "lovely",
    "strange",
    "exhausting",
    "peaceful",
    "chaotic",
    "delicious",
    "soggy",
    "bright",
    "noisy",
    "cozy",
    "surprising",
    "dull",
    "fantastic",
    "windy",
    "crowded",
    "quiet",
]
TIMES = [
    "yesterday",
    "this morning",
    "last weekend",
    "on Sunday",
    "after lunch",
    "tonight",
    "earlier",
    "last night",
    "over the holidays",
    "before work",
]
USER_TEMPLATES = (
    "I {verb} {subject} {time} and it was {adj}.",
    "Have you heard about {subject}? Apparently it is {adj}.",
    "Honestly {subject} was {adj} {time}.",
    "We {verb} {subject} {time}; pretty {adj} overall.",
    "Not much news, just {subject} being {adj} again.",
)
ASSISTANT_TEMPLATES = (
    "That sounds {adj}! What did you think of {subject}?",
    "Interesting. People often find {subject} {adj}.",
    "Glad to hear it. Anything else planned for {time2}?",
    "Oh, {subject} can be {adj}. Tell me more!",
)
ACKS = ("Got it, I'll remember that.", "Noted!", "Okay, saved that for later.", "Understood.")


def _filler(rng: random.Random, role: str) -> str:
    templates = USER_TEMPLATES if role == "user" else ASSISTANT_TEMPLATES
    return rng.choice(templates).format(
        verb=rng.choice(VERBS),
        subject=rng.choice(SUBJECTS),
        time=rng.choice(TIMES),
        time2=rng.choice(TIMES),
        adj=rng.choice(ADJECTIVES),
    )


@dataclass
class Conversation:
    history: list[SessionTurn]
    query: str
    needed: list[int]


def make_conversation(rng: random.Random, n_turns: int) -> Conversation:
    """A system turn, then user/assistant exchanges with planted facts and a few tool calls."""
    history: list[SessionTurn] = [
        SessionTurn(role="system", content="You are a friendly, concise assistant.")
    ]
    facts = rng.sample(FACTS, FACTS_PER_CONVERSATION)
    # Plan the exchanges first (chit-chat: user + assistant; weather lookup: user + assistant
    # tool call + tool result) so they add up to the length, then turn randomly chosen
    # chit-chat exchanges anywhere in the conversation into fact statements.
    plan: list[str] = []
    total = len(history)
    while total < n_turns:
        kind = "tool" if rng.random() < 0.04 and total + 3 <= n_turns else "chat"
        plan.append(kind)
        total += 3 if kind == "tool" else 2
    chats = [e for e, kind in enumerate(plan) if kind == "chat"]
    planted: dict[int, Fact] = dict(zip(rng.sample(chats, len(facts)), facts, strict=True))
    stated: dict[str, int] = {}
    calls = 0
    for exchange, kind in enumerate(plan):
        fact = planted.get(exchange)
        if fact is not None:
            text = rng.choice(fact.statements).format(v=fact.value(rng))
            stated[fact.key] = len(history)
            history.append(SessionTurn(role="user", content=text))
            history.append(SessionTurn(role="assistant", content=rng.choice(ACKS)))
        elif kind == "tool":
            calls += 1
            call_id = f"call_{calls}"
            city = rng.choice(["Paris", "Quito", "Perth", "Dakar"])
            history.append(SessionTurn(role="user", content=f"What's the weather in {city}?"))
            history.append(
                SessionTurn(
                    role="assistant",
                    content="Let me check the weather service.",
                    metadata={"tool_calls": [{"id": call_id, "name": "weather"}]},
                )
            )
            history.append(
                SessionTurn(
                    role="tool",
                    content=f'{{"city": "{city}", "temp_c": {rng.randint(-5, 35)}}}',
                    metadata={"tool_call_id": call_id},
                )
            )
        else:
            text = rng.choice(CONFOUNDERS) if rng.random() < 0.12 else _filler(rng, "user")
            history.append(SessionTurn(role="user", content=text))
            history.append(SessionTurn(role="assistant", content=_filler(rng, "assistant")))
    history = history[:n_turns]
    candidates = [f for f in facts if stated.get(f.key, n_turns) < n_turns]
    asked = rng.sample(candidates, min(len(candidates), 2 if rng.random() < 0.25 else 1))
    if len(asked) == 1:
        query = rng.choice(asked[0].questions)
    else:
        first, second = (rng.choice(f.questions).rstrip("?") for f in asked)
        query = f"{first}, and also {second[0].lower()}{second[1:]}?"
    needed = [stated[f.key] for f in asked]
    return Conversation(history=history, query=query, needed=needed)


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
        grown.append(SessionTurn(role="user", content=_filler(rng, "user")))
        grown.append(SessionTurn(role="assistant", content=_filler(rng, "assistant")))
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

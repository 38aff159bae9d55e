"""Synthetic conversations with planted facts, for ``bench_pruning``.

Generated deterministically from a seeded ``random.Random``: chit-chat filler over a varied
vocabulary, with confounder sentences that share one key word with a fact ("the locker room at
the gym", "a code review"), the odd tool call, and facts planted at random turns ("My locker code
is 4417"). The query asks about one or two of the facts in other words ("What was the code for
my locker again?"); the needed turns are the turns that state those facts.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from durable_sessions.models import SessionTurn

FACTS_PER_CONVERSATION = 4

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


def filler(rng: random.Random, role: str) -> str:
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
            text = rng.choice(CONFOUNDERS) if rng.random() < 0.12 else filler(rng, "user")
            history.append(SessionTurn(role="user", content=text))
            history.append(SessionTurn(role="assistant", content=filler(rng, "assistant")))
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

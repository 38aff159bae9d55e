"""Load the LoCoMo development half (``../shared/data/locomo-dev``) as session turns.

LoCoMo (snap-research/locomo) holds long multi-session conversations between two people, with
questions whose ``evidence`` names the turns (``dia_id``) that answer them. Each conversation
becomes one transcript: the first speaker's turns are ``user`` turns, the second's
``assistant`` turns, the content is ``"{speaker}: {text}"`` plus ``" [image: {caption}]"`` when
the turn shares an image, and every turn's ``timestamp`` is its session's ``date_time``, as it
would be in a live session. ``metadata["session"]`` is the LoCoMo session number, so a
cross-session benchmark can split a conversation into one durable session per LoCoMo session.

Only the turns are read: the data set's summaries, observations and event annotations are not
something a live session would have.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from durable_sessions.core.pruning import ContextPruner, RelevanceContextPruner, tokenize
from durable_sessions.models import SessionTurn

DEFAULT_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "locomo-dev"
"""``../shared/data/locomo-dev`` relative to the repository root."""

_DATE_RE = re.compile(r"(\d{1,2}):(\d{2})\s*([ap]m)\s+on\s+(\d{1,2})\s+(\w+),?\s+(\d{4})", re.I)
_MONTHS = {datetime(2000, i, 1).strftime("%B").lower(): i for i in range(1, 13)}


def parse_date_time(text: str) -> datetime:
    """Parse LoCoMo's ``"1:56 pm on 8 May, 2023"`` as a UTC datetime.

    Raises:
        ValueError: If the text is not in that form.
    """
    match = _DATE_RE.search(text)
    if match is None:
        raise ValueError(f"unrecognised LoCoMo date_time {text!r}")
    hour, minute, half, day, month, year = match.groups()
    h = int(hour) % 12 + (12 if half.lower() == "pm" else 0)
    return datetime(int(year), _MONTHS[month.lower()], int(day), h, int(minute), tzinfo=UTC)


@dataclass
class Question:
    text: str
    category: int
    evidence: list[int]
    """Indexes into the conversation's ``turns`` of the evidence turns (unknown ids dropped)."""


@dataclass
class Conversation:
    name: str
    turns: list[SessionTurn]
    questions: list[Question] = field(default_factory=list)


def data_dir() -> Path | None:
    """The LoCoMo directory (``$LOCOMO_DIR`` or the default), or ``None`` when absent."""
    path = Path(os.environ.get("LOCOMO_DIR", DEFAULT_DIR))
    return path if path.is_dir() and any(path.glob("*.json")) else None


def load_conversation(path: Path) -> Conversation:
    """One LoCoMo conversation file as turns and questions (only questions with evidence)."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    speakers = {raw["speaker_a"]: "user", raw["speaker_b"]: "assistant"}
    turns: list[SessionTurn] = []
    index: dict[str, int] = {}
    n = 1
    while f"session_{n}" in raw:
        when = parse_date_time(raw[f"session_{n}_date_time"])
        for item in raw[f"session_{n}"]:
            text = f"{item['speaker']}: {item['text']}"
            if item.get("blip_caption"):
                text += f" [image: {item['blip_caption']}]"
            index[item["dia_id"]] = len(turns)
            turns.append(
                SessionTurn(
                    turn_id=f"{path.stem}-{item['dia_id']}",
                    role=speakers.get(item["speaker"], "user"),
                    content=text,
                    timestamp=when,
                    metadata={"session": n, "dia_id": item["dia_id"]},
                    seq=len(turns),
                )
            )
        n += 1
    questions = []
    for qa in raw.get("qa", []):
        ids = [part.strip() for e in qa.get("evidence") or [] for part in str(e).split(";")]
        evidence = sorted({index[e] for e in ids if e in index})
        if evidence:
            questions.append(Question(str(qa["question"]), int(qa["category"]), evidence))
    return Conversation(path.stem, turns, questions)


def load(directory: Path | None = None) -> list[Conversation]:
    """Every conversation in the directory, by file name; ``[]`` when it does not exist."""
    directory = directory or data_dir()
    if directory is None or not directory.is_dir():
        return []
    return [load_conversation(p) for p in sorted(directory.glob("*.json"))]


Selector = Callable[[Conversation, Question, int], set[int]]
"""``select(conversation, question, k) -> indexes of the kept turns``."""


def evidence_recall(
    select: Selector, conversations: list[Conversation], ks: tuple[int, ...]
) -> dict[int, float]:
    """Mean over questions of the share of evidence turns kept, for each budget ``k``."""
    out: dict[int, float] = {}
    for k in ks:
        shares = []
        for conv in conversations:
            for q in conv.questions:
                kept = select(conv, q, k)
                shares.append(sum(e in kept for e in q.evidence) / len(q.evidence))
        out[k] = statistics.fmean(shares) if shares else 0.0
    return out


def pruner_selector(pruner: ContextPruner, timings: list[float] | None = None) -> Selector:
    """A pruner as a selector (cached per conversation when it is a relevance pruner)."""

    def select(conv: Conversation, q: Question, k: int) -> set[int]:
        started = time.perf_counter()
        if isinstance(pruner, RelevanceContextPruner):
            kept = pruner.prune_sync(conv.turns, q.text, k, cache_key=conv.name)
        else:
            kept = pruner.prune_sync(conv.turns, q.text, k)
        if timings is not None:
            timings.append(time.perf_counter() - started)
        return {turn.seq for turn in kept if turn.seq is not None}

    return select


def bm25_selector() -> Selector:
    """Plain BM25 (``bm25s`` defaults) over unstemmed words: the top ``k`` turns by score."""
    import bm25s
    import numpy as np

    indexes: dict[str, Any] = {}

    def select(conv: Conversation, q: Question, k: int) -> set[int]:
        if conv.name not in indexes:
            retriever = bm25s.BM25()
            retriever.index([tokenize(t.content) for t in conv.turns], show_progress=False)
            indexes[conv.name] = retriever
        retriever = indexes[conv.name]
        terms = [w for w in tokenize(q.text) if w in retriever.vocab_dict]
        scores = retriever.get_scores(terms) if terms else np.zeros(len(conv.turns))
        return set(np.argsort(-scores, kind="stable")[:k].tolist())

    return select


def report(
    embedder: Any, semantic_weight: float, ks: tuple[int, ...] = (10, 20, 50)
) -> tuple[list[str], dict[str, bool]]:
    """The LoCoMo section of the pruning benchmark: Markdown lines and the targets' checks.

    Selectors: the last ``k`` turns, plain BM25, the relevance pruner with its defaults
    (lexical) and, when ``embedder`` is given, with it (hybrid).
    """
    from durable_sessions.core.pruning import RelevanceIndexCache, SlidingWindowPruner

    conversations = load()
    if not conversations:
        return ["### LoCoMo", "", "LoCoMo data not found (`../shared/data/locomo-dev`).", ""], {}
    n_turns = sum(len(c.turns) for c in conversations)
    n_questions = sum(len(c.questions) for c in conversations)
    timings: dict[str, list[float]] = {}
    selectors: dict[str, Selector] = {
        "last k turns (SlidingWindowPruner)": pruner_selector(SlidingWindowPruner()),
        "plain BM25 (bm25s defaults, unstemmed)": bm25_selector(),
    }
    timings["lexical"] = []
    selectors["RelevanceContextPruner() lexical"] = pruner_selector(
        RelevanceContextPruner(index_cache=RelevanceIndexCache()), timings["lexical"]
    )
    if embedder is not None:
        timings["hybrid"] = []
        hybrid = RelevanceContextPruner(
            index_cache=RelevanceIndexCache(), embedder=embedder, semantic_weight=semantic_weight
        )
        selectors["RelevanceContextPruner hybrid (packaged embedder)"] = pruner_selector(
            hybrid, timings["hybrid"]
        )
    results: dict[str, dict[int, float]] = {}
    for name, select in selectors.items():
        print(f"LoCoMo: {name} ...", file=sys.stderr, flush=True)
        results[name] = evidence_recall(select, conversations, ks)
    lines = [
        "### LoCoMo development half (evidence recall, question as query)",
        "",
        f"{len(conversations)} conversations, {n_turns:,} turns, {n_questions} questions with "
        "evidence; recall = mean over questions of the share of evidence turns kept.",
        "",
        "| selector | " + " | ".join(f"recall@{k}" for k in ks) + " |",
        "| --- | " + " | ".join("---:" for _ in ks) + " |",
    ]
    for name, by_k in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{by_k[k]:.3f}" for k in ks) + " |")
    lines.append("")
    for name, samples in timings.items():
        if samples:
            median = statistics.median(samples) * 1000
            lines.append(f"- {name} prune time, warm cache: median {median:.2f} ms per prune")
    lines.append("")
    lexical = results["RelevanceContextPruner() lexical"][20]
    checks = {f"LoCoMo lexical recall@20 >= 0.72 ({lexical:.3f})": lexical >= 0.72}
    if embedder is not None:
        value = next(v for n, v in results.items() if "hybrid" in n)[20]
        checks[f"LoCoMo hybrid recall@20 >= 0.80 ({value:.3f})"] = value >= 0.80
    return lines, checks

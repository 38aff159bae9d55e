"""Compaction that keeps the log: which ranges to summarize, an offline summarizer, and how
summaries and turns share one context budget.

Why it looks the way it does:

* **Fixed, aligned ranges.** A first-level summary covers turns ``[k * chunk, (k + 1) * chunk)``;
  a level-``L`` summary covers ``fanout`` consecutive level-``L-1`` ranges and is written from
  their summaries. Boundaries never depend on when compaction ran, so the same transcript always
  asks for the same ranges: a retried activity, a second worker or a later call finds the
  summaries already stored instead of writing new, different ones.
* **A logarithmic cover.** The old part of a transcript, ``[0, end)``, is covered by the largest
  aligned ranges that fit (``end`` written in base ``fanout``): at most ``fanout - 1`` summaries
  per level, so a 5,000-turn session with the defaults needs 6 summaries and a 50,000-turn one
  12. Total summarizer work stays linear: each turn is read once at each level.
* **Owned by the turn that ends the range.** A summary of ``[lo, hi)`` depends only on those
  turns, and they are fixed by whoever owns turn ``hi - 1`` in the lineage (``stores.base``):
  branches forked after ``hi`` and restores to ``hi`` or later share it; a branch or restore
  that rewrote any of the turns owns its own. Stores key summaries by that owner and range.
* **Summaries are context, not transcript.** They come back from ``context()`` as system turns
  without ``seq``, marked ``metadata["summary"] = {"lo", "hi", "level", "summarizer"}``, after
  the system turns they cover and before every other turn; ``history()`` never sees them.

Everything here is pure: no I/O, no Temporal import.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, Field

from durable_sessions.core.tokens import count_tokens
from durable_sessions.models import CompactionConfig, SessionTurn

__all__ = [
    "EXTRACTIVE",
    "Span",
    "Summary",
    "SummaryRef",
    "arrange",
    "children",
    "compactable_end",
    "cover",
    "extractive_summary",
    "fit_newest",
    "plan_work",
    "render_content",
    "summary_turn",
    "text_budget",
    "truncate_to_tokens",
]

EXTRACTIVE = "extractive"
"""The ``summarizer`` recorded on summaries written by :func:`extractive_summary`."""


class Summary(BaseModel):
    """A stored summary of turns ``[lo, hi)``, owned by the generation that holds turn
    ``hi - 1`` (``session_id``, ``generation``)."""

    session_id: str
    generation: int = Field(ge=0)
    lo: int = Field(ge=0)
    hi: int = Field(ge=1)
    level: int = Field(ge=1)
    content: str = Field(min_length=1)
    """The summary's text."""
    tokens: int = Field(ge=0)
    """Tokens of the context turn (:func:`render_content`), counted once by the worker that
    wrote the summary, so every reader budgets it alike."""
    summarizer: str
    created_at: datetime


class SummaryRef(BaseModel):
    """Names one stored summary: what crosses Temporal instead of its text."""

    session_id: str
    generation: int
    lo: int
    hi: int


@dataclass(frozen=True, order=True)
class Span:
    """An aligned range ``[lo, hi)`` at a summary ``level`` (1: summarized from turns)."""

    lo: int
    hi: int
    level: int


def compactable_end(turn_count: int, config: CompactionConfig) -> int:
    """Where the summarized part of a transcript ends: the last chunk boundary that leaves at
    least ``keep_recent_turns`` turns after it."""
    usable = max(0, turn_count - config.keep_recent_turns)
    return usable // config.chunk_turns * config.chunk_turns


def cover(end: int, chunk: int, fanout: int) -> list[Span]:
    """The fewest aligned spans that tile ``[0, end)``, oldest (and largest) first.

    Args:
        end: A multiple of ``chunk``.
        chunk: Turns per level-1 span.
        fanout: Spans per span one level up.

    Raises:
        ValueError: If ``end`` is not a multiple of ``chunk``.
    """
    if end % chunk:
        raise ValueError(f"end must be a multiple of chunk, got {end} and {chunk}")
    spans: list[Span] = []
    size, level = chunk, 1
    while size * fanout <= end:
        size, level = size * fanout, level + 1
    lo = 0
    while lo < end:
        while lo + size > end:
            size, level = size // fanout, level - 1
        spans.append(Span(lo, lo + size, level))
        lo += size
    return spans


def children(span: Span, fanout: int) -> list[Span]:
    """The ``fanout`` spans one level down that a level > 1 span is written from."""
    if span.level <= 1:
        return []
    step = (span.hi - span.lo) // fanout
    return [
        Span(span.lo + i * step, span.lo + (i + 1) * step, span.level - 1) for i in range(fanout)
    ]


def plan_work(targets: Sequence[Span], fanout: int, stored: Callable[[Span], bool]) -> list[Span]:
    """The spans to summarize so every target exists, children before their parent.

    A target already stored costs nothing; a missing level > 1 target first needs its missing
    children (recursively), never the ones already stored.
    """
    out: list[Span] = []
    seen: set[Span] = set()

    def visit(span: Span) -> None:
        if span in seen or stored(span):
            return
        seen.add(span)
        for child in children(span, fanout):
            visit(child)
        out.append(span)

    for target in targets:
        visit(target)
    return out


# --------------------------------------------------------------------------------------------
# The offline extractive summarizer
# --------------------------------------------------------------------------------------------

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\s*\n+\s*")
_TERM = re.compile(r"[^\W_]+", re.UNICODE)
_STOP_TEXT = (
    "a an and are as at be but by for from has have i if in is it its me my of on or our so "
    "that the their them then there these they this to us was we were what when which who will "
    "with you your do did does not no yes ok okay just can could would should about also"
)
_STOP = frozenset(_STOP_TEXT.split())


@dataclass
class _Sentence:
    index: int
    line: str
    terms: frozenset[str]
    cost: int
    bonus: float


def _sentences(items: Sequence[tuple[str, str]]) -> list[_Sentence]:
    out: list[_Sentence] = []
    for label, text in items:
        for part in _SENTENCE.split(text):
            part = part.strip()
            if not part:
                continue
            line = f"{label}: {part}" if label else part
            words = _TERM.findall(part)
            terms = frozenset(w.casefold() for w in words) - _STOP
            # Facts worth keeping tend to carry numbers and names.
            bonus = 1.0 + 0.5 * any(w.isdigit() for w in words)
            bonus += 0.25 * any(w[:1].isupper() for w in words[1:])
            out.append(_Sentence(len(out), line, terms, count_tokens(line) + 1, bonus))
    return out


def extractive_summary(items: Sequence[tuple[str, str]], max_tokens: int) -> str:
    """A deterministic summary of at most ``max_tokens`` tokens, made of whole sentences.

    SumBasic (Nenkova and Vanderwende, 2005): a sentence scores the mean frequency of its
    content words in the range, a little more when it holds numbers or names; the best is
    taken, the frequencies of its words are squared so the next pick says something else, and
    so on while sentences fit. The chosen sentences keep their order and their speaker.

    Args:
        items: ``(speaker, text)`` pairs in order; an empty speaker adds no prefix.
        max_tokens: The summary's budget (``count_tokens``).

    Returns:
        One sentence per line; never empty when ``items`` hold any text.
    """
    sentences = _sentences(items)
    if not sentences:
        return ""
    df = Counter(term for s in sentences for term in s.terms)
    total = sum(df.values()) or 1
    prob = {term: n / total for term, n in df.items()}
    picked: list[_Sentence] = []
    used = 0
    left = {s.index: s for s in sentences if s.cost <= max_tokens}
    while left:
        room = max_tokens - used
        fits = [s for s in left.values() if s.cost <= room]
        if not fits:
            break
        best = max(
            fits,
            key=lambda s: (
                s.bonus * sum(prob[t] for t in s.terms) / len(s.terms) if s.terms else 0.0,
                -s.index,
            ),
        )
        picked.append(best)
        used += best.cost
        del left[best.index]
        for term in best.terms:
            prob[term] *= prob[term]
    if not picked:
        return truncate_to_tokens(sentences[0].line, max_tokens)
    picked.sort(key=lambda s: s.index)
    return "\n".join(s.line for s in picked)


def truncate_to_tokens(text: str, max_tokens: int) -> str:
    """The longest prefix of ``text`` ending at a word that counts at most ``max_tokens``."""
    if count_tokens(text) <= max_tokens:
        return text
    words = text.split()
    lo, hi = 0, len(words)
    while lo < hi:  # the most words whose join fits
        mid = (lo + hi + 1) // 2
        if count_tokens(" ".join(words[:mid])) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo])


# --------------------------------------------------------------------------------------------
# Summaries in a context
# --------------------------------------------------------------------------------------------


def render_content(lo: int, hi: int, text: str) -> str:
    """The context turn's text for a summary of ``[lo, hi)``: a header, then the summary."""
    return f"Summary of turns {lo}-{hi - 1}:\n{text}"


def text_budget(lo: int, hi: int, summary_tokens: int) -> int:
    """Tokens left for a summary's text once its header is counted (at least 8)."""
    return max(8, summary_tokens - count_tokens(render_content(lo, hi, "")))


def summary_turn(summary: Summary) -> SessionTurn:
    """A summary as it appears in a context: a system turn without ``seq``."""
    return SessionTurn(
        turn_id=f"summary-{summary.lo}-{summary.hi}",
        role="system",
        content=render_content(summary.lo, summary.hi, summary.content),
        timestamp=summary.created_at,
        tokens=summary.tokens,
        metadata={
            "summary": {
                "lo": summary.lo,
                "hi": summary.hi,
                "level": summary.level,
                "summarizer": summary.summarizer,
            }
        },
    )


def fit_newest(
    summaries: Sequence[Summary], max_tokens: int | None, max_turns: int | None
) -> list[Summary]:
    """The newest summaries (a contiguous suffix of the cover) within both budgets.

    With the default sizes the whole cover fits; if it does not, the oldest ranges go first.
    """
    kept: list[Summary] = []
    used = 0
    for summary in reversed(summaries):
        if max_turns is not None and len(kept) >= max_turns:
            break
        if max_tokens is not None and used + summary.tokens > max_tokens:
            break
        kept.append(summary)
        used += summary.tokens
    kept.reverse()
    return kept


def arrange(turns: Sequence[SessionTurn], summaries: Sequence[SessionTurn]) -> list[SessionTurn]:
    """A compacted context in reading order: the system turns the summaries cover, the
    summaries (oldest first), then every other turn in transcript order."""
    if not summaries:
        return list(turns)
    end = max(int(s.metadata["summary"]["hi"]) for s in summaries)
    head = [t for t in turns if t.role == "system" and t.seq is not None and t.seq < end]
    rest = [t for t in turns if not (t.role == "system" and t.seq is not None and t.seq < end)]
    ordered = sorted(summaries, key=lambda s: int(s.metadata["summary"]["lo"]))
    return [*head, *ordered, *rest]

"""Compaction's pure parts: range planning, the extractive summarizer, budget helpers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from durable_sessions.core.compaction import (
    Span,
    Summary,
    arrange,
    children,
    compactable_end,
    cover,
    extractive_summary,
    fit_newest,
    plan_work,
    render_content,
    summary_turn,
    text_budget,
    truncate_to_tokens,
)
from durable_sessions.core.tokens import count_tokens
from durable_sessions.models import CompactionConfig, SessionConfig, SessionTurn

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def summary(lo: int, hi: int, tokens: int = 10, level: int = 1) -> Summary:
    return Summary(
        session_id="s",
        generation=0,
        lo=lo,
        hi=hi,
        level=level,
        content=f"text {lo}",
        tokens=tokens,
        summarizer="extractive",
        created_at=T0,
    )


# --- config -------------------------------------------------------------------------------------


def test_compaction_is_off_by_default_and_validated() -> None:
    assert SessionConfig().compaction is None
    cfg = SessionConfig(compaction=CompactionConfig(budget_tokens=4000))
    assert cfg.compaction is not None and cfg.compaction.chunk_turns == 50
    assert SessionConfig.model_validate(cfg.model_dump()) == cfg  # survives the wire
    with pytest.raises(ValidationError):
        CompactionConfig(budget_tokens=300, summary_tokens=200)  # a summary over half the budget
    with pytest.raises(ValidationError):
        CompactionConfig(chunk_turns=1)


# --- range planning -----------------------------------------------------------------------------


def test_cover_of_a_5000_turn_session() -> None:
    cfg = CompactionConfig(budget_tokens=4000)
    end = compactable_end(5000, cfg)
    assert end == 4950  # 20 recent turns kept, down to a chunk boundary
    assert cover(end, 50, 4) == [
        Span(0, 3200, 4),
        Span(3200, 4000, 3),
        Span(4000, 4800, 3),
        Span(4800, 4850, 1),
        Span(4850, 4900, 1),
        Span(4900, 4950, 1),
    ]
    assert compactable_end(69, cfg) == 0
    assert compactable_end(70, cfg) == 50
    with pytest.raises(ValueError, match="multiple of chunk"):
        cover(75, 50, 4)


@given(
    chunks=st.integers(min_value=0, max_value=3000),
    chunk=st.integers(min_value=2, max_value=60),
    fanout=st.integers(min_value=2, max_value=9),
)
def test_cover_tiles_with_aligned_spans(chunks: int, chunk: int, fanout: int) -> None:
    end = chunks * chunk
    spans = cover(end, chunk, fanout)
    assert [s.lo for s in spans[1:]] == [s.hi for s in spans[:-1]]  # contiguous
    assert (spans[0].lo if spans else 0) == 0 and (spans[-1].hi if spans else 0) == end
    for s in spans:
        size = chunk * fanout ** (s.level - 1)
        assert s.hi - s.lo == size and s.lo % size == 0  # fixed boundaries
    levels = [s.level for s in spans]
    assert levels == sorted(levels, reverse=True)  # oldest are coarsest
    assert all(levels.count(level) <= fanout - 1 for level in set(levels))
    # A longer transcript only coarsens the old part: every span is still in the new cover
    # or inside a span of it.
    later = cover(end + chunk, chunk, fanout)
    for s in spans:
        assert any(t.lo <= s.lo and s.hi <= t.hi for t in later)


def test_children_and_plan_work_skip_what_is_stored() -> None:
    top = Span(0, 800, 3)
    assert children(top, 4) == [
        Span(0, 200, 2),
        Span(200, 400, 2),
        Span(400, 600, 2),
        Span(600, 800, 2),
    ]
    assert children(Span(0, 50, 1), 4) == []

    everything = plan_work([top], 4, lambda s: False)
    assert len(everything) == 16 + 4 + 1
    assert everything[-1] == top
    position = {s: i for i, s in enumerate(everything)}
    for s in everything:
        for c in children(s, 4):
            assert position[c] < position[s]  # children first

    stored = {Span(0, 200, 2), Span(200, 250, 1)}
    work = plan_work([top], 4, lambda s: s in stored)
    assert Span(0, 200, 2) not in work and Span(0, 50, 1) not in work  # not even its children
    assert Span(200, 250, 1) not in work and Span(250, 300, 1) in work
    assert len(work) == len(everything) - 5 - 1
    assert plan_work([top], 4, lambda s: s == top) == []


# --- the extractive summarizer ------------------------------------------------------------------

CHAT = [
    ("user", "I went to the LGBTQ support group yesterday. It was really powerful."),
    ("assistant", "That sounds wonderful. How did it feel to share your story?"),
    ("user", "Good. My locker code at the gym is 4417, by the way."),
    ("assistant", "Noted. Anything else?"),
    ("user", "The support group meets again on May 7 at the community center."),
    ("assistant", "I will remember the support group date."),
]


def test_extractive_summary_keeps_the_facts_within_budget() -> None:
    text = extractive_summary(CHAT, 40)
    assert count_tokens(text) <= 40
    assert text == extractive_summary(CHAT, 40)  # deterministic
    lines = text.splitlines()
    assert all(line.split(": ", 1)[0] in ("user", "assistant") for line in lines)
    assert any("4417" in line for line in lines)
    assert any("May 7" in line for line in lines)
    # Sentences keep transcript order.
    order = [
        next(i for i, (_, t) in enumerate(CHAT) if line.split(": ", 1)[1] in t) for line in lines
    ]
    assert order == sorted(order)
    # More room, more sentences; the whole chat when it fits.
    assert len(extractive_summary(CHAT, 400).splitlines()) == 10  # every sentence


def test_extractive_summary_edge_cases() -> None:
    assert extractive_summary([], 50) == ""
    assert extractive_summary([("user", "   ")], 50) == ""
    long = "word " * 200
    cut = extractive_summary([("", long)], 20)
    assert 0 < count_tokens(cut) <= 20  # one sentence longer than the budget is cut at a word
    assert extractive_summary([("", "No speaker here.")], 20) == "No speaker here."


def test_truncate_to_tokens() -> None:
    text = "alpha beta gamma delta epsilon"
    assert truncate_to_tokens(text, 100) == text
    words = text.split()
    for limit in range(1, count_tokens(text)):
        cut = truncate_to_tokens(text, limit).split()
        assert words[: len(cut)] == cut  # a prefix, at a word
        assert count_tokens(" ".join(cut)) <= limit < count_tokens(" ".join(words[: len(cut) + 1]))
    assert truncate_to_tokens(text, 0) == ""


# --- summaries in a context ---------------------------------------------------------------------


def test_summary_turn_is_a_system_turn_without_seq() -> None:
    s = summary(100, 150, tokens=count_tokens(render_content(100, 150, "text 100")), level=2)
    turn = summary_turn(s)
    assert turn.role == "system" and turn.seq is None
    assert turn.content == "Summary of turns 100-149:\ntext 100"
    assert turn.tokens == s.tokens == count_tokens(turn.content)
    assert turn.metadata == {
        "summary": {"lo": 100, "hi": 150, "level": 2, "summarizer": "extractive"}
    }
    assert text_budget(100, 150, 200) == 200 - count_tokens(render_content(100, 150, ""))


def test_fit_newest_keeps_a_contiguous_newest_suffix() -> None:
    cover_ = [summary(0, 200, 50), summary(200, 250, 30), summary(250, 300, 30)]
    assert fit_newest(cover_, None, None) == cover_
    assert fit_newest(cover_, 110, None) == cover_
    assert fit_newest(cover_, 109, None) == cover_[1:]
    assert fit_newest(cover_, 60, 1) == cover_[2:]
    assert fit_newest(cover_, 29, None) == []
    assert fit_newest(cover_, None, 0) == []


def test_arrange_puts_covered_system_turns_then_summaries_first() -> None:
    def turn(seq: int, role: str = "user") -> SessionTurn:
        return SessionTurn(role=role, content=f"t{seq}", seq=seq)  # type: ignore[arg-type]

    turns = [turn(0, "system"), turn(40), turn(120), turn(130, "system"), turn(160)]
    summaries = [summary_turn(summary(50, 100)), summary_turn(summary(0, 50))]
    out = arrange(turns, summaries)
    assert [t.content for t in out] == [
        "t0",
        "Summary of turns 0-49:\ntext 0",
        "Summary of turns 50-99:\ntext 50",
        "t40",
        "t120",
        "t130",
        "t160",
    ]
    assert arrange(turns, []) == turns

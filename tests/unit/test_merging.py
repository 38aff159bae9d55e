"""Unit tests for the pure merge planning in ``durable_sessions.core.merging``."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from durable_sessions.core.merging import (
    MERGED_FROM_KEY,
    AppendMerge,
    MergeSpec,
    SelectiveMerge,
    merge_key,
    plan_merge,
    strategy_from_spec,
)
from durable_sessions.models import SessionTurn

SOURCE = "branch-1"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def make_turns(count: int, start_seq: int = 5) -> list[SessionTurn]:
    return [
        SessionTurn(
            turn_id=f"t{i}",
            role="user" if i % 2 == 0 else "assistant",
            content=f"content {i}",
            timestamp=T0,
            tokens=i,
            cost=0.5 * i,
            agent=None if i % 2 == 0 else "bot",
            metadata={"k": i, "nested": {"x": [i]}},
            seq=start_seq + i,
        )
        for i in range(count)
    ]


# --- merge_key -----------------------------------------------------------------------------


def test_merge_key_is_deterministic_and_well_formed() -> None:
    key = merge_key("s", "t")
    assert key == merge_key("s", "t")
    assert re.fullmatch(r"m-[0-9a-f]{30}", key)
    assert len(key) <= 128


def test_merge_key_distinguishes_inputs() -> None:
    keys = {merge_key("s1", "t"), merge_key("s2", "t"), merge_key("s1", "t2")}
    assert len(keys) == 3
    # The separator keeps concatenation ambiguities apart.
    assert merge_key("ab", "c") != merge_key("a", "bc")


def test_merge_key_known_value() -> None:
    # Pinned: changing the derivation would break idempotence for sessions merged earlier.
    digest = hashlib.sha256(b"session\x00turn").hexdigest()
    assert merge_key("session", "turn") == "m-" + digest[:30]


# --- MergeSpec -----------------------------------------------------------------------------


def test_spec_validation() -> None:
    assert MergeSpec(strategy="append").turn_ids is None
    assert MergeSpec(strategy="selective", turn_ids=[]).turn_ids == []
    with pytest.raises(ValidationError, match="needs turn_ids"):
        MergeSpec(strategy="selective")
    with pytest.raises(ValidationError, match="takes no turn_ids"):
        MergeSpec(strategy="append", turn_ids=["a"])
    with pytest.raises(ValidationError):
        MergeSpec.model_validate({"strategy": "squash"})
    with pytest.raises(ValidationError):
        MergeSpec.model_validate({"strategy": "append", "extra": 1})


def test_spec_json_round_trip() -> None:
    spec = MergeSpec(strategy="selective", turn_ids=["a", "b"])
    assert MergeSpec.model_validate_json(spec.model_dump_json()) == spec


# --- strategies ----------------------------------------------------------------------------


def test_append_selects_everything_in_order() -> None:
    turns = make_turns(4)
    selected = AppendMerge().select(turns)
    assert selected == turns
    assert selected is not turns
    assert AppendMerge().to_spec() == MergeSpec(strategy="append")
    assert AppendMerge().resolve(turns) == MergeSpec(strategy="append")


def test_selective_needs_exactly_one_of_ids_and_predicate() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        SelectiveMerge()
    with pytest.raises(ValueError, match="exactly one"):
        SelectiveMerge(turn_ids=["t1"], predicate=lambda turn: True)
    with pytest.raises(ValueError, match="not a single string"):
        SelectiveMerge(turn_ids="t1")


def test_selective_by_ids_keeps_source_order() -> None:
    turns = make_turns(5)
    strategy = SelectiveMerge(turn_ids=["t3", "t1"])
    assert [t.turn_id for t in strategy.select(turns)] == ["t1", "t3"]
    assert strategy.to_spec() == MergeSpec(strategy="selective", turn_ids=["t3", "t1"])
    assert strategy.resolve(turns) == MergeSpec(strategy="selective", turn_ids=["t1", "t3"])


def test_selective_by_ids_rejects_unknown_ids_naming_only_ids() -> None:
    turns = make_turns(3)
    with pytest.raises(ValueError, match=r"\['nope', 'zzz'\]") as info:
        SelectiveMerge(turn_ids=["t0", "zzz", "nope"]).select(turns)
    assert "content" not in str(info.value)


def test_selective_by_predicate_resolves_to_ids_client_side() -> None:
    turns = make_turns(6)
    calls: list[str] = []

    def only_assistant(turn: SessionTurn) -> bool:
        calls.append(turn.turn_id)
        return turn.role == "assistant"

    strategy = SelectiveMerge(predicate=only_assistant)
    with pytest.raises(ValueError, match="resolve"):
        strategy.to_spec()
    assert calls == []  # to_spec evaluates nothing
    spec = strategy.resolve(turns)
    assert spec == MergeSpec(strategy="selective", turn_ids=["t1", "t3", "t5"])
    # Only ids cross the wire: the spec's JSON holds no content.
    assert "content" not in spec.model_dump_json()
    assert [t.turn_id for t in strategy.select(turns)] == ["t1", "t3", "t5"]


def test_strategy_from_spec() -> None:
    assert isinstance(strategy_from_spec(MergeSpec(strategy="append")), AppendMerge)
    rebuilt = strategy_from_spec(MergeSpec(strategy="selective", turn_ids=["a"]))
    assert isinstance(rebuilt, SelectiveMerge)
    assert rebuilt.turn_ids == ("a",)
    assert "turn_ids=['a']" in repr(rebuilt)


# --- plan_merge ----------------------------------------------------------------------------


def test_append_plan_order_ids_and_provenance() -> None:
    turns = make_turns(4)
    planned = plan_merge(SOURCE, turns, MergeSpec(strategy="append"), set())
    assert len(planned) == 4
    for original, copy in zip(turns, planned, strict=True):
        assert copy.turn_id == merge_key(SOURCE, original.turn_id)
        assert copy.seq is None
        assert copy.metadata[MERGED_FROM_KEY] == {
            "session_id": SOURCE,
            "turn_id": original.turn_id,
            "seq": original.seq,
        }
        # Original metadata keys are kept; everything else is copied verbatim.
        assert copy.metadata["k"] == original.metadata["k"]
        assert copy.metadata["nested"] == original.metadata["nested"]
        assert copy.model_dump(exclude={"turn_id", "seq", "metadata"}) == original.model_dump(
            exclude={"turn_id", "seq", "metadata"}
        )


def test_plan_does_not_mutate_inputs() -> None:
    turns = make_turns(2)
    before = [t.model_dump() for t in turns]
    already: set[str] = set()
    planned = plan_merge(SOURCE, turns, MergeSpec(strategy="append"), already)
    planned[0].metadata["nested"]["x"].append("changed")
    assert [t.model_dump() for t in turns] == before
    assert already == set()


def test_planned_turns_are_valid_session_turns() -> None:
    planned = plan_merge(SOURCE, make_turns(3), MergeSpec(strategy="append"), set())
    for turn in planned:
        assert SessionTurn.model_validate_json(turn.model_dump_json()) == turn


def test_merging_twice_adds_nothing() -> None:
    turns = make_turns(4)
    spec = MergeSpec(strategy="append")
    target_ids = {"target-a", "target-b"}
    first = plan_merge(SOURCE, turns, spec, target_ids)
    assert len(first) == 4
    target_ids |= {t.turn_id for t in first}
    assert plan_merge(SOURCE, turns, spec, target_ids) == []


def test_merge_is_incremental_after_branch_grows() -> None:
    turns = make_turns(3)
    spec = MergeSpec(strategy="append")
    first = plan_merge(SOURCE, turns, spec, set())
    grown = make_turns(5)
    second = plan_merge(SOURCE, grown, spec, {t.turn_id for t in first})
    assert [t.metadata[MERGED_FROM_KEY]["turn_id"] for t in second] == ["t3", "t4"]


def test_plan_is_deterministic() -> None:
    turns = make_turns(3)
    spec = MergeSpec(strategy="append")
    assert plan_merge(SOURCE, turns, spec, set()) == plan_merge(SOURCE, turns, spec, set())


def test_same_turns_from_another_source_get_other_ids() -> None:
    turns = make_turns(2)
    spec = MergeSpec(strategy="append")
    a = plan_merge("a", turns, spec, set())
    b = plan_merge("b", turns, spec, {t.turn_id for t in a})
    assert len(b) == 2
    assert {t.turn_id for t in a}.isdisjoint(t.turn_id for t in b)


def test_turn_already_in_target_by_its_own_id_is_skipped() -> None:
    turns = make_turns(3)
    planned = plan_merge(SOURCE, turns, MergeSpec(strategy="append"), {"t1"})
    assert [t.metadata[MERGED_FROM_KEY]["turn_id"] for t in planned] == ["t0", "t2"]


def test_duplicate_source_turn_ids_are_merged_once() -> None:
    turns = make_turns(2)
    planned = plan_merge(SOURCE, [*turns, turns[0]], MergeSpec(strategy="append"), set())
    assert len(planned) == 2


def test_selective_plan() -> None:
    turns = make_turns(5)
    spec = MergeSpec(strategy="selective", turn_ids=["t4", "t0", "t2"])
    planned = plan_merge(SOURCE, turns, spec, set())
    assert [t.metadata[MERGED_FROM_KEY]["turn_id"] for t in planned] == ["t0", "t2", "t4"]
    # Partially merged already: only the rest is added.
    again = plan_merge(SOURCE, turns, spec, {merge_key(SOURCE, "t0")})
    assert [t.metadata[MERGED_FROM_KEY]["turn_id"] for t in again] == ["t2", "t4"]


def test_selective_plan_with_empty_ids_adds_nothing() -> None:
    spec = MergeSpec(strategy="selective", turn_ids=[])
    assert plan_merge(SOURCE, make_turns(3), spec, set()) == []


def test_selective_plan_unknown_ids_raise_even_if_others_are_merged() -> None:
    turns = make_turns(2)
    spec = MergeSpec(strategy="selective", turn_ids=["t0", "before-fork"])
    with pytest.raises(ValueError, match="before-fork"):
        plan_merge(SOURCE, turns, spec, {merge_key(SOURCE, "t0")})


def test_plan_of_predicate_resolution_matches_select() -> None:
    turns = make_turns(6)
    strategy = SelectiveMerge(predicate=lambda turn: (turn.seq or 0) % 3 == 0)
    planned = plan_merge(SOURCE, turns, strategy.resolve(turns), set())
    assert [t.metadata[MERGED_FROM_KEY]["turn_id"] for t in planned] == [
        t.turn_id for t in strategy.select(turns)
    ]


def test_existing_merged_from_is_replaced_by_this_hop() -> None:
    turn = make_turns(1)[0].model_copy(
        update={"metadata": {MERGED_FROM_KEY: {"session_id": "older"}, "keep": True}}
    )
    (planned,) = plan_merge(SOURCE, [turn], MergeSpec(strategy="append"), set())
    assert planned.metadata[MERGED_FROM_KEY]["session_id"] == SOURCE
    assert planned.metadata["keep"] is True


def test_source_turn_without_seq_is_rejected() -> None:
    turn = SessionTurn(turn_id="loose", role="user", content="x", timestamp=T0)
    with pytest.raises(ValueError, match="'loose' has no seq"):
        plan_merge(SOURCE, [turn], MergeSpec(strategy="append"), set())


def test_empty_source_plans_nothing() -> None:
    assert plan_merge(SOURCE, [], MergeSpec(strategy="append"), set()) == []


@given(
    count=st.integers(min_value=0, max_value=12),
    chosen=st.sets(st.integers(min_value=0, max_value=11)),
    merged_before=st.sets(st.integers(min_value=0, max_value=11)),
)
def test_property_plan_then_replan_is_empty(
    count: int, chosen: set[int], merged_before: set[int]
) -> None:
    turns = make_turns(count)
    ids = [f"t{i}" for i in sorted(chosen) if i < count]
    spec = MergeSpec(strategy="selective", turn_ids=ids)
    target = {merge_key(SOURCE, f"t{i}") for i in merged_before}
    planned = plan_merge(SOURCE, turns, spec, target)
    expected = [f"t{i}" for i in range(count) if i in chosen and i not in merged_before]
    assert [t.metadata[MERGED_FROM_KEY]["turn_id"] for t in planned] == expected
    assert plan_merge(SOURCE, turns, spec, target | {t.turn_id for t in planned}) == []

"""Unit tests for the pure turn managers in ``durable_sessions.core.turn_managers``."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from durable_sessions.core.turn_managers import (
    AgentSlot,
    PriorityTurnManager,
    RoundRobinTurnManager,
    TopicBasedTurnManager,
    TurnManager,
    TurnManagerSpec,
    TurnManagerState,
    agents_per_round,
    lexical_topic_scorer,
    manager_from_spec,
    register_topic_scorer,
)
from durable_sessions.models import SessionTurn

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def slot(name: str, priority: int = 0, topics: list[str] | None = None) -> AgentSlot:
    return AgentSlot(name=name, role="assistant", priority=priority, topics=topics or [])


def roster_of(*names: str) -> list[AgentSlot]:
    return [slot(name) for name in names]


def turn(content: str, agent: str | None = None) -> SessionTurn:
    return SessionTurn(role="user", content=content, agent=agent, timestamp=T0, turn_id="x")


def run(
    manager: TurnManager,
    roster: list[AgentSlot],
    ticks: int,
    state: TurnManagerState | None = None,
    recent: list[SessionTurn] | None = None,
) -> tuple[list[str | None], TurnManagerState]:
    state = state or TurnManagerState()
    chosen: list[str | None] = []
    for _ in range(ticks):
        name, state = manager.next_agent(roster, recent or [], state)
        chosen.append(name)
    return chosen, state


def json_round_trip(state: TurnManagerState) -> TurnManagerState:
    return TurnManagerState.model_validate_json(state.model_dump_json())


# --- models --------------------------------------------------------------------------------


def test_agent_slot_defaults_and_validation() -> None:
    agent = AgentSlot(name="a", role="critic")
    assert (agent.priority, agent.topics, agent.private) == (0, [], False)
    with pytest.raises(ValidationError):
        AgentSlot(name="", role="critic")
    with pytest.raises(ValidationError):
        AgentSlot.model_validate({"name": "a", "role": "r", "unknown": 1})


def test_state_round_trips_through_json() -> None:
    _, state = run(PriorityTurnManager(), [slot("a", 2), slot("b", 1), slot("c")], 4)
    restored = json_round_trip(state)
    assert restored == state
    assert restored.ticks == 4
    assert restored.spoken == {"a": 2, "b": 1, "c": 1}


def test_agents_per_round() -> None:
    assert agents_per_round([]) == 0
    assert agents_per_round(roster_of("a", "b", "c")) == 3


# --- common behaviour ----------------------------------------------------------------------

ALL_MANAGERS: list[TurnManager] = [
    RoundRobinTurnManager(),
    PriorityTurnManager(),
    TopicBasedTurnManager(),
]


@pytest.mark.parametrize("manager", ALL_MANAGERS, ids=lambda m: m.kind)
def test_empty_roster_returns_none_and_keeps_state(manager: TurnManager) -> None:
    state = TurnManagerState(ticks=3, last_agent="gone")
    name, new_state = manager.next_agent([], [turn("hello")], state)
    assert name is None
    assert new_state == state


@pytest.mark.parametrize("manager", ALL_MANAGERS, ids=lambda m: m.kind)
def test_duplicate_names_are_rejected(manager: TurnManager) -> None:
    with pytest.raises(ValueError, match=r"duplicate agent names in roster: \['a'\]"):
        manager.next_agent(roster_of("a", "b", "a"), [], TurnManagerState())


@pytest.mark.parametrize("manager", ALL_MANAGERS, ids=lambda m: m.kind)
def test_single_agent_always_speaks(manager: TurnManager) -> None:
    chosen, state = run(manager, roster_of("solo"), 3)
    assert chosen == ["solo"] * 3
    assert state.spoken == {"solo": 3}


@pytest.mark.parametrize("manager", ALL_MANAGERS, ids=lambda m: m.kind)
def test_manager_is_pure(manager: TurnManager) -> None:
    roster = [slot("a", 1, ["x"]), slot("b", 2, ["y"])]
    state = TurnManagerState(last_agent="a", order=["a", "b"], ticks=1, spoken={"a": 1})
    snapshot = state.model_copy(deep=True)
    first = manager.next_agent(roster, [turn("y x")], state)
    second = manager.next_agent(roster, [turn("y x")], state)
    assert first == second
    assert state == snapshot


@pytest.mark.parametrize("manager", ALL_MANAGERS, ids=lambda m: m.kind)
def test_spec_round_trip(manager: TurnManager) -> None:
    spec = manager.to_spec()
    wire = TurnManagerSpec.model_validate_json(spec.model_dump_json())
    rebuilt = manager_from_spec(wire)
    assert type(rebuilt) is type(manager)
    assert rebuilt == manager
    assert rebuilt.kind == spec.kind


def test_state_survives_continue_as_new_mid_run() -> None:
    roster = roster_of("a", "b", "c")
    manager = RoundRobinTurnManager()
    straight, _ = run(manager, roster, 7)
    first, state = run(manager, roster, 4)
    rebuilt = manager_from_spec(
        TurnManagerSpec.model_validate_json(manager.to_spec().model_dump_json())
    )
    rest, _ = run(rebuilt, roster, 3, json_round_trip(state))
    assert first + rest == straight


# --- round robin ---------------------------------------------------------------------------


def test_round_robin_cycles_in_roster_order() -> None:
    chosen, state = run(RoundRobinTurnManager(), roster_of("a", "b", "c"), 7)
    assert chosen == ["a", "b", "c", "a", "b", "c", "a"]
    assert state.ticks == 7
    assert state.last_agent == "a"
    assert state.spoken == {"a": 3, "b": 2, "c": 2}
    assert state.round_spoken == ["a"]


def test_round_robin_ignores_recent_turns() -> None:
    roster = [slot("a", topics=["x"]), slot("b", topics=["y"])]
    chosen, _ = run(RoundRobinTurnManager(), roster, 4, recent=[turn("y y y")])
    assert chosen == ["a", "b", "a", "b"]


def test_round_robin_agent_added_mid_run() -> None:
    manager = RoundRobinTurnManager()
    chosen, state = run(manager, roster_of("a", "b", "c"), 1)  # a
    more, _ = run(manager, roster_of("a", "x", "b", "c"), 5, state)
    assert chosen + more == ["a", "x", "b", "c", "a", "x"]


def test_round_robin_agent_added_behind_current_position() -> None:
    manager = RoundRobinTurnManager()
    _, state = run(manager, roster_of("a", "b", "c"), 2)  # a, b
    more, _ = run(manager, roster_of("x", "a", "b", "c"), 4, state)
    assert more == ["c", "x", "a", "b"]


def test_round_robin_last_speaker_removed_continues_with_its_successor() -> None:
    manager = RoundRobinTurnManager()
    _, state = run(manager, roster_of("a", "b", "c", "d"), 2)  # a, b
    more, _ = run(manager, roster_of("a", "c", "d"), 4, state)
    assert more == ["c", "d", "a", "c"]


def test_round_robin_several_removed_including_last_speaker() -> None:
    manager = RoundRobinTurnManager()
    _, state = run(manager, roster_of("a", "b", "c", "d"), 2)  # a, b
    # a and b leave: the nearest surviving agent before b (wrapping) is d, so c is next.
    more, _ = run(manager, roster_of("c", "d"), 3, state)
    assert more == ["c", "d", "c"]


def test_round_robin_last_of_round_removed_wraps() -> None:
    manager = RoundRobinTurnManager()
    _, state = run(manager, roster_of("a", "b", "c"), 3)  # a, b, c
    more, _ = run(manager, roster_of("a", "b"), 3, state)
    assert more == ["a", "b", "a"]


def test_round_robin_replacement_takes_the_leavers_place() -> None:
    manager = RoundRobinTurnManager()
    _, state = run(manager, roster_of("a", "b", "c"), 2)  # a, b
    more, _ = run(manager, roster_of("a", "x", "c"), 3, state)
    assert more == ["c", "a", "x"]  # x waits for its position to come round


def test_round_robin_everyone_replaced_starts_at_top() -> None:
    manager = RoundRobinTurnManager()
    _, state = run(manager, roster_of("a", "b"), 1)
    more, _ = run(manager, roster_of("x", "y"), 3, state)
    assert more == ["x", "y", "x"]


def test_round_robin_state_without_order_uses_last_agent() -> None:
    manager = RoundRobinTurnManager()
    name, _ = manager.next_agent(roster_of("a", "b", "c"), [], TurnManagerState(last_agent="b"))
    assert name == "c"
    name, _ = manager.next_agent(roster_of("a", "b"), [], TurnManagerState(last_agent="zz"))
    assert name == "a"


@given(
    size=st.integers(min_value=1, max_value=8),
    rounds=st.integers(min_value=1, max_value=6),
    start=st.integers(min_value=0, max_value=20),
)
def test_property_round_robin_k_rounds_gives_k_turns_each(
    size: int, rounds: int, start: int
) -> None:
    roster = roster_of(*(f"agent-{i}" for i in range(size)))
    manager = RoundRobinTurnManager()
    # Start from an arbitrary point of an earlier run.
    _, state = run(manager, roster, start)
    chosen, _ = run(manager, roster, rounds * agents_per_round(roster), state)
    assert Counter(chosen) == {slot.name: rounds for slot in roster}


@given(
    priorities=st.lists(st.integers(min_value=-3, max_value=3), min_size=1, max_size=8),
    rounds=st.integers(min_value=1, max_value=5),
)
def test_property_priority_rounds_give_each_agent_one_turn(
    priorities: list[int], rounds: int
) -> None:
    roster = [slot(f"agent-{i}", p) for i, p in enumerate(priorities)]
    chosen, _ = run(PriorityTurnManager(), roster, rounds * agents_per_round(roster))
    size = len(roster)
    expected_round = [s.name for s in sorted(roster, key=lambda s: -s.priority)]
    for r in range(rounds):
        assert chosen[r * size : (r + 1) * size] == expected_round


# --- priority ------------------------------------------------------------------------------


def test_priority_order_over_several_rounds() -> None:
    roster = [slot("low", 1), slot("high", 10), slot("mid", 5)]
    chosen, state = run(PriorityTurnManager(), roster, 7)
    assert chosen == ["high", "mid", "low", "high", "mid", "low", "high"]
    assert state.round_spoken == ["high"]


def test_priority_ties_keep_roster_order() -> None:
    roster = [slot("b", 1), slot("a", 1), slot("top", 2), slot("c", 1)]
    chosen, _ = run(PriorityTurnManager(), roster, 8)
    assert chosen == ["top", "b", "a", "c"] * 2


def test_priority_agent_added_mid_round_speaks_this_round() -> None:
    manager = PriorityTurnManager()
    roster = [slot("a", 3), slot("b", 2), slot("c", 1)]
    _, state = run(manager, roster, 1)  # a
    bigger = [*roster, slot("urgent", 9)]
    more, _ = run(manager, bigger, 5, state)
    # urgent outranks everyone still waiting, so it goes next; then the round finishes.
    assert more == ["urgent", "b", "c", "urgent", "a"]


def test_priority_agent_removed_mid_round() -> None:
    manager = PriorityTurnManager()
    roster = [slot("a", 3), slot("b", 2), slot("c", 1)]
    _, state = run(manager, roster, 1)  # a
    more, state = run(manager, [slot("a", 3), slot("c", 1)], 3, state)
    assert more == ["c", "a", "c"]
    assert "b" not in state.round_spoken


def test_priority_speaker_removed_after_speaking_round_completes() -> None:
    manager = PriorityTurnManager()
    roster = [slot("a", 3), slot("b", 2)]
    _, state = run(manager, roster, 1)  # a
    # Only "a" is left and it has spoken: a new round starts.
    more, _ = run(manager, [slot("a", 3)], 2, state)
    assert more == ["a", "a"]


def test_priority_change_mid_round_reorders_waiting_agents() -> None:
    manager = PriorityTurnManager()
    _, state = run(manager, [slot("a", 3), slot("b", 2), slot("c", 1)], 1)  # a
    more, _ = run(manager, [slot("a", 3), slot("b", 0), slot("c", 5)], 3, state)
    assert more == ["c", "b", "c"]


def test_priority_state_round_trip_mid_round() -> None:
    manager = PriorityTurnManager()
    roster = [slot("a", 3), slot("b", 2), slot("c", 1)]
    straight, _ = run(manager, roster, 5)
    first, state = run(manager, roster, 2)
    rest, _ = run(manager, roster, 3, json_round_trip(state))
    assert first + rest == straight


# --- topic based ---------------------------------------------------------------------------


def topic_roster() -> list[AgentSlot]:
    return [
        slot("chef", topics=["cooking", "recipes", "food"]),
        slot("coder", topics=["python", "programming", "bugs"]),
        slot("lawyer", topics=["contracts", "law"]),
    ]


def test_lexical_scorer() -> None:
    scores = lexical_topic_scorer(
        "Python bugs, more PYTHON; and Recipes!", ["python, bugs", "cooking, recipes", ""]
    )
    assert scores == [3.0, 1.0, 0.0]
    # Unicode word tokens, case folded.
    assert lexical_topic_scorer("Straße CAFÉ", ["strasse, café"]) == [2.0]


def test_topic_picks_best_matching_agent() -> None:
    manager = TopicBasedTurnManager()
    name, state = manager.next_agent(
        topic_roster(), [turn("I found bugs in my Python programming homework")], TurnManagerState()
    )
    assert name == "coder"
    assert state.last_agent == "coder"
    assert state.spoken == {"coder": 1}


def test_topic_recency_weighting_prefers_newest_turns() -> None:
    manager = TopicBasedTurnManager(window=3, decay=0.5)
    recent = [turn("python python bugs"), turn("a contract question about law")]
    # coder: 3 * 0.5 = 1.5; lawyer: 1 ("law"; "contract" is not "contracts") * 1.0 = 1.0.
    assert manager.scores(topic_roster(), recent) == [0.0, 1.5, 1.0]
    recent = [turn("python bugs"), turn("contracts law")]
    # coder: 2 * 0.5 = 1.0; lawyer: 2 * 1.0 = 2.0.
    name, _ = manager.next_agent(topic_roster(), recent, TurnManagerState())
    assert name == "lawyer"


def test_topic_window_limits_turns_considered() -> None:
    manager = TopicBasedTurnManager(window=1)
    recent = [turn("python python python"), turn("food")]
    assert manager.scores(topic_roster(), recent) == [1.0, 0.0, 0.0]


def test_topic_ties_go_to_roster_order() -> None:
    roster = [slot("first", topics=["alpha"]), slot("second", topics=["alpha"])]
    name, _ = TopicBasedTurnManager().next_agent(roster, [turn("alpha")], TurnManagerState())
    assert name == "first"


def test_topic_avoids_same_agent_twice_when_another_matches() -> None:
    manager = TopicBasedTurnManager()
    recent = [turn("python bugs programming and some food")]
    chosen, _ = run(manager, topic_roster(), 4, recent=recent)
    assert chosen == ["coder", "chef", "coder", "chef"]


def test_topic_only_match_may_speak_again() -> None:
    manager = TopicBasedTurnManager()
    chosen, _ = run(manager, topic_roster(), 3, recent=[turn("python")])
    assert chosen == ["coder", "coder", "coder"]


def test_topic_falls_back_to_round_robin_when_nothing_matches() -> None:
    manager = TopicBasedTurnManager()
    chosen, state = run(manager, topic_roster(), 4, recent=[turn("the weather is nice")])
    assert chosen == ["chef", "coder", "lawyer", "chef"]
    # No turns at all behaves the same way.
    chosen, _ = run(manager, topic_roster(), 2)
    assert chosen == ["chef", "coder"]
    # The fallback continues after whoever spoke last, topic pick or not.
    name, _ = manager.next_agent(
        topic_roster(), [turn("nothing")], state.model_copy(update={"last_agent": "chef"})
    )
    assert name == "coder"


def test_topic_agents_without_topics_never_match() -> None:
    roster = [slot("plain"), slot("coder", topics=["python"])]
    name, _ = TopicBasedTurnManager().next_agent(roster, [turn("python")], TurnManagerState())
    assert name == "coder"


def test_topic_with_custom_scorer_and_registry() -> None:
    def length_scorer(text: str, documents: list[str]) -> list[float]:
        return [float(len(doc)) for doc in documents]

    roster = [slot("short", topics=["ab"]), slot("long", topics=["abcdef"])]
    direct = TopicBasedTurnManager(scorer=length_scorer)
    name, _ = direct.next_agent(roster, [turn("anything")], TurnManagerState())
    assert name == "long"
    with pytest.raises(ValueError, match="register_topic_scorer"):
        direct.to_spec()

    register_topic_scorer("test-length", length_scorer)
    register_topic_scorer("test-length", length_scorer)  # idempotent for the same function
    with pytest.raises(ValueError, match="already registered"):
        register_topic_scorer("test-length", lexical_topic_scorer)
    spec = direct.to_spec()
    assert spec.options["scorer"] == "test-length"
    rebuilt = manager_from_spec(TurnManagerSpec.model_validate_json(spec.model_dump_json()))
    assert rebuilt.next_agent(roster, [turn("anything")], TurnManagerState())[0] == "long"


def test_topic_scorer_misbehaving_is_reported() -> None:
    roster = [slot("a", topics=["x"])]
    wrong_length = TopicBasedTurnManager(scorer=lambda text, docs: [1.0, 2.0])
    with pytest.raises(ValueError, match="returned 2 scores for 1 documents"):
        wrong_length.next_agent(roster, [turn("x")], TurnManagerState())
    nan = TopicBasedTurnManager(scorer=lambda text, docs: [float("nan")])
    with pytest.raises(ValueError, match="non-finite"):
        nan.next_agent(roster, [turn("x")], TurnManagerState())


def test_topic_options_validation() -> None:
    with pytest.raises(ValueError, match="window"):
        TopicBasedTurnManager(window=0)
    with pytest.raises(ValueError, match="decay"):
        TopicBasedTurnManager(decay=0.0)
    with pytest.raises(ValueError, match="decay"):
        TopicBasedTurnManager(decay=1.5)
    with pytest.raises(ValueError, match="unknown topic scorer"):
        TopicBasedTurnManager(scorer="nope")


def test_topic_spec_options() -> None:
    manager = TopicBasedTurnManager(window=5, decay=0.25)
    assert manager.to_spec() == TurnManagerSpec(
        kind="topic", options={"window": 5, "decay": 0.25, "scorer": "lexical"}
    )
    assert manager_from_spec(TurnManagerSpec(kind="topic")) == TopicBasedTurnManager()
    assert manager_from_spec(
        TurnManagerSpec(kind="topic", options={"decay": 1})
    ) == TopicBasedTurnManager(decay=1.0)


# --- specs ---------------------------------------------------------------------------------


def test_spec_errors() -> None:
    with pytest.raises(ValueError, match="unknown turn manager kind 'chaos'"):
        manager_from_spec(TurnManagerSpec(kind="chaos"))
    with pytest.raises(ValueError, match="unknown options"):
        manager_from_spec(TurnManagerSpec(kind="round_robin", options={"x": 1}))
    with pytest.raises(ValueError, match="unknown options"):
        manager_from_spec(TurnManagerSpec(kind="topic", options={"windw": 2}))
    with pytest.raises(ValueError, match="not 'priority'"):
        PriorityTurnManager.from_spec(TurnManagerSpec(kind="round_robin"))
    with pytest.raises(ValueError, match="decay must be a number"):
        manager_from_spec(TurnManagerSpec(kind="topic", options={"decay": "fast"}))
    with pytest.raises(ValueError, match="scorer must be"):
        manager_from_spec(TurnManagerSpec(kind="topic", options={"scorer": 3}))
    with pytest.raises(ValueError, match="window"):
        manager_from_spec(TurnManagerSpec(kind="topic", options={"window": 2.5}))


def test_spec_kinds() -> None:
    assert RoundRobinTurnManager().to_spec() == TurnManagerSpec(kind="round_robin")
    assert PriorityTurnManager().to_spec() == TurnManagerSpec(kind="priority")

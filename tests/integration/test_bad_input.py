"""Bad input, property-based: any text, odd metadata, unknown ids, every transition from every
status. Each call ends in success or a typed error; the session never gets stuck, and no turn is
lost or duplicated."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from durable_sessions.errors import (
    InvalidTransitionError,
    InvalidTurnError,
    SessionClosedError,
    SessionError,
    SessionNotFoundError,
)
from durable_sessions.models import SessionConfig, SessionStatus, SessionTurn
from tests.integration.conftest import Stack

json_leaf = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
metadata = st.dictionaries(
    st.text(max_size=10),
    st.recursive(json_leaf, lambda kids: st.lists(kids, max_size=3), max_leaves=5),
    max_size=4,
)
actions = st.lists(
    st.one_of(
        st.tuples(
            st.just("turn"),
            st.sampled_from(["user", "assistant", "system", "tool", "robot", ""]),
            st.text(min_size=0, max_size=300) | st.just("x" * 3000),
            metadata,
        ),
        st.tuples(
            st.sampled_from(["suspend", "resume", "checkpoint"]), st.none(), st.none(), st.none()
        ),
        st.tuples(st.just("unknown"), st.none(), st.none(), st.none()),
    ),
    min_size=1,
    max_size=12,
)


async def test_any_input_gives_success_or_a_typed_error(stack: Stack) -> None:
    m = stack.manager
    cfg = SessionConfig(max_turn_bytes=2000, flush_interval=0.1)
    s = await m.create("prop", config=cfg)
    accepted: list[tuple[str, str]] = []
    typed = (InvalidTurnError, InvalidTransitionError, SessionNotFoundError, SessionClosedError)
    examples: list[list[tuple[Any, ...]]] = []

    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(actions)
    def collect(batch: list[tuple[Any, ...]]) -> None:
        examples.append(batch)

    collect()  # hypothesis drives generation; the calls run on the test's event loop below
    for batch in examples:
        for action, role, content, meta in batch:
            try:
                if action == "turn":
                    turn = SessionTurn(role=role, content=content, metadata=meta)
                    stored = await m.add_turn(s.session_id, turn)
                    accepted.append((stored.turn_id, content))
                elif action == "unknown":
                    await m.add_turn(uuid.uuid4().hex, SessionTurn(role="user", content="x"))
                else:
                    await getattr(m, action)(s.session_id)
            except ValidationError as exc:
                assert exc.errors()[0]["loc"][0] in ("role", "content", "metadata")
            except typed as exc:
                assert isinstance(exc, SessionError)
                assert content is None or content[:50] not in exc.message or len(content) < 3
    state = await m.get(s.session_id)
    if state.status is SessionStatus.SUSPENDED:
        await m.resume(s.session_id)
    final = await m.add_turn(s.session_id, SessionTurn(role="user", content="still alive"))
    accepted.append((final.turn_id, "still alive"))
    history = await m.history(s.session_id)
    assert [(t.turn_id, t.content) for t in history] == accepted

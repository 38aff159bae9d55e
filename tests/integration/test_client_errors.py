"""What ``SessionManager`` callers get from Temporal failures: typed errors, never a raw one."""

from __future__ import annotations

import pytest

from durable_sessions.errors import SessionError, SessionNotFoundError
from durable_sessions.models import SessionTurn
from tests.integration.conftest import Stack


async def test_a_duplicate_session_id_is_a_session_error(stack: Stack) -> None:
    state = await stack.manager.create("dup-user")
    with pytest.raises(SessionError, match="already exists"):
        await stack.manager.create("dup-user", session_id=state.session_id)


async def test_calls_on_an_unknown_session_are_not_found(stack: Stack) -> None:
    turn = SessionTurn(role="user", content="hi")
    with pytest.raises(SessionNotFoundError):
        await stack.manager.add_turn("no-such-session", turn)
    with pytest.raises(SessionNotFoundError):
        await stack.manager.add_turns("no-such-session", [turn])
    with pytest.raises(SessionNotFoundError):
        await stack.manager.pop_turn("no-such-session")
    with pytest.raises(SessionNotFoundError):
        await stack.manager.tail("no-such-session", 5)

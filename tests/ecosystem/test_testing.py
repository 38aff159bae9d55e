"""``durable_sessions.testing`` as a user would use it: nothing but that module and the API.

These tests deliberately use no fixture of ours: a user's test suite has none of them.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from durable_sessions import SessionStatus, SessionTurn
from durable_sessions.testing import TimeSkippingUnavailableError, session_stack

SETUP_BUDGET = 5.0


async def test_a_session_expires_after_its_ttl_in_virtual_time() -> None:
    started = time.perf_counter()
    async with session_stack(time_skipping=True) as stack:
        setup = time.perf_counter() - started
        assert setup < SETUP_BUDGET, f"stack setup took {setup:.2f} s"

        s = await stack.manager.create("ttl-user", ttl=3600)
        await stack.manager.add_turn(s.session_id, SessionTurn(role="user", content="hello"))
        await stack.manager.add_turn(s.session_id, SessionTurn(role="assistant", content="hi!"))

        await stack.advance(30 * 60)  # half the TTL: still alive, a turn resets the idle timer
        assert (await stack.manager.get(s.session_id)).status == SessionStatus.ACTIVE
        await stack.manager.add_turn(s.session_id, SessionTurn(role="user", content="still here"))

        before = time.perf_counter()
        await stack.advance(2 * 3600)
        assert time.perf_counter() - before < 5, "two virtual hours took real time"

        deadline = time.monotonic() + 10
        while (state := await stack.manager.get(s.session_id)).status != SessionStatus.EXPIRED:
            assert time.monotonic() < deadline, f"still {state.status}"
            await asyncio.sleep(0.05)
        history = await stack.manager.history(s.session_id)
        assert [t.content for t in history] == ["hello", "hi!", "still here"]
        checkpoints = await stack.manager.list_checkpoints(s.session_id)
        assert any(cp.reason == "expire" for cp in checkpoints)


async def test_dev_server_stack_runs_a_session_and_refuses_to_skip_time() -> None:
    started = time.perf_counter()
    async with session_stack() as stack:
        setup = time.perf_counter() - started
        assert setup < SETUP_BUDGET, f"stack setup took {setup:.2f} s"

        s = await stack.manager.create("dev-user", {"topic": "tests"})
        await stack.manager.add_turn(s.session_id, SessionTurn(role="user", content="ping"))
        await stack.manager.add_turn(s.session_id, SessionTurn(role="assistant", content="pong"))
        assert (await stack.manager.close(s.session_id)).status == SessionStatus.CLOSED
        assert [t.content for t in await stack.manager.history(s.session_id)] == ["ping", "pong"]

        with pytest.raises(TimeSkippingUnavailableError, match="time_skipping=True"):
            await stack.advance(1)

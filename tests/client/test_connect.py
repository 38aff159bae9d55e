"""Connecting with no Temporal server to reach: a typed error that says what to do next."""

from __future__ import annotations

import pytest

from durable_sessions import SessionManager, connect
from durable_sessions.errors import TemporalUnavailableError, WorkerUnavailableError
from durable_sessions.stores.memory import InMemorySessionStore
from tests.helpers import free_port


async def test_connect_to_no_server_is_temporal_unavailable_and_says_what_to_do() -> None:
    target = f"127.0.0.1:{free_port()}"
    with pytest.raises(TemporalUnavailableError) as info:
        await connect(target, starting_timeout=0.5)
    err = info.value
    assert isinstance(err, WorkerUnavailableError)  # callers retrying "unavailable" catch it
    assert f"cannot reach Temporal at {target}" in err.message
    assert "durable-sessions dev" in err.message
    assert "DURABLE_SESSIONS_TEMPORAL_ADDRESS" in err.message
    assert isinstance(err.__cause__, RuntimeError)  # the SDK's own error, for the details
    assert "Failed client connect" not in err.message  # its prefix is not repeated


async def test_session_manager_connect_to_no_server_is_temporal_unavailable() -> None:
    with pytest.raises(TemporalUnavailableError, match="cannot reach Temporal"):
        await SessionManager.connect(
            f"127.0.0.1:{free_port()}", store=InMemorySessionStore(), starting_timeout=0.5
        )

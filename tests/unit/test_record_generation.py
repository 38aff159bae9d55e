"""``record_generation`` with stores written before ``add_generation`` took ``prior_head``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from durable_sessions.activities.persistence import add_generation
from durable_sessions.models import SessionState, SessionTurn
from durable_sessions.stores.base import PersistBatch
from durable_sessions.stores.memory import InMemorySessionStore
from durable_sessions.workflows.messages import GenerationRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RECORD = GenerationRecord(
    session_id="s1", generation=1, parent_generation=0, fork_seq=1, prior_head=2
)


class OldStore(InMemorySessionStore):
    """A custom store of an earlier version: ``add_generation`` without the keyword."""

    async def add_generation(  # type: ignore[override]
        self, session_id: str, generation: int, parent_generation: int, fork_seq: int
    ) -> None:
        await super().add_generation(session_id, generation, parent_generation, fork_seq)


class BrokenStore(InMemorySessionStore):
    async def add_generation(
        self,
        session_id: str,
        generation: int,
        parent_generation: int,
        fork_seq: int,
        *,
        prior_head: int | None = None,
    ) -> None:
        raise TypeError("a bug in the store itself")


async def _with_stray(store: InMemorySessionStore) -> None:
    state = SessionState(session_id="s1", user_id="u", created_at=T0, updated_at=T0, turn_count=3)
    turns = [SessionTurn(turn_id=f"t{i}", role="user", content=f"t{i}", seq=i) for i in range(3)]
    await store.persist(PersistBatch(state=state, turns=turns))  # seq 2: past the head of 2


async def test_the_store_gets_prior_head_and_drops_the_stray() -> None:
    store = InMemorySessionStore()
    await _with_stray(store)
    await add_generation(store, RECORD)
    assert await store.get_generation_parent("s1", 1) == (0, 1)
    assert [t.turn_id for t in await store.get_own_turns("s1", 0, 0, 10)] == ["t0", "t1"]


async def test_a_store_without_prior_head_still_records_the_generation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = OldStore()
    await _with_stray(store)
    with caplog.at_level(logging.WARNING, "durable_sessions.activities.persistence"):
        await add_generation(store, RECORD)
    assert await store.get_generation_parent("s1", 1) == (0, 1)
    assert len(await store.get_own_turns("s1", 0, 0, 10)) == 3  # left as it was
    assert "OldStore.add_generation takes no prior_head" in caplog.text


async def test_a_type_error_of_the_store_itself_is_not_swallowed() -> None:
    with pytest.raises(TypeError, match="a bug in the store itself"):
        await add_generation(BrokenStore(), RECORD)

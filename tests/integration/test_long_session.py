"""A 10,000-turn session of ~2 KB turns (~20 MB of text) end to end, with flaky flushes."""

from __future__ import annotations

import asyncio
import random

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from durable_sessions.client import SessionManager
from durable_sessions.models import SessionConfig, SessionTurn
from durable_sessions.stores.base import PersistBatch, SessionStore, read_transcript
from durable_sessions.worker import create_worker
from tests.helpers import assert_eventually

TURNS = 10_000
SUGGESTED_CAN_EVENTS = 4096  # Temporal's default limit.historyCount.suggestContinueAsNew
SUGGESTED_CAN_BYTES = 4 * 1024 * 1024  # ... and limit.historySize.suggestContinueAsNew
PAYLOAD_WARN = 256 * 1024


class FlakyStore:
    """Wraps a store: every 7th flush fails *after* writing, as if the ack were lost."""

    def __init__(self, inner: SessionStore) -> None:
        self.inner = inner
        self.calls = 0
        self.failures = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def persist(self, batch: PersistBatch) -> None:
        await self.inner.persist(batch)
        self.calls += 1
        if self.calls % 7 == 0:
            self.failures += 1
            raise ConnectionError("injected: connection lost after commit")


def text(rng: random.Random, size: int = 2000) -> str:
    words = ["alpha", "beta", "gamma", "delta", "kappa", "sigma", "omega", "tau", "rho", "phi"]
    out: list[str] = []
    length = 0
    while length < size:
        w = rng.choice(words) + str(rng.randrange(1000))
        out.append(w)
        length += len(w) + 1
    return " ".join(out)[:size]


async def test_ten_thousand_turns(client: Client, store: SessionStore, task_queue: str) -> None:
    flaky = FlakyStore(store)
    config = SessionConfig(auto_checkpoint_interval=1000)
    manager = SessionManager(client, store, config, task_queue)
    rng = random.Random(7)
    contents = [f"{i:05d} {text(rng)}" for i in range(TURNS)]
    async with create_worker(client, flaky, task_queue=task_queue):  # type: ignore[arg-type]
        s = await manager.create("long-user")
        queue = iter(range(TURNS))

        async def sender() -> None:
            for i in queue:
                await manager.add_turn(s.session_id, SessionTurn(role="user", content=contents[i]))

        await asyncio.gather(*(sender() for _ in range(8)))

        async def flushed() -> None:
            header = await store.get_session(s.session_id)
            assert header is not None and header.turn_count == TURNS

        await assert_eventually(flushed, timeout=60)
        history = await manager.history(s.session_id)

    assert flaky.failures > 10  # retries really happened
    assert len(history) == TURNS
    assert [t.seq for t in history] == list(range(TURNS))
    assert sorted(t.content for t in history) == contents  # every turn, once
    assert len({t.turn_id for t in history}) == TURNS
    stored = await read_transcript(store, s.session_id)
    assert len(stored) == TURNS

    # Every run stayed within Temporal's suggested size, and no payload came near the limit.
    runs = [r async for r in client.list_workflows(f"WorkflowId = '{s.session_id}'")]
    assert len(runs) >= 5
    largest_payload = 0
    for run in runs:
        handle = client.get_workflow_handle(s.session_id, run_id=run.run_id)
        events = (await handle.fetch_history()).events
        assert len(events) < SUGGESTED_CAN_EVENTS
        assert sum(e.ByteSize() for e in events) < SUGGESTED_CAN_BYTES
        for e in events:
            if e.event_type in (
                EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
                EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
                EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
                EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
                EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
            ):
                largest_payload = max(largest_payload, e.ByteSize())
    assert largest_payload < PAYLOAD_WARN, largest_payload

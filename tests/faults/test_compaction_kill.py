"""kill -9 of a worker process while its context activity writes summaries (compaction).

The summarizer is an agent that takes 0.25 s per summary and signs each one with its process
id. The worker is killed once a third of the summaries are stored; a new worker process takes
the retried activity. Each range must end up stored exactly once, nothing stored before the
kill rewritten, and nothing stored before the kill summarized again.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from durable_sessions.activities.context import ContextRequest, ContextResult
from durable_sessions.core.compaction import cover, plan_work
from durable_sessions.models import CompactionConfig, SessionState, SessionTurn
from durable_sessions.stores.base import PersistBatch
from durable_sessions.stores.postgres import PostgresSessionStore
from durable_sessions.worker import workflow_runner
from tests.faults.compaction_probe import CompactionProbe, ProbeInput
from tests.helpers import assert_eventually
from tests.processes import WorkerProcess

TURNS = 400
CONFIG = CompactionConfig(
    budget_tokens=600,
    chunk_turns=20,
    fanout=4,
    keep_recent_turns=0,
    summary_tokens=100,
    summarizer="slow-scribe",
)
KILL_AFTER = 8


async def rows(store: PostgresSessionStore) -> dict[tuple[int, int], tuple[str, datetime]]:
    pool = await store._get_pool()
    found = await pool.fetch(
        f'SELECT lo, hi, content, created_at FROM "{store.schema}".summaries'
        " WHERE session_id = 'victim' AND generation = 0"
    )
    return {(r["lo"], r["hi"]): (r["content"], r["created_at"]) for r in found}


async def test_a_summarizer_killed_mid_way_writes_each_summary_once(
    temporal_env: WorkflowEnvironment, pg_url: tuple[str, str], task_queue: str, tmp_path: Path
) -> None:
    dsn, schema = pg_url
    store = PostgresSessionStore(dsn, schema=schema)
    await store.setup()
    now = datetime.now(UTC)
    turns = [
        SessionTurn(role="user", content=f"Turn {i} mentions item {i % 13}.", seq=i)
        for i in range(TURNS)
    ]
    header = SessionState(
        session_id="victim", user_id="u", created_at=now, updated_at=now, turn_count=TURNS
    )
    await store.persist(PersistBatch(state=header, turns=turns))
    log = tmp_path / "scribe.log"
    log.touch()
    worker = WorkerProcess(
        temporal_env,
        task_queue,
        f"{dsn}?schema={schema}",
        tmp_path,
        agents="tests.faults.compaction_agents:agents",
        test_scribe_log=str(log),
    )
    worker.start()
    probe_queue = f"probe-{uuid.uuid4().hex[:8]}"
    client = temporal_env.client
    try:
        async with Worker(
            client,
            task_queue=probe_queue,
            workflows=[CompactionProbe],
            workflow_runner=workflow_runner(),
        ):
            request = ContextRequest(
                session_id="victim",
                generation=0,
                turn_count=TURNS,
                query="item 7",
                max_turns=None,
                compaction=CONFIG,
            )
            handle = await client.start_workflow(
                CompactionProbe.run,
                ProbeInput(request=request, task_queue=task_queue),
                id=f"probe-{uuid.uuid4().hex}",
                task_queue=probe_queue,
            )

            async def enough_stored() -> None:
                assert len(await rows(store)) >= KILL_AFTER

            await assert_eventually(enough_stored, timeout=60, interval=0.02)
            t0 = time.monotonic()
            worker.kill9()
            before_kill = await rows(store)
            await asyncio.sleep(0.5)
            worker.start()
            t1 = time.monotonic()
            result: ContextResult = await asyncio.wait_for(handle.result(), 90)
            print(f"restart {t1 - t0:.1f}s, retried attempt done {time.monotonic() - t1:.1f}s")
        final = await rows(store)
    finally:
        worker.stop()
        await store.close()

    targets = cover(TURNS, CONFIG.chunk_turns, CONFIG.fanout)
    planned = {(s.lo, s.hi) for s in plan_work(targets, CONFIG.fanout, lambda s: False)}
    assert len(planned) == 20 + 5 + 1
    assert set(final) == planned  # every range stored, once (the key is the range)
    assert KILL_AFTER <= len(before_kill) < len(planned)  # the kill really came mid-way
    for key, stored in before_kill.items():
        assert final[key] == stored  # nothing stored before the kill was rewritten

    calls = [line.split() for line in log.read_text().splitlines()]
    pids = list(dict.fromkeys(pid for pid, _, _ in calls))
    assert len(pids) == 2  # the first attempt, killed, and the retry on the new process
    first, second = pids
    by_range = Counter((int(lo), int(last) + 1) for _, lo, last in calls)
    redone = [r for r, n in by_range.items() if n > 1]
    assert len(redone) <= 1  # at most the summary in flight at the kill was asked twice
    retried = {(int(lo), int(last) + 1) for pid, lo, last in calls if pid == second}
    assert not retried & set(before_kill)  # what was stored was never summarized again
    writers = {key: content.split("]")[0].lstrip("[") for key, (content, _) in final.items()}
    assert {key for key, pid in writers.items() if pid == first} >= set(before_kill)
    assert all(writers[key] == second for key in planned - set(before_kill) - set(redone))
    assert result.summarized == sum(1 for pid in writers.values() if pid == second) > 0
    assert [(r.lo, r.hi) for r in result.summaries] == [(s.lo, s.hi) for s in targets]

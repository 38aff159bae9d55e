"""Record workflow histories for the replay tests (``tests/histories/*.json``).

Run after a deliberate, versioned change to workflow code, then commit the new files beside the
old ones (old histories must keep replaying: that is what guards in-flight sessions). Existing
files are kept unless ``--force``::

    python scripts/record_histories.py
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

from temporalio.client import Client, WorkflowHandle

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from examples.agents import team  # noqa: E402
from tests.conftest import start_dev_server  # noqa: E402
from tests.helpers import assert_eventually  # noqa: E402

from durable_sessions.branches import BranchManager  # noqa: E402
from durable_sessions.client import SessionManager  # noqa: E402
from durable_sessions.errors import CheckpointNotFoundError, InvalidTurnError  # noqa: E402
from durable_sessions.group import GroupSession  # noqa: E402
from durable_sessions.models import Checkpoint, SessionConfig, SessionTurn  # noqa: E402
from durable_sessions.stores.base import PersistBatch  # noqa: E402
from durable_sessions.stores.memory import InMemorySessionStore  # noqa: E402
from durable_sessions.worker import create_worker  # noqa: E402

OUT = ROOT / "tests" / "histories"


FORCE = "--force" in sys.argv


async def save(client: Client, session_id: str, name: str, *, run_id: str | None = None) -> None:
    """Write a history unless one of that name exists: old histories guard old sessions."""
    if (OUT / f"{name}.json").exists() and not FORCE:
        print(f"kept {name} (recorded earlier; --force re-records)", file=sys.stderr)
        return
    handle: WorkflowHandle[object, object] = client.get_workflow_handle(session_id, run_id=run_id)
    history = await handle.fetch_history()
    (OUT / f"{name}.json").write_text(history.to_json())
    print(f"recorded {name}: {len(history.events)} events", file=sys.stderr)


async def current_run(client: Client, session_id: str) -> str:
    return (await client.get_workflow_handle(session_id).describe()).run_id


async def next_run(client: Client, session_id: str, after: str) -> str:
    """The session's run once it is no longer ``after`` (an idle continue-as-new has run)."""

    async def moved_on() -> str:
        run = await current_run(client, session_id)
        assert run != after
        return run

    return await assert_eventually(moved_on, timeout=30)


class FlakyStore(InMemorySessionStore):
    """The in-memory store, made to refuse the next ``fail_next`` writes."""

    fail_next = 0

    async def persist(self, batch: PersistBatch) -> bool:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ConnectionError("store down (recorded on purpose)")
        return await super().persist(batch)


async def _fully_stored(store: InMemorySessionStore, session_id: str, turns: int) -> None:
    header = await store.get_session(session_id)
    assert header is not None
    assert header.turn_count == turns


async def record_idle_continue(
    m: SessionManager,
    turns: int,
    first_name: str,
    continued_name: str | None,
    *,
    halfway: bool = False,
) -> None:
    """A session given ``turns`` turns (and, ``halfway``, a signal 0.6 s into the quiet, which
    sends the idle timer back to sleep), then quiet until its run continues as new (both runs
    recorded under the two names), then a turn into the minimal run and a close."""
    client = m.client
    cfg = SessionConfig(idle_continue_after=1.0, flush_interval=0.1)
    s = await m.create("recorder", config=cfg)
    first_run = await current_run(client, s.session_id)
    for i in range(turns):
        await m.add_turn(s.session_id, SessionTurn(role="user", content=f"i{i}"))
    if halfway:
        await asyncio.sleep(0.6)
        await m.send_turn(s.session_id, SessionTurn(role="user", content="halfway"))
    second_run = await next_run(client, s.session_id, first_run)
    await m.add_turn(s.session_id, SessionTurn(role="user", content="after idle"))
    await m.close(s.session_id)
    await client.get_workflow_handle(s.session_id).result()
    await save(client, s.session_id, first_name, run_id=first_run)
    if continued_name is not None:
        await save(client, s.session_id, continued_name, run_id=second_run)


async def record_arrival_order(m: SessionManager, client: Client) -> None:
    """Runs of features 9 under contention: every operation queued behind another, with
    messages queued behind it (``_patches.ARRIVAL_ORDER``)."""
    branches = BranchManager(m)
    s = await m.create("recorder", config=SessionConfig(flush_interval=0.2))
    sid = s.session_id
    await m.add_turns(
        sid, [SessionTurn(role="user", content=f"a{i}", turn_id=f"a{i}") for i in range(6)]
    )
    source = await branches.create_branch(sid, "source")
    await m.add_turn(source.session_id, SessionTurn(role="user", content="from the source"))

    async def signals(tag: str) -> None:
        for i in range(3):
            await m.send_turn(sid, SessionTurn(role="user", content=f"{tag} {i}"))

    async def turns(tag: str) -> None:
        for i in range(3):
            await m.add_turn(sid, SessionTurn(role="user", content=f"{tag} {i}"))

    await asyncio.gather(
        m.truncate(sid, 4),
        branches.create_branch(sid, "queued", at_seq=2),
        signals("behind branch"),
        branches.merge(source.session_id, sid),
        turns("behind merge"),
    )
    await m.add_turn(sid, SessionTurn(role="assistant", content="an answer"))
    await asyncio.gather(m.regenerate(sid, agent="researcher"), turns("behind regenerate"))
    await m.close(source.session_id)
    await m.close(sid)
    await client.get_workflow_handle(sid).result()
    await save(client, sid, "arrival_order_v9")

    group = await GroupSession.create(m, "recorder", max_attempts=1)
    await group.add_agent("researcher")
    await group.add_agent("critic")

    async def group_signals() -> None:
        for i in range(4):
            await m.send_turn(group.session_id, SessionTurn(role="user", content=f"g{i}"))

    await asyncio.gather(group.run(rounds=2), group_signals())
    await m.close(group.session_id)
    await client.get_workflow_handle(group.session_id).result()
    await save(client, group.session_id, "group_ticks_v9")

    # The TTL and the idle continue-as-new, decided by counts (a touch, a message while the
    # timer ran sends it back to sleep): a turn halfway through each timer, then quiet.
    s = await m.create("recorder", ttl=1.0)
    await m.add_turn(s.session_id, SessionTurn(role="user", content="soon idle"))
    await asyncio.sleep(0.5)
    await m.send_turn(s.session_id, SessionTurn(role="user", content="halfway"))
    await client.get_workflow_handle(s.session_id).result()
    await save(client, s.session_id, "ttl_expiry_v9")

    await record_idle_continue(m, 12, "idle_continue_v9", None, halfway=True)


async def record_idle_pays(m: SessionManager, client: Client) -> None:
    """Runs of features 10 (``_patches.IDLE_CONTINUE_PAYS``): a session created with two turns
    stays in its run through a quiet longer than ``idle_continue_after`` (it has not grown to
    40 events), takes a turn and closes; one that grew (12 turns) continues as new."""
    cfg = SessionConfig(idle_continue_after=1.0, flush_interval=0.1)
    s = await m.create("recorder", config=cfg)
    run = await current_run(client, s.session_id)
    for i in range(2):
        await m.add_turn(s.session_id, SessionTurn(role="user", content=f"s{i}"))
    await asyncio.sleep(2.5)
    await m.add_turn(s.session_id, SessionTurn(role="user", content="after the quiet"))
    await m.close(s.session_id)
    await client.get_workflow_handle(s.session_id).result()
    assert await current_run(client, s.session_id) == run
    await save(client, s.session_id, "short_idle_v10")
    await record_idle_continue(m, 12, "idle_continue_v10", "idle_continued_run_v10", halfway=True)


async def record_cold_visits(m: SessionManager, client: Client) -> None:
    """Runs of features 12 (``_patches.COLD_VISITS``): a session created with one turn (stored
    in the creation's own task), a turn right after (batched: flush timer), a batch after a
    quiet second (stored in its task), a signal after a quiet second with an update right
    behind it (both batched: a signal's turn is never a cold visit), a burst of concurrent
    turns after a quiet second, then enough turns to grow the run, quiet until it continues
    as new, and a cold visit into the continued run (its first update) before a close."""
    cfg = SessionConfig(idle_continue_after=1.0, flush_interval=0.3)
    s = await m.create("recorder", config=cfg)
    sid = s.session_id
    first_run = await current_run(client, sid)
    await m.add_turn(sid, SessionTurn(role="user", content="created"))
    await m.add_turn(sid, SessionTurn(role="assistant", content="right after"))
    await asyncio.sleep(1.5)
    await m.add_turns(sid, [SessionTurn(role="user", content=f"back {i}") for i in range(2)])
    await asyncio.sleep(1.5)
    await m.send_turn(sid, SessionTurn(role="user", content="cold signal"))
    await m.add_turn(sid, SessionTurn(role="assistant", content="behind the signal"))
    await asyncio.sleep(1.5)
    await asyncio.gather(
        *(m.add_turn(sid, SessionTurn(role="user", content=f"burst {i}")) for i in range(6))
    )
    for i in range(8):
        await m.add_turn(sid, SessionTurn(role="user", content=f"grow {i}"))
    second_run = await next_run(client, sid, first_run)
    await asyncio.sleep(0.2)
    await m.add_turn(sid, SessionTurn(role="user", content="into the new run"))
    await m.add_turn(sid, SessionTurn(role="assistant", content="and right after"))
    await m.close(sid)
    await client.get_workflow_handle(sid).result()
    await save(client, sid, "cold_visit_v12", run_id=first_run)
    await save(client, sid, "cold_visit_continued_v12", run_id=second_run)


async def record_visit_answers(m: SessionManager, client: Client) -> None:
    """Runs of features 13 (``_patches.VISIT_ANSWERS``): a session created with one turn (stored
    in its task), its answer half a second later (stored in its task too), a third turn right
    after (batched: flush timer); after a quiet second a batch (stored) and its answer (stored);
    after another, a burst of three concurrent turns (its first task stored, the next as the
    visit's answer, any later one batched); after another, a signal's turn (batched, with the
    auto checkpoint of the tenth turn) and an update behind it (batched), then an update a
    little later (no visit going on: batched) and turns to grow the run; quiet until it
    continues as new, then a turn, its answer and a third in the new run before a close."""
    cfg = SessionConfig(idle_continue_after=1.0, flush_interval=0.3)
    s = await m.create("recorder", config=cfg)
    sid = s.session_id
    first_run = await current_run(client, sid)

    def turn(text: str, role: str = "user") -> SessionTurn:
        return SessionTurn(role=role, content=text)

    await m.add_turn(sid, turn("created"))
    await asyncio.sleep(0.5)
    await m.add_turn(sid, turn("its answer", "assistant"))
    await m.add_turn(sid, turn("right after"))
    await asyncio.sleep(1.5)
    await m.add_turns(sid, [turn(f"back {i}") for i in range(2)])
    await m.add_turn(sid, turn("answer back", "assistant"))
    await asyncio.sleep(1.5)
    await asyncio.gather(*(m.add_turn(sid, turn(f"burst {i}")) for i in range(3)))
    await asyncio.sleep(1.5)
    await m.send_turn(sid, turn("cold signal"))
    await m.add_turn(sid, turn("behind the signal", "assistant"))
    await asyncio.sleep(0.6)
    await m.add_turn(sid, turn("after the signal's batch"))
    for i in range(8):
        await m.add_turn(sid, turn(f"grow {i}"))
    # The quiet after the burst may have continued the run as new already (it had grown past
    # the idle watch's 40 events): the signal's part is then the next run's.
    grown_run = await current_run(client, sid)
    last_run = await next_run(client, sid, grown_run)
    await asyncio.sleep(0.2)
    await m.add_turn(sid, turn("into the new run"))
    await asyncio.sleep(0.3)
    await m.add_turn(sid, turn("its answer", "assistant"))
    await m.add_turn(sid, turn("and right after"))
    await m.close(sid)
    await client.get_workflow_handle(sid).result()
    await save(client, sid, "visit_answers_v13", run_id=first_run)
    if grown_run != first_run:
        await save(client, sid, "visit_answers_signal_v13", run_id=grown_run)
    await save(client, sid, "visit_answers_continued_v13", run_id=last_run)


async def history_length(client: Client, session_id: str, run_id: str) -> int:
    handle: WorkflowHandle[object, object] = client.get_workflow_handle(session_id, run_id=run_id)
    return len((await handle.fetch_history()).events)


async def record_full_run_idle(m: SessionManager, client: Client) -> None:
    """Runs of features 14 (``_patches.FULL_RUN_IDLE``): turns until the run is full (50
    events) and continues as new; turns into the next run until it holds 16-39 events; quiet
    until it continues as new (an idle continue-as-new from 16 events, as the size
    continue-as-new started it); then a turn into the minimal run and a close. All three runs
    recorded."""
    cfg = SessionConfig(idle_continue_after=1.0, flush_interval=0.3, max_events_per_run=50)
    s = await m.create("recorder", config=cfg)
    sid = s.session_id
    full_run = await current_run(client, sid)
    i = 0
    while await current_run(client, sid) == full_run:
        await m.add_turn(sid, SessionTurn(role="user", content=f"filling {i}"))
        i += 1
    after_full = await current_run(client, sid)
    while await history_length(client, sid, after_full) < 20:
        await m.add_turn(sid, SessionTurn(role="user", content=f"after the full run {i}"))
        i += 1
    minimal = await next_run(client, sid, after_full)
    events = await history_length(client, sid, after_full)
    assert 16 <= events < 40, f"the run after the full one idled at {events} events"
    await m.add_turn(sid, SessionTurn(role="user", content="into the minimal run"))
    await m.close(sid)
    await client.get_workflow_handle(sid).result()
    await save(client, sid, "full_run_v14", run_id=full_run)
    await save(client, sid, "full_run_idle_v14", run_id=after_full)
    await save(client, sid, "full_run_idled_v14", run_id=minimal)


async def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    env = await start_dev_server()
    store = FlakyStore()
    client = env.client
    m = SessionManager(client, store, SessionConfig(flush_interval=0.2), "record")
    try:
        async with create_worker(client, store, task_queue="record", agents=team()):  # type: ignore[arg-type]
            # 0. Runs of this version (features in the input, no patch markers): serialized
            # operations with turns racing them (restore, truncate, pop, edit, merge, branch at
            # a turn, regenerate), a batch of turns, then close.
            one_run = SessionConfig(auto_checkpoint_interval=4, max_events_per_run=3000)
            s = await m.create("recorder", config=one_run)
            sid = s.session_id
            await m.add_turns(
                sid, [SessionTurn(role="user", content=f"b{i}", turn_id=f"b{i}") for i in range(6)]
            )
            cp = await m.checkpoint(sid)

            async def racer(c: int) -> None:
                for i in range(3):
                    await m.add_turn(sid, SessionTurn(role="user", content=f"race {c}-{i}"))

            await asyncio.gather(
                racer(0), racer(1), m.restore(cp.checkpoint_id), m.truncate(sid, 5), racer(2)
            )
            await m.pop_turn(sid)
            await m.edit(sid, 2, "edited", mode="rewind")
            alt = await BranchManager(m).create_branch(sid, "at-turn", at_seq=2)
            await m.add_turn(alt.session_id, SessionTurn(role="user", content="on the branch"))
            await BranchManager(m).merge(alt.session_id, sid)
            await m.add_turn(sid, SessionTurn(role="assistant", content="first answer"))
            await m.regenerate(sid, agent="researcher")
            await m.close(alt.session_id)
            await m.close(sid)
            await client.get_workflow_handle(sid).result()
            await save(client, sid, "operations_v2")

            # 0b. Idle continue-as-new: a run that grew (12 turns), went quiet and continued
            # into a minimal run (both runs recorded), then a turn into the minimal run.
            await record_idle_continue(m, 12, "idle_continue_v2", "idle_continued_run_v2")

            # 0c. Features 3: a session created by the client (header stored by the client, the
            # run started without waiting) with only two turns continues as new from 18 events.
            # (Runs of features 10 no longer do: recorded only while the file is missing,
            # which this code cannot do; ``record_idle_pays`` records what they do instead.)
            if not (OUT / "small_idle_v3.json").exists():
                await record_idle_continue(m, 2, "small_idle_v3", "small_idle_continued_v3")

            # 0d. Single-batch activations (workflow logic flag 2, set by the plugin): updates
            # rejected by their validator while a restore awaits its activities, so rejected
            # updates share workflow tasks with activity results.
            cfg = SessionConfig(max_turn_bytes=64, max_events_per_run=3000)
            s = await m.create("recorder", config=cfg)
            sid = s.session_id
            for i in range(3):
                await m.add_turn(sid, SessionTurn(role="user", content=f"kept {i}"))
            cp = await m.checkpoint(sid)
            await m.add_turn(sid, SessionTurn(role="user", content="rewound"))

            async def rejected() -> None:
                for _ in range(20):
                    with contextlib.suppress(InvalidTurnError):
                        await m.add_turn(sid, SessionTurn(role="user", content="x" * 100))

            await asyncio.gather(m.restore(cp.checkpoint_id), rejected(), rejected())
            await m.add_turn(sid, SessionTurn(role="user", content="after"))
            await m.close(sid)
            await client.get_workflow_handle(sid).result()
            await save(client, sid, "single_batch_v3")

            # 0e. Features 6: a run that fills up (50 events) continues as new without flushing
            # first; its pending turns and auto checkpoints go over in the input, and the next
            # run stores them (both runs recorded; a signal and a checkpoint after).
            cfg = SessionConfig(
                max_events_per_run=50, flush_interval=30, auto_checkpoint_interval=3
            )
            s = await m.create("recorder", config=cfg)
            sid = s.session_id
            first_run = await current_run(client, sid)
            for i in range(12):
                await m.add_turn(sid, SessionTurn(role="user", content=f"carried {i}"))
            await m.send_turn(sid, SessionTurn(role="assistant", content="by signal"))
            await m.checkpoint(sid)
            await m.close(sid)
            await client.get_workflow_handle(sid).result()
            await save(client, sid, "carry_over_v6", run_id=first_run)
            await save(client, sid, "carry_over_continued_v6")

            # 0f. A checkpoint of the current generation past the head, as a flush of a
            # workflow task that then timed out leaves one (model run 15): restoring it and
            # branching from it are refused (the patch marker), then a real restore.
            s = await m.create("recorder", config=SessionConfig(flush_interval=0.1))
            sid = s.session_id
            for i in range(3):
                await m.add_turn(sid, SessionTurn(role="user", content=f"head {i}"))
            real = await m.checkpoint(sid)
            await assert_eventually(lambda: _fully_stored(store, sid, 3), timeout=30)
            header = await store.get_session(sid)
            assert header is not None
            phantom = Checkpoint(
                checkpoint_id=f"{sid}-phantom",
                session_id=sid,
                generation=header.generation,
                turn_count=5,
                reason="auto",
                created_at=header.updated_at,
            )
            await store.persist(PersistBatch(state=header, checkpoints=[phantom]))
            with contextlib.suppress(CheckpointNotFoundError):
                await m.restore(phantom.checkpoint_id)
                raise AssertionError("a checkpoint past the head was restored")
            with contextlib.suppress(CheckpointNotFoundError):
                await BranchManager(m).create_branch(sid, "phantom", phantom.checkpoint_id)
                raise AssertionError("a branch forked past the head")
            await m.add_turn(sid, SessionTurn(role="user", content="head 3"))
            await m.restore(real.checkpoint_id)
            await m.close(sid)
            await client.get_workflow_handle(sid).result()
            await save(client, sid, "no_checkpoint_past_head_v6")

            # 0g. Features 9 (the operation lock in message order, woken work first): a branch
            # and a merge that queue behind a truncate with turns and signals racing them, a
            # regenerate raced by turns, group ticks raced by signals, then close.
            await record_arrival_order(m, client)

            # 0h. Features 10: idle runs continue as new from 40 events again.
            await record_idle_pays(m, client)

            # 0i. Features 12: cold visits stored in the task that brings them.
            await record_cold_visits(m, client)

            # 0j. Features 13: a visit's answer stored in its own task too.
            await record_visit_answers(m, client)

            # 0k. Features 14: a run a size continue-as-new started idles on from 16 events.
            await record_full_run_idle(m, client)

            # 1. The lifecycle: turns by update and signal, suspend, resume, checkpoint, close.
            s = await m.create("recorder", {"topic": "replay"})
            for i in range(4):
                await m.add_turn(s.session_id, SessionTurn(role="user", content=f"turn {i}"))
            await m.add_turn(s.session_id, SessionTurn(turn_id="dup", role="user", content="d"))
            await m.add_turn(s.session_id, SessionTurn(turn_id="dup", role="user", content="d"))
            await m.send_turn(s.session_id, SessionTurn(role="assistant", content="by signal"))
            await m.suspend(s.session_id)
            await m.resume(s.session_id)
            await m.checkpoint(s.session_id)
            await m.close(s.session_id)
            await client.get_workflow_handle(s.session_id).result()
            await save(client, s.session_id, "lifecycle")

            # 2. Idle TTL expiry.
            s = await m.create("recorder", ttl=1.0)
            await m.add_turn(s.session_id, SessionTurn(role="user", content="soon idle"))
            await client.get_workflow_handle(s.session_id).result()
            await save(client, s.session_id, "ttl_expiry")

            # 3. In-place restore to an automatic checkpoint, then more turns.
            s = await m.create("recorder", config=SessionConfig(auto_checkpoint_interval=5))
            for i in range(7):
                await m.add_turn(s.session_id, SessionTurn(role="user", content=f"r{i}"))

            async def has_checkpoint() -> str:
                cps = await store.list_checkpoints(s.session_id)
                assert cps
                return cps[0].checkpoint_id

            cp_id = await assert_eventually(has_checkpoint)
            await m.restore(cp_id)
            await m.add_turn(s.session_id, SessionTurn(role="user", content="after restore"))
            await m.close(s.session_id)
            await client.get_workflow_handle(s.session_id).result()
            await save(client, s.session_id, "restore_in_place")

            # 4. A run that continues-as-new (first run's history).
            cfg = SessionConfig(max_updates_per_run=15, flush_interval=0.1)
            s = await m.create("recorder", config=cfg)
            first_run = await current_run(client, s.session_id)
            for i in range(20):
                await m.add_turn(s.session_id, SessionTurn(role="user", content=f"c{i}"))
            await m.close(s.session_id)
            await save(client, s.session_id, "continue_as_new", run_id=first_run)

            # 5. A branch (child workflow) and a merge back into the parent.
            branches = BranchManager(m)
            root = await m.create("recorder")
            await m.add_turn(root.session_id, SessionTurn(role="user", content="shared"))
            child = await branches.create_branch(root.session_id, "alt")
            await m.add_turn(child.session_id, SessionTurn(role="user", content="alternative"))
            await branches.merge(child.session_id, root.session_id)
            await m.close(child.session_id)
            await m.close(root.session_id)
            await client.get_workflow_handle(root.session_id).result()
            await save(client, root.session_id, "branch_and_merge_parent")
            await save(client, child.session_id, "branch_and_merge_child")

            # 6. A group session: roster, ticks (one agent fails), a human turn, context.
            group = await GroupSession.create(m, "recorder", max_attempts=1)
            await group.add_agent("researcher")
            await group.add_agent("flaky")
            await group.tick()
            await m.add_turn(group.session_id, SessionTurn(role="user", content="go on"))
            await group.run(rounds=1)
            await m.context(group.session_id, "researcher", max_turns=2)
            await m.close(group.session_id)
            await client.get_workflow_handle(group.session_id).result()
            await save(client, group.session_id, "group_and_context")

            # 7. Signals and updates while a run drains before continue-as-new (patched).
            cfg = SessionConfig(max_updates_per_run=12, flush_interval=0.1)
            s = await m.create("recorder", config=cfg)
            first_run = await current_run(client, s.session_id)

            async def sender(c: int) -> None:
                for i in range(6):
                    await m.add_turn(s.session_id, SessionTurn(role="user", content=f"{c}-{i}"))
                    await m.send_turn(s.session_id, SessionTurn(role="user", content=f"s{c}-{i}"))

            await asyncio.gather(*(sender(c) for c in range(3)))
            await m.close(s.session_id)
            await save(client, s.session_id, "drain_with_signals", run_id=first_run)

            # 8. Local flushes (patched): in the flow of turns, by the timer after a burst, and
            # a local flush that fails three times and falls back to an ordinary activity.
            s = await m.create("recorder", config=SessionConfig(flush_interval=0.4))
            for i in range(30):
                await m.add_turn(s.session_id, SessionTurn(role="user", content=f"f{i}"))
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # the tail goes by the timer
            store.fail_next = 4  # 3 local attempts, then the activity's first attempt
            await m.add_turn(s.session_id, SessionTurn(role="user", content="store failing"))
            await assert_eventually(lambda: _fully_stored(store, s.session_id, 31), timeout=30)
            await m.close(s.session_id)
            await client.get_workflow_handle(s.session_id).result()
            await save(client, s.session_id, "local_flush")

    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())

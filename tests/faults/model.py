"""A model of what a session promises under concurrency, and random schedules to test it.

A *schedule* is a seeded list of operations on one root session and the branches it grows:
``add_turn`` (update), ``send_turn`` (signal), ``restore``, ``truncate``, ``checkpoint``,
``branch``, ``merge``, ``suspend``, ``resume`` and ``close``. The operations are dealt to a few
lanes that run concurrently, so every run interleaves them differently; the *list* is a pure
function of the seed (``make_schedule(seed)``), and a failure names its seed.

While a schedule runs, a ``Ledger`` records what the session acknowledged: each turn's ``seq``
and content as the ``add_turn`` receipt gave them, and when each head move (restore, truncate)
was called and answered. Afterwards ``check`` compares that with what the session and the store
hold (``Violation`` per broken promise):

1. the transcript (``manager.history``) is contiguous, ``seq`` 0..n-1, and n is the header's
   ``turn_count``;
2. every checkpoint resolves to exactly its ``turn_count`` turns, contiguous (read from the store
   the way a restore reads it; ``restore_all`` also restores each one for real and reads the
   history back);
3. every turn found anywhere in the store (any generation, any session of the schedule) carries
   the content it was sent with, and the ``seq`` its receipt gave when it was acknowledged in that
   session; every acknowledged turn is in the log (a restore rewinds, it never deletes);
4. every turn whose ``add_turn`` was called after the last head move of its session had answered
   is in that session's final transcript, at its acknowledged ``seq``;
5. every run of every session replays from its recorded history (``replay_runs``): a live worker
   replays only on a cache miss, so a history the code cannot replay would otherwise show up once
   in thousands of schedules, as a nondeterminism error.

Expected refusals (``SessionClosedError`` after a close, ``SessionBusyError``,
``InvalidTransitionError`` on a suspended session, ...) are counted, not violations.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from durable_sessions._calls import _consume
from durable_sessions.branches import BranchManager
from durable_sessions.client import SessionManager
from durable_sessions.core.merging import MERGED_FROM_KEY
from durable_sessions.errors import (
    AgentFailedError,
    BranchExistsError,
    CheckpointNotFoundError,
    InvalidTransitionError,
    InvalidTurnError,
    SessionBusyError,
    SessionClosedError,
    SessionError,
    WorkerUnavailableError,
)
from durable_sessions.models import Checkpoint, SessionConfig, SessionState, SessionTurn, new_id
from durable_sessions.stores.base import SessionStore, read_transcript
from tests.replay_answers import AnswerCapture, answer_mismatches

EXPECTED_ERRORS: tuple[type[SessionError], ...] = (
    SessionClosedError,
    SessionBusyError,
    InvalidTransitionError,
    CheckpointNotFoundError,
    BranchExistsError,
    AgentFailedError,
)
"""Refusals a schedule may meet: the session said no, nothing was applied (a regenerate whose
agent failed, e.g. on a worker without agents, may have dropped the last answer: a head move)."""

HEAD_MOVES = frozenset({"restore", "truncate", "pop", "edit", "regenerate"})

SETTLE_SECONDS = 180.0
"""How long ``Runner.settle`` keeps asking a session to flush before reporting it."""


REGENERATE_AGENT = "researcher"
"""The agent ``regenerate`` asks (``examples.agents.team``, on the schedules' workers)."""


class LatencyStore:
    """A store whose every awaited method first sleeps ``random() * max_delay`` seconds.

    A busy PostgreSQL answers in a few to tens of milliseconds; an in-memory store answers at
    once, which hides every interleaving that needs an activity to take time. The delays come
    from a seeded ``random.Random``: ``reseed`` before each schedule.
    """

    def __init__(self, inner: SessionStore, max_delay: float = 0.04, seed: int = 0) -> None:
        self.inner = inner
        self.max_delay = max_delay
        self.rng = random.Random(seed)

    def reseed(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not asyncio.iscoroutinefunction(target):
            return target

        async def delayed(*args: Any, **kwargs: Any) -> Any:
            if self.max_delay > 0:
                await asyncio.sleep(self.rng.random() * self.max_delay)
            return await target(*args, **kwargs)

        return delayed


# ---------------------------------------------------------------------------- schedules

KINDS: tuple[tuple[str, int], ...] = (
    ("add", 44),
    ("send", 10),
    ("restore", 11),
    ("truncate", 7),
    ("checkpoint", 8),
    ("branch", 4),
    ("merge", 4),
    ("suspend", 4),
    ("resume", 8),
    ("close", 2),
    ("add_branch", 2),
    ("add_batch", 4),
    ("pop", 3),
    ("edit", 3),
    ("regenerate", 2),
)


@dataclass(frozen=True)
class Op:
    """One operation: which lane runs it, what it does, a number in [0, 1) that picks its
    argument (which checkpoint, where to truncate, which branch) and a pause before it."""

    lane: int
    kind: str
    pick: float
    pause: float


@dataclass(frozen=True)
class Schedule:
    seed: int
    ops: tuple[Op, ...]
    lanes: int
    preload: int
    """Turns added one by one before the concurrent part (so there is something to rewind)."""
    config: SessionConfig

    def describe(self) -> str:
        counts = Counter(op.kind for op in self.ops)
        parts = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
        can = self.config.max_updates_per_run
        quiet = self.config.idle_continue_after
        return (
            f"seed={self.seed} lanes={self.lanes} preload={self.preload} CAN@{can}"
            f" quiet@{quiet}: {parts}"
        )


def make_schedule(seed: int, *, ops: int = 20, continue_as_new: bool | None = None) -> Schedule:
    """The schedule of ``seed``: same seed, same schedule (the interleaving is the run's).

    A close only comes in the last quarter of the list (a session closed early refuses nearly
    everything after it; a restore still reopens it)."""
    rng = random.Random(seed)
    lanes = rng.randint(3, 6)
    kinds = [k for k, _ in KINDS]
    early = [0 if k == "close" else w for k, w in KINDS]
    late = [w for _, w in KINDS]
    chosen = [
        Op(
            lane=rng.randrange(lanes),
            kind=rng.choices(kinds, late if i >= ops * 3 // 4 else early)[0],
            pick=rng.random(),
            pause=rng.random() * 0.03,
        )
        for i in range(ops)
    ]
    if continue_as_new is None:
        continue_as_new = rng.random() < 0.4
    # Drawn from a generator of its own, so the schedules of earlier seeds stay as they were:
    # a third of the sessions go quiet often enough (their pauses and the store's delays add
    # up to tenths of a second) to have idle continue-as-new mid-schedule.
    quiet = random.Random(seed + 7_919).choice([None, 0.1, 10.0])
    config = SessionConfig(
        flush_interval=rng.choice([0.05, 0.2, 1.0]),
        auto_checkpoint_interval=rng.choice([3, 5, 10]),
        max_updates_per_run=10 if continue_as_new else 1000,
        idle_continue_after=quiet,
    )
    return Schedule(seed, tuple(chosen), lanes, rng.randint(3, 8), config)


# ---------------------------------------------------------------------------- the ledger


@dataclass
class Ack:
    seq: int
    started: float
    attempts: int


@dataclass
class HeadMove:
    kind: str
    started: float
    ended: float | None
    """None when the outcome is unknown (the call timed out): it may still apply later."""


@dataclass
class Ledger:
    """What the session acknowledged, per session id."""

    contents: dict[str, str] = field(default_factory=dict)
    """Every turn id ever sent (acknowledged or not) and its content."""
    acks: dict[str, dict[str, Ack]] = field(default_factory=dict)
    head_moves: dict[str, list[HeadMove]] = field(default_factory=dict)
    sessions: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    seconds: Counter[str] = field(default_factory=Counter)
    """Time spent in calls, per kind (where a schedule's time goes)."""
    unexpected: list[str] = field(default_factory=list)
    """Errors no operation should raise (an untyped ``SessionError``, ...): violations."""
    edits: set[str] = field(default_factory=set)
    """Contents sent by ``edit`` (the edited copy gets an id of its own; ``edited_from`` in its
    metadata names the turn it replaces)."""

    def outcome(self, kind: str, result: str) -> None:
        self.outcomes[f"{kind}:{result}"] += 1


@dataclass
class Violation:
    rule: str
    session_id: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.rule}] session {self.session_id[:8]}: {self.detail}"


# ---------------------------------------------------------------------------- running


class Runner:
    """Runs one schedule against a manager; ``retry_unavailable`` for stacks whose worker is
    killed on purpose (a turn is retried with the same ``turn_id``, as a real client does)."""

    def __init__(
        self,
        manager: SessionManager,
        schedule: Schedule,
        *,
        retry_unavailable: float = 0.0,
    ) -> None:
        self.manager = manager
        self.branches = BranchManager(manager)
        self.schedule = schedule
        self.ledger = Ledger()
        self.retry_unavailable = retry_unavailable
        self.root = ""
        self._n = 0
        self._live_branches: list[str] = []
        self._acked = 0
        self._ack_waiters: list[tuple[int, asyncio.Event]] = []

    async def wait_for_acks(self, count: int) -> None:
        """Return once ``count`` turns have been acknowledged (to break things mid-schedule)."""
        if self._acked < count:
            event = asyncio.Event()
            self._ack_waiters.append((count, event))
            await event.wait()

    def _now(self) -> float:
        return time.monotonic()

    def _turn(self, sid: str, kind: str) -> SessionTurn:
        self._n += 1
        content = f"s{self.schedule.seed} {kind} {self._n} in {sid[:6]}"
        turn = SessionTurn(role="user" if self._n % 2 else "assistant", content=content)
        self.ledger.contents[turn.turn_id] = content
        return turn

    async def _call(self, kind: str, call: Callable[[], Awaitable[Any]]) -> tuple[str, Any]:
        """Run a call; ``("ok", result)``, ``("refused", error)`` or ``("unknown", error)``."""
        started = self._now()
        try:
            return await self._call_once(kind, call)
        finally:
            self.ledger.seconds[kind] += self._now() - started

    async def _call_once(self, kind: str, call: Callable[[], Awaitable[Any]]) -> tuple[str, Any]:
        deadline = self._now() + self.retry_unavailable
        while True:
            try:
                result = await call()
            except EXPECTED_ERRORS as exc:
                self.ledger.outcome(kind, type(exc).__name__)
                return "refused", exc
            except WorkerUnavailableError as exc:
                if self._now() < deadline and kind in ("add", "checkpoint", "flush"):
                    await asyncio.sleep(0.2)  # idempotent: retried as it is
                    continue
                self.ledger.outcome(kind, type(exc).__name__)
                return "unknown", exc
            except InvalidTurnError as exc:
                if kind != "edit" or exc.field != "seq":
                    self.ledger.outcome(kind, f"unexpected {type(exc).__name__}")
                    self.ledger.unexpected.append(f"{kind}: {type(exc).__name__}: {exc}")
                    return "unknown", exc
                # The head moved back past the turn to edit after the schedule picked it.
                self.ledger.outcome(kind, type(exc).__name__)
                return "refused", exc
            except SessionError as exc:
                self.ledger.outcome(kind, f"unexpected {type(exc).__name__}")
                self.ledger.unexpected.append(f"{kind}: {type(exc).__name__}: {exc}")
                return "unknown", exc
            self.ledger.outcome(kind, "ok")
            return "ok", result

    async def add(self, sid: str) -> None:
        turn = self._turn(sid, "add")
        started = self._now()
        attempts = 0

        async def call() -> SessionTurn:
            nonlocal attempts
            attempts += 1
            return await self.manager.add_turn(sid, turn)

        status, result = await self._call("add", call)
        if status == "ok":
            assert result.seq is not None
            self.ledger.acks.setdefault(sid, {})[turn.turn_id] = Ack(result.seq, started, attempts)
            self._acked += 1
            for count, event in self._ack_waiters:
                if self._acked >= count:
                    event.set()

    async def add_batch(self, sid: str) -> None:
        turns = [self._turn(sid, "batch") for _ in range(3)]
        started = self._now()
        status, result = await self._call("add_batch", lambda: self.manager.add_turns(sid, turns))
        if status == "ok":
            for stored in result:
                assert stored.seq is not None
                self.ledger.acks.setdefault(sid, {})[stored.turn_id] = Ack(stored.seq, started, 1)
            self._acked += len(result)
            for count, event in self._ack_waiters:
                if self._acked >= count:
                    event.set()

    async def send(self, sid: str) -> None:
        turn = self._turn(sid, "send")
        await self._call("send", lambda: self.manager.send_turn(sid, turn))

    async def _checkpoints(self, sid: str) -> list[Checkpoint]:
        return await self.manager.store.list_checkpoints(sid)

    async def head_move(self, sid: str, kind: str, pick: float) -> None:
        if kind == "restore":
            cps = await self._checkpoints(sid)
            if not cps:
                return
            cp = cps[int(pick * len(cps))]

            def call() -> Awaitable[SessionState]:
                return self.manager.restore(cp.checkpoint_id)
        elif kind == "regenerate":

            def call() -> Awaitable[Any]:
                return self.manager.regenerate(sid, agent=REGENERATE_AGENT, timeout=10.0)
        elif kind == "pop":

            def call() -> Awaitable[Any]:
                return self.manager.pop_turn(sid)
        elif kind == "edit":
            state = await self.manager.store.get_session(sid)
            if state is None or state.turn_count == 0:
                return
            at = int(pick * state.turn_count)
            self._n += 1
            content = f"s{self.schedule.seed} edit {self._n} in {sid[:6]}"
            self.ledger.edits.add(content)

            def call() -> Awaitable[Any]:
                return self.manager.edit(sid, at, content, mode="rewind")
        else:
            state = await self.manager.store.get_session(sid)
            keep = int(pick * (state.turn_count if state else 0))

            def call() -> Awaitable[SessionState]:
                return self.manager.truncate(sid, keep)

        move = HeadMove(kind, self._now(), None)
        self.ledger.head_moves.setdefault(sid, []).append(move)
        status, _ = await self._call(kind, call)
        if status != "unknown":
            move.ended = self._now()

    async def branch(self, pick: float) -> None:
        cps = await self._checkpoints(self.root)
        from_cp = cps[int(pick * len(cps))].checkpoint_id if cps and pick < 0.5 else None
        name = f"b{len(self.ledger.sessions)}-{self._n}"
        self._n += 1
        status, state = await self._call(
            "branch", lambda: self.branches.create_branch(self.root, name, from_cp)
        )
        if status == "ok":
            self.ledger.sessions.append(state.session_id)
            self._live_branches.append(state.session_id)

    async def merge(self, pick: float) -> None:
        if not self._live_branches:
            return
        source = self._live_branches[int(pick * len(self._live_branches))]
        await self._call("merge", lambda: self.branches.merge(source, self.root))

    async def run_op(self, op: Op) -> None:
        await asyncio.sleep(op.pause)
        sid = self.root
        if op.kind == "add":
            await self.add(sid)
        elif op.kind == "add_branch":
            if self._live_branches:
                await self.add(self._live_branches[int(op.pick * len(self._live_branches))])
        elif op.kind == "send":
            await self.send(sid)
        elif op.kind == "add_batch":
            await self.add_batch(sid)
        elif op.kind in HEAD_MOVES:
            await self.head_move(sid, op.kind, op.pick)
        elif op.kind == "checkpoint":
            await self._call("checkpoint", lambda: self.manager.checkpoint(sid))
        elif op.kind == "branch":
            await self.branch(op.pick)
        elif op.kind == "merge":
            await self.merge(op.pick)
        elif op.kind == "suspend":
            await self._call("suspend", lambda: self.manager.suspend(sid))
        elif op.kind == "resume":
            await self._call("resume", lambda: self.manager.resume(sid))
        elif op.kind == "close":
            await self._call("close", lambda: self.manager.close(sid))
        else:  # pragma: no cover - a kind without a handler is a bug of this module
            raise AssertionError(op.kind)

    async def _create(self, config: SessionConfig) -> str:
        """Create the root session; a create that timed out under load is asked after (it may
        have started the session) and retried with the same id."""
        sid = new_id()
        for _ in range(10):
            try:
                await self.manager.create("model", session_id=sid, config=config)
                return sid
            except (WorkerUnavailableError, SessionBusyError):
                await asyncio.sleep(0.5)
            except SessionError:
                pass  # "already exists": an earlier attempt did start it
            if await self.manager.store.get_session(sid) is not None:
                return sid
        raise AssertionError("could not create the schedule's session")

    async def run(self) -> None:
        s = self.schedule
        self.root = await self._create(s.config)
        self.ledger.sessions.append(self.root)
        for _ in range(s.preload):
            await self.add(self.root)

        async def lane(i: int) -> None:
            for op in s.ops:
                if op.lane == i:
                    await self.run_op(op)

        await asyncio.gather(*(lane(i) for i in range(s.lanes)))

    async def settle(self, within: float = SETTLE_SECONDS) -> None:
        """Everything accepted is flushed: each running session answers a ``flush`` update.

        Retried until it does. Busy and unavailable are transient here: a workflow task that
        timed out on a loaded machine, or a head move still running for a call its client gave up
        on. ``check`` compares the store with the session, so a session checked in the middle of
        such a move shows gaps that are not losses (run 13 of the model test: six "violations",
        each in a session whose settling flush had failed). A session that does not settle in
        ``within`` seconds is reported (an unexpected error), never checked half-way.
        """
        for sid in self.ledger.sessions:
            # Every session that has a header, whatever status it says: a terminal one may be
            # the write of a workflow task that timed out while the run goes on (run 14).
            if await self.manager.store.get_session(sid) is None:
                continue
            deadline = self._now() + within
            started = self._now()
            while True:
                try:
                    await self.manager._update(sid, "flush", None, SessionState)
                except (SessionBusyError, WorkerUnavailableError) as exc:
                    if self._now() < deadline:
                        self.ledger.outcome("settle", f"retried after {type(exc).__name__}")
                        await asyncio.sleep(0.5)
                        continue
                    self.ledger.unexpected.append(
                        f"settle: session {sid[:8]} did not settle in {within:.0f} s "
                        f"({type(exc).__name__})"
                    )
                except SessionClosedError:
                    self.ledger.outcome("settle", "closed meanwhile")
                else:
                    self.ledger.outcome("settle", "ok")
                break
            self.ledger.seconds["settle"] += self._now() - started


# ---------------------------------------------------------------------------- checking


def _contiguous(turns: list[SessionTurn]) -> bool:
    return [t.seq for t in turns] == list(range(len(turns)))


def _gaps(turns: list[SessionTurn], expected: int) -> str:
    seqs = [t.seq for t in turns]
    missing = sorted(set(range(expected)) - {s for s in seqs if s is not None})
    repeated = sorted(s for s, n in Counter(seqs).items() if n > 1 and s is not None)
    beyond = sorted(s for s in seqs if s is not None and s >= expected)
    return (
        f"{len(turns)} turns for turn_count {expected}: missing seqs {missing[:8]}, "
        f"repeated {repeated[:8]}, beyond the head {beyond[:8]}"
    )


def _original_id(turn: SessionTurn) -> str:
    merged = turn.metadata.get(MERGED_FROM_KEY)
    if isinstance(merged, dict) and isinstance(merged.get("turn_id"), str):
        return str(merged["turn_id"])
    return turn.turn_id


async def _all_own_turns(
    store: SessionStore, sid: str, generations: int
) -> list[tuple[int, SessionTurn]]:
    out: list[tuple[int, SessionTurn]] = []
    for gen in range(generations + 1):
        out.extend((gen, t) for t in await store.get_own_turns(sid, gen, 0, 1_000_000))
    return out


T = TypeVar("T")


async def _patiently(call: Callable[[], Awaitable[T]], seconds: float = 30.0) -> T:
    """A call retried while the session is busy (between two runs) or a worker is slow to
    answer: checking must not fail on a moment's unavailability."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await call()
        except (SessionBusyError, WorkerUnavailableError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


REPLAY_PATIENCE = 60.0
"""Seconds one replay may take before it is left behind (see ``replay_runs``)."""


def settled_part(history: WorkflowHistory) -> WorkflowHistory:
    """A running run's history up to its last completed workflow task: what a worker that
    picks the run up replays before it runs the next task."""
    done = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    last = max((i for i, e in enumerate(history.events) if e.event_type == done), default=-1)
    return WorkflowHistory(history.workflow_id, history.events[: last + 1])


async def replay_runs(manager: SessionManager, ledger: Ledger) -> list[Violation]:
    """Replay every run of every session of the schedule from its recorded history.

    A live worker replays a run only on a cache miss (an evicted run, a timed-out task, a
    restart), so a history the code cannot replay shows up there once in thousands of
    schedules. Replaying each run whole checks every workflow task of it, every time.

    A run still running (a session left open, or one continuing as new after going quiet) is
    replayed up to its last completed workflow task, and not at all before its first task has
    completed: the SDK's ``Replayer`` waits for good on a history with no completed workflow
    task (a run that has just continued as new: ``[started, task scheduled]``), and does not
    honour cancellation. That hung session 12's CI run (found in session 13 with a dump of the
    event loop's tasks: ``replay_runs`` waiting on the replayer's activation poll). Any other
    replay that takes over ``REPLAY_PATIENCE`` is left behind and reported as a violation, with
    its history kept, instead of hanging the suite."""
    from durable_sessions.worker import WORKFLOWS, workflow_runner

    replayer = Replayer(
        workflows=WORKFLOWS,
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(sandboxed=False),
        interceptors=[AnswerCapture()],
    )
    client = manager.client
    out: list[Violation] = []
    for sid in ledger.sessions:
        runs = [r async for r in client.list_workflows(f'WorkflowId = "{sid}"')]
        for run in runs:
            handle = client.get_workflow_handle(sid, run_id=run.run_id)
            history = await handle.fetch_history()
            if run.status == WorkflowExecutionStatus.RUNNING:
                history = settled_part(history)
                if not history.events:
                    ledger.outcome("replay", "nothing settled yet")
                    continue
            replay = asyncio.ensure_future(
                replayer.replay_workflow(history, raise_on_replay_failure=False)
            )
            done, _ = await asyncio.wait({replay}, timeout=REPLAY_PATIENCE)
            if not done:
                replay.add_done_callback(_consume)
                ledger.outcome("replay", "did not finish")
                detail = f"run {run.run_id[:8]}: replay did not finish in {REPLAY_PATIENCE:.0f} s"
                out.append(Violation("replay", sid, detail))
                await asyncio.to_thread(_write_history, f"{sid}-{run.run_id[:8]}-hung", history)
                continue
            result = replay.result()
            # A replay that sends the same commands can still take another path through the
            # state (two turns swapping seqs): every update must answer as it did live.
            differs = [] if result.replay_failure else answer_mismatches(history)
            failed = result.replay_failure is not None or differs
            ledger.outcome("replay", "failed" if failed else "ok")
            if result.replay_failure is not None:
                failure = str(result.replay_failure).splitlines()[0][:300]
                out.append(Violation("replay", sid, f"run {run.run_id[:8]}: {failure}"))
            for difference in differs:
                out.append(Violation("replay", sid, f"run {run.run_id[:8]}: {difference}"))
            if failed:
                await asyncio.to_thread(_write_history, f"{sid}-{run.run_id[:8]}", history)
    return out


def _write_history(name: str, history: WorkflowHistory) -> None:
    """``history`` to ``$DURABLE_SESSIONS_MODEL_HISTORIES/<name>.json`` (when set), for
    ``Replayer`` and a look at the events."""
    folder = os.environ.get("DURABLE_SESSIONS_MODEL_HISTORIES")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{name}.json").write_text(history.to_json())


async def keep_histories(
    manager: SessionManager, ledger: Ledger, violations: list[Violation]
) -> None:
    """Keep every run's history of every session of the schedule with a violation, and what
    the store holds for it (when ``$DURABLE_SESSIONS_MODEL_HISTORIES`` is set): the current run
    alone (``<id>.json``) left run 13's violations unexplained (tests/faults/RESULTS.md)."""
    folder = os.environ.get("DURABLE_SESSIONS_MODEL_HISTORIES")
    if not folder:
        return
    for sid in {v.session_id for v in violations if v.session_id in ledger.sessions}:
        runs = [r async for r in manager.client.list_workflows(f"WorkflowId = '{sid}'")]
        runs.sort(key=lambda r: r.start_time)
        for i, run in enumerate(runs):
            handle = manager.client.get_workflow_handle(sid, run_id=run.run_id)
            history = await handle.fetch_history()
            await asyncio.to_thread(_write_history, f"{sid}.run{i:03d}", history)
            if i == len(runs) - 1:  # the current run, also under the session's own name
                await asyncio.to_thread(_write_history, sid, history)
        await asyncio.to_thread(
            (Path(folder) / f"{sid}.store.json").write_text, await _store_dump(manager.store, sid)
        )


async def _store_dump(store: SessionStore, sid: str) -> str:
    """The session's header, generations, every generation's own turns (seq, id) and its
    checkpoints, as JSON."""
    header = await store.get_session(sid)
    newest = header.generation if header else 0
    parents: dict[int, Any] = {}
    for gen in range(1, newest + 50):  # past the header's: a late write may have moved it back
        parent = await store.get_generation_parent(sid, gen)
        if parent is not None:
            parents[gen] = list(parent)
    gens = max([newest, *parents])
    turns: dict[int, list[tuple[int | None, str]]] = {}
    for gen, turn in await _all_own_turns(store, sid, gens):
        turns.setdefault(gen, []).append((turn.seq, turn.turn_id))
    checkpoints = [
        {"id": c.checkpoint_id, "gen": c.generation, "turn_count": c.turn_count, "reason": c.reason}
        for c in await store.list_checkpoints(sid)
    ]
    return json.dumps(
        {
            "header": header.model_dump(mode="json") if header else None,
            "generation_parents": parents,
            "own_turns": turns,
            "checkpoints": checkpoints,
        },
        indent=1,
    )


async def check(
    manager: SessionManager,
    ledger: Ledger,
    *,
    restore_all: bool = False,
    store: SessionStore | None = None,
) -> list[Violation]:
    """The schedule's violations (empty when every promise held). Run after ``settle``.

    ``store`` is what to read the log from (default the manager's; pass the store under a
    ``LatencyStore`` to read it without the injected latency).
    """
    store = store or manager.store
    out = [Violation("unexpected-error", "-", e) for e in ledger.unexpected]
    for sid in ledger.sessions:
        header = await store.get_session(sid)
        if header is None:
            out.append(Violation("exists", sid, "no header in the store"))
            continue
        try:
            state = await _patiently(lambda sid=sid: manager.get(sid))
            history = await _patiently(lambda sid=sid: manager.history(sid))
        except SessionError as exc:  # the session must stay readable whatever happened to it
            out.append(Violation("unreadable", sid, f"{type(exc).__name__}: {exc.message}"))
            continue
        # 1. contiguous transcript of turn_count turns
        if not _contiguous(history) or len(history) != state.turn_count:
            out.append(Violation("transcript", sid, _gaps(history, state.turn_count)))
        # 2. checkpoints resolve to exactly their turn_count turns
        checkpoints = await store.list_checkpoints(sid)
        for cp in checkpoints:
            turns = await read_transcript(
                store, sid, generation=cp.generation, turn_count=cp.turn_count
            )
            if not _contiguous(turns) or len(turns) != cp.turn_count:
                detail = f"{cp.reason} checkpoint (gen {cp.generation}): "
                out.append(Violation("checkpoint", sid, detail + _gaps(turns, cp.turn_count)))
        # 3. turns anywhere carry their acknowledged seq and content; acknowledged ones exist
        acks = ledger.acks.get(sid, {})
        found: dict[str, set[int]] = {}
        for gen, turn in await _all_own_turns(store, sid, max(header.generation, state.generation)):
            original = _original_id(turn)
            content = ledger.contents.get(original)
            if "edited_from" in turn.metadata and turn.content in ledger.edits:
                content = turn.content  # an edited copy: its content is the edit's
            if turn.agent == REGENERATE_AGENT:
                content = turn.content  # an agent's answer: nobody sent it
            if content is None:
                out.append(Violation("unknown", sid, f"turn {turn.turn_id} was never sent"))
            elif turn.content != content:
                out.append(Violation("content", sid, f"turn {turn.turn_id} altered (gen {gen})"))
            assert turn.seq is not None
            found.setdefault(turn.turn_id, set()).add(turn.seq)
        for turn_id, ack in acks.items():
            seqs = found.get(turn_id, set())
            if ack.seq not in seqs:
                out.append(Violation("lost", sid, f"acknowledged seq {ack.seq} not in the log"))
            elif ack.attempts == 1 and seqs != {ack.seq}:
                out.append(Violation("seq", sid, f"acked seq {ack.seq}, stored at {sorted(seqs)}"))
        # 4. turns acknowledged after the last head move are in the transcript
        moves = ledger.head_moves.get(sid, [])
        if any(m.ended is None for m in moves):
            ledger.outcome("check4", "skipped: a head move of unknown outcome")
        else:
            last = max((m.ended for m in moves if m.ended is not None), default=float("-inf"))
            at = {t.turn_id: t.seq for t in history}
            for turn_id, ack in acks.items():
                if ack.started > last and at.get(turn_id) != ack.seq:
                    out.append(
                        Violation(
                            "after-head-move",
                            sid,
                            f"turn acked at seq {ack.seq} after the last head move is "
                            f"{'at ' + str(at[turn_id]) if turn_id in at else 'missing'}",
                        )
                    )
        # 2b. restore each checkpoint for real and read the transcript back
        if restore_all:
            out.extend(await _restore_each(manager, sid, checkpoints))
    return out


async def _restore_each(
    manager: SessionManager, sid: str, checkpoints: list[Checkpoint]
) -> list[Violation]:
    out: list[Violation] = []
    for cp in checkpoints:
        try:
            await _patiently(lambda cp=cp: manager.restore(cp.checkpoint_id))
            history = await _patiently(lambda: manager.history(sid))
        except SessionError as exc:
            out.append(Violation("restore", sid, f"restore failed: {type(exc).__name__}"))
            continue
        if not _contiguous(history) or len(history) != cp.turn_count:
            detail = f"restored {cp.reason} checkpoint: " + _gaps(history, cp.turn_count)
            out.append(Violation("restored", sid, detail))
    return out

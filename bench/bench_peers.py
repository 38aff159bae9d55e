"""Benchmark the PostgreSQL storage of one conversation against two peers, in one run.

Run ``python -m bench.bench_peers`` from the repository root (peers come from the ``bench``
extra: ``pip install -e '.[bench]'``). Progress goes to stderr, a Markdown section to stdout.
No goal is set: the exit status is 0 unless the benchmark cannot run.

The same conversation, 2,000 alternating user/assistant turns of ~500 B, is written turn by
turn to three stores on the same PostgreSQL server, each in its own schema, interleaved (turn
``i`` goes to every store before turn ``i + 1``, in rotating order) so drift of the machine
hits all three alike:

* **ours**: ``PostgresSessionStore.persist`` of one turn per call (the header upsert with it,
  and an auto checkpoint row every 10 turns), which is what the worker's flush does when turns
  arrive slower than the flush interval. Under load the worker batches, which is cheaper.
* **LangGraph**: a compiled ``StateGraph(MessagesState)`` with a no-op node and
  ``AsyncPostgresSaver`` (``langgraph-checkpoint-postgres``), invoked once per turn with
  ``durability="exit"``: one checkpoint per turn whose ``messages`` channel holds the whole
  conversation, as a LangGraph chat app stores it (the default ``durability="async"`` writes
  more: a checkpoint per step). Write time is the saver's ``aput``; the whole ``ainvoke`` is
  reported beside it.
* **OpenAI Agents SDK**: ``SQLAlchemySession`` (``openai-agents[sqlalchemy]``) on the
  ``asyncpg`` driver, ``add_items([item])`` per turn; user turns as
  ``{"role": "user", "content": ...}``, assistant turns as the Responses API output message
  items the SDK stores after a run.

Reported per store: write time per turn around turn 10 and turn 2,000 (median of the 10 turns
up to there), bytes on disk per turn (all relations of its schema: heap, TOAST, indexes) and
the time to read the whole history back as objects (median of 5 reads).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from bench.common import (
    EXIT_OK,
    TextGenerator,
    fresh_schema,
    log,
    md_table,
    median,
    postgres_dsn,
    run_main,
    schema_bytes,
    timed,
)
from durable_sessions.core.clock import utcnow
from durable_sessions.core.tokens import approx_token_count
from durable_sessions.models import Checkpoint, SessionState, SessionTurn, new_id
from durable_sessions.stores.base import PersistBatch, read_transcript
from durable_sessions.stores.postgres import PostgresSessionStore

TURNS = 2_000
TURN_BYTES = 500
WINDOW = 10
"""Write time "at turn N" is the median of turns N-9..N."""
MARKS = (10, 1_000, 2_000)
READS = 5
AUTO_CHECKPOINT_EVERY = 10
SEED = 23


class Peer(Protocol):
    name: str
    schema: str
    detail: str

    async def setup(self) -> None: ...

    async def write(self, seq: int, role: str, content: str) -> float:
        """Store one turn; returns the seconds the storage write took."""

    async def read_all(self) -> int:
        """Read the whole history back as objects; returns how many turns it holds."""

    async def close(self) -> None: ...


@dataclass
class Result:
    name: str
    detail: str
    write_s: list[float] = field(default_factory=list)
    extra_s: list[float] = field(default_factory=list)
    """LangGraph only: the whole ``ainvoke`` per turn."""
    stored_bytes: int = 0
    read_s: list[float] = field(default_factory=list)
    read_count: int = 0
    error: str | None = None


# ------------------------------------------------------------------------------------------
# Ours
# ------------------------------------------------------------------------------------------


class Ours:
    name = "durable-sessions `PostgresSessionStore`"
    detail = "`persist` per turn (header upsert; checkpoint row every 10 turns)"

    def __init__(self, dsn: str, schema: str) -> None:
        self.schema = schema
        self.store = PostgresSessionStore(dsn, schema=schema)
        now = utcnow()
        self.state = SessionState(
            session_id=new_id(), user_id="bench-user", created_at=now, updated_at=now
        )

    async def setup(self) -> None:
        await self.store.setup()

    async def write(self, seq: int, role: str, content: str) -> float:
        turn = SessionTurn(
            role="user" if role == "user" else "assistant",
            content=content,
            tokens=approx_token_count(content),
            seq=seq,
        )
        state = self.state
        state.turn_count = seq + 1
        state.total_tokens += turn.tokens or 0
        state.updated_at = turn.timestamp
        checkpoints: list[Checkpoint] = []
        if state.turn_count % AUTO_CHECKPOINT_EVERY == 0:
            cp = Checkpoint(
                checkpoint_id=new_id(),
                session_id=state.session_id,
                turn_count=state.turn_count,
                created_at=turn.timestamp,
                reason="auto",
                total_tokens=state.total_tokens,
            )
            state.last_checkpoint_id = cp.checkpoint_id
            checkpoints.append(cp)
        batch = PersistBatch(state=state, turns=[turn], checkpoints=checkpoints)
        return await timed(lambda: self.store.persist(batch))

    async def read_all(self) -> int:
        return len(await read_transcript(self.store, self.state.session_id))

    async def close(self) -> None:
        await self.store.close()


# ------------------------------------------------------------------------------------------
# LangGraph
# ------------------------------------------------------------------------------------------


class LangGraphPeer:
    name = "LangGraph `AsyncPostgresSaver`"
    detail = '`StateGraph(MessagesState)`, `ainvoke` per turn, `durability="exit"`'

    def __init__(self, dsn: str, schema: str) -> None:
        self.schema = schema
        self.conninfo = f"{dsn}?options=-csearch_path%3D{schema}"
        self.thread = {"configurable": {"thread_id": new_id()}}
        self.last_put = 0.0
        self.invoke_s: list[float] = []
        self._cm: Any = None
        self._saver: Any = None
        self._app: Any = None

    async def setup(self) -> None:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from langgraph.graph import END, START, MessagesState, StateGraph

        self._cm = AsyncPostgresSaver.from_conn_string(self.conninfo)
        saver = await self._cm.__aenter__()
        await saver.setup()
        aput = saver.aput

        async def timed_aput(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await aput(*args, **kwargs)
            finally:
                self.last_put = time.perf_counter() - t0

        saver.aput = timed_aput
        graph = StateGraph(MessagesState)
        graph.add_node("reply", lambda state: {})
        graph.add_edge(START, "reply")
        graph.add_edge("reply", END)
        self._saver = saver
        self._app = graph.compile(checkpointer=saver)

    async def write(self, seq: int, role: str, content: str) -> float:
        from langchain_core.messages import AIMessage, HumanMessage

        message = HumanMessage(content) if role == "user" else AIMessage(content)
        self.last_put = 0.0
        self.invoke_s.append(
            await timed(
                lambda: self._app.ainvoke({"messages": [message]}, self.thread, durability="exit")
            )
        )
        return self.last_put

    async def read_all(self) -> int:
        checkpoint = await self._saver.aget_tuple(self.thread)
        return len(checkpoint.checkpoint["channel_values"]["messages"])

    async def close(self) -> None:
        if self._cm is not None:
            await self._cm.__aexit__(None, None, None)


# ------------------------------------------------------------------------------------------
# OpenAI Agents SDK
# ------------------------------------------------------------------------------------------


class AgentsPeer:
    name = "OpenAI Agents SDK `SQLAlchemySession`"
    detail = "`add_items([item])` per turn, asyncpg driver"

    def __init__(self, dsn: str, schema: str) -> None:
        self.schema = schema
        self.url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
        self._session: Any = None

    async def setup(self) -> None:
        from agents.extensions.memory.sqlalchemy_session import SQLAlchemySession

        self._session = SQLAlchemySession.from_url(
            new_id(),
            url=self.url,
            engine_kwargs={"connect_args": {"server_settings": {"search_path": self.schema}}},
            create_tables=True,
        )

    async def write(self, seq: int, role: str, content: str) -> float:
        item: dict[str, Any]
        if role == "user":
            item = {"role": "user", "content": content}
        else:
            item = {
                "id": f"msg_{new_id()}",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": content, "annotations": []}],
            }
        return await timed(lambda: self._session.add_items([item]))

    async def read_all(self) -> int:
        return len(await self._session.get_items())

    async def close(self) -> None:
        if self._session is not None:
            await self._session._engine.dispose()


# ------------------------------------------------------------------------------------------


PEERS: list[tuple[str, Callable[[str, str], Peer]]] = [
    ("ours", Ours),
    ("langgraph", LangGraphPeer),
    ("agents", AgentsPeer),
]


async def guarded(result: Result, step: str, call: Callable[[], Awaitable[Any]]) -> Any:
    """Run a peer's step; a failure marks the peer unavailable instead of ending the run."""
    try:
        return await call()
    except Exception as exc:
        result.error = f"{step} failed: {type(exc).__name__}: {exc}".splitlines()[0][:200]
        log(f"{result.name}: {result.error}")
        return None


async def main() -> int:
    started = time.perf_counter()
    dsn = await postgres_dsn()
    texts = TextGenerator(SEED)
    conversation = [
        ("user" if i % 2 == 0 else "assistant", texts.text(TURN_BYTES)) for i in range(TURNS)
    ]
    raw = sum(len(c.encode()) for _, c in conversation)
    results: list[Result] = []
    active: list[tuple[Peer, Result]] = []
    async with contextlib.AsyncExitStack() as stack:
        for key, make in PEERS:
            schema = await stack.enter_async_context(fresh_schema(dsn, f"bench_{key}"))
            result = Result(name=key, detail="")
            results.append(result)
            try:
                peer = make(dsn, schema)
            except Exception as exc:
                result.error = f"unavailable: {type(exc).__name__}: {exc}"
                continue
            result.name, result.detail = peer.name, peer.detail
            stack.push_async_callback(peer.close)
            await guarded(result, "setup", peer.setup)
            if result.error is None:
                active.append((peer, result))

        log(f"writing {TURNS:,} turns of ~{TURN_BYTES} B to {len(active)} stores, interleaved ...")
        for i, (role, content) in enumerate(conversation):
            shift = i % max(1, len(active))
            for peer, result in active[shift:] + active[:shift]:
                if result.error is not None:
                    continue
                write = functools.partial(peer.write, i, role, content)
                seconds = await guarded(result, f"write of turn {i + 1}", write)
                if seconds is not None:
                    result.write_s.append(seconds)
            if (i + 1) % 250 == 0:
                log(
                    f"  {i + 1:,} turns, last write: "
                    + ", ".join(
                        f"{r.name.split()[0]} {r.write_s[-1] * 1000:.1f} ms"
                        for _, r in active
                        if r.write_s and r.error is None
                    )
                )

        for peer, result in active:
            if isinstance(peer, LangGraphPeer):
                result.extra_s = peer.invoke_s
            if result.error is not None:
                continue
            result.stored_bytes = await schema_bytes(dsn, peer.schema)
            for _ in range(READS):
                t0 = time.perf_counter()
                count = await guarded(result, "read", peer.read_all)
                if count is None:
                    break
                result.read_s.append(time.perf_counter() - t0)
                result.read_count = count
            log(
                f"{result.name}: {result.stored_bytes / TURNS:,.0f} B/turn stored, reads (ms): "
                + ", ".join(f"{x * 1000:.1f}" for x in result.read_s)
            )

    print(render(results, raw, time.perf_counter() - started))
    return EXIT_OK


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def window(samples: list[float], upto: int) -> float:
    """Median of the ``WINDOW`` samples ending at turn ``upto`` (1-based)."""
    return median(samples[max(0, upto - WINDOW) : upto])


def render(results: list[Result], raw: int, wall: float) -> str:
    out = [
        "## Conversation storage against peers (PostgreSQL)",
        "",
        f"One conversation of {TURNS:,} turns of ~{TURN_BYTES} B (seeded prose, "
        f"{raw / TURNS:.0f} B of text per turn on average), written turn by turn to each store "
        "in its own schema on the same PostgreSQL server, interleaved turn by turn. Write time "
        f"at turn N: median of turns N-{WINDOW - 1}..N, in ms. Stored: all relations of the "
        f"store's schema after {TURNS:,} turns. Read: the whole history back as objects, "
        f"median of {READS} reads.",
        "",
    ]
    rows: list[list[str]] = []
    for r in results:
        if r.error is not None and len(r.write_s) < TURNS:
            rows.append([r.name, r.detail or "-", *["n/a"] * (len(MARKS) + 4)])
            continue
        rows.append(
            [
                r.name,
                r.detail,
                *(ms(window(r.write_s, m)) for m in MARKS),
                f"{r.stored_bytes / TURNS:,.0f}",
                f"{r.stored_bytes / raw:.1f}x",
                ms(median(r.read_s)) if r.read_s else "n/a",
                f"{r.read_count:,}" if r.read_s else "n/a",
            ]
        )
    out.append(
        md_table(
            [
                "store",
                "how",
                *(f"write ms at turn {m:,}" for m in MARKS),
                "stored B/turn",
                "stored / raw text",
                "read all ms",
                "turns read",
            ],
            rows,
            "ll" + "r" * (len(MARKS) + 4),
        )
    )
    notes = [r for r in results if r.extra_s]
    for r in notes:
        out += [
            "",
            f"{r.name}: the whole `ainvoke` per turn (graph execution plus the checkpoint write) "
            f"took {ms(window(r.extra_s, MARKS[0]))} ms at turn {MARKS[0]} and "
            f"{ms(window(r.extra_s, MARKS[-1]))} ms at turn {MARKS[-1]:,}.",
        ]
    missing = [r for r in results if r.error is not None]
    if missing:
        out += ["", "Unavailable or failed:", ""]
        out += [f"- {r.name}: {r.error}" for r in missing]
    out += ["", f"Benchmark wall time: {wall:.0f} s"]
    return "\n".join(out)


if __name__ == "__main__":
    run_main(main)

"""Benchmark ``manager.recall``: latency over 1,000 sessions on PostgreSQL, quality on LoCoMo.

Run ``python -m bench.bench_recall`` from the repository root. Progress goes to stderr, a
Markdown section to stdout; the exit status is 1 when a goal is missed:

* latency: recall (limit 20) over one user's 1,000 sessions x 100 turns on PostgreSQL (plus
  100 sessions of other users in the same tables): p50 <= 50 ms, p99 <= 200 ms.

The sessions are written straight through ``PostgresSessionStore.persist`` (what the worker's
flush calls), not through Temporal, and the tables are vacuumed and analysed before measuring,
as autovacuum would have done. Turn text is real conversation: LoCoMo turns
(``../shared/data/locomo-dev``) drawn at random, and the queries are LoCoMo questions; without
the data set, seeded prose from ``TextGenerator`` and questions made of its words. ``recall`` is
timed as ``manager.recall`` calls it (``durable_sessions.recall.recall`` on the manager's
store), end to end on one client connection; the CPU time of the PostgreSQL server process
answering is read from ``/proc`` (the machine may be shared).

Quality (reported, no goal): LoCoMo cross-session evidence recall@K. Each LoCoMo conversation is
one user, each of its ``session_N`` one durable session of that user, and every question is
asked across all of the user's sessions. Recall@K is the share of a question's evidence turns
among the K hits, averaged over questions. Measured on every backend (the in-memory reference
scan with ``bm25s``, SQLite FTS5, PostgreSQL), lexical only and, when a semantic scorer is
installed, re-ranked with it.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

from bench.common import (
    TextGenerator,
    finish,
    fresh_schema,
    log,
    md_table,
    median,
    percentile,
    postgres_dsn,
    run_main,
)
from bench.locomo import Conversation, load
from durable_sessions.models import SessionState, SessionTurn
from durable_sessions.recall import SemanticScorer, default_scorer, recall
from durable_sessions.stores.base import PersistBatch, SessionStore
from durable_sessions.stores.memory import InMemorySessionStore
from durable_sessions.stores.postgres import PostgresSessionStore
from durable_sessions.stores.sqlite import SQLiteSessionStore

SEED = 20261129
SESSIONS = 1_000
TURNS_PER_SESSION = 100
OTHER_SESSIONS = 100
QUERIES = 400
WARMUP = 20
LIMIT = 20
KS = (10, 20, 50)
GOAL_P50_MS = 50.0
GOAL_P99_MS = 200.0
T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


def server_cpu(pid: int) -> float:
    """CPU seconds the (local) PostgreSQL backend ``pid`` has used; NaN when not readable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def header(session_id: str, user_id: str, n: int, created: datetime) -> SessionState:
    return SessionState(
        session_id=session_id,
        user_id=user_id,
        created_at=created,
        updated_at=created,
        turn_count=n,
    )


# ------------------------------------------------------------------------------------------
# Latency: 1,000 sessions x 100 turns on PostgreSQL
# ------------------------------------------------------------------------------------------


def corpus(
    conversations: Sequence[Conversation], rng: random.Random
) -> tuple[Callable[[], str], list[str]]:
    """A turn-text source and the queries: LoCoMo when present, else generated prose."""
    texts = [t.content for c in conversations for t in c.turns]
    questions = [q.text for c in conversations for q in c.questions]
    if texts and questions:
        rng.shuffle(questions)
        return (lambda: rng.choice(texts)), questions[:QUERIES]
    gen = TextGenerator(SEED)
    made = [gen.sentence() for _ in range(QUERIES)]
    return (lambda: gen.text(rng.randint(60, 400))), [q.rstrip(".?!") + "?" for q in made]


async def populate(store: PostgresSessionStore, text: Callable[[], str]) -> float:
    """Write the sessions through ``persist``; returns the seconds it took."""
    started = time.perf_counter()
    owners = [("u0", SESSIONS)] + [(f"other{i}", OTHER_SESSIONS // 10) for i in range(10)]
    k = 0
    for user, n_sessions in owners:
        for s in range(n_sessions):
            created = T0 + timedelta(hours=k)
            turns = [
                SessionTurn(
                    turn_id=f"{user}-{s}-{i}",
                    role="user" if i % 2 == 0 else "assistant",
                    content=text(),
                    timestamp=created + timedelta(seconds=30 * i),
                    seq=i,
                )
                for i in range(TURNS_PER_SESSION)
            ]
            state = header(f"{user}-s{s:04d}", user, TURNS_PER_SESSION, created)
            await store.persist(PersistBatch(state=state, turns=turns))
            k += 1
        log(f"populated {user}: {n_sessions} sessions x {TURNS_PER_SESSION} turns")
    return time.perf_counter() - started


async def latency(
    dsn: str, conversations: Sequence[Conversation]
) -> tuple[list[str], dict[str, float]]:
    rng = random.Random(SEED)
    text, queries = corpus(conversations, rng)
    async with fresh_schema(dsn, "bench_recall") as schema:
        # One connection, so the server process answering is known and its CPU time is read.
        store = PostgresSessionStore(dsn, schema=schema, min_size=1, max_size=1, recall=True)
        try:
            await store.setup()
            seconds = await populate(store, text)
            pool = await store._get_pool()
            # What autovacuum does after a bulk insert: statistics, and the GIN index's pending
            # list merged (searches otherwise scan it linearly).
            await pool.execute(f'VACUUM ANALYZE "{schema}".sessions, "{schema}".turns')
            stored = await store.storage_bytes()
            tsv = await pool.fetchval(
                f'SELECT sum(pg_column_size(tsv))::bigint FROM "{schema}".turns'
            )
            gin = await pool.fetchval(
                "SELECT pg_relation_size(to_regclass($1))", f'"{schema}".turns_tsv_idx'
            )
            raw = await pool.fetchval(
                f'SELECT sum(octet_length(content))::bigint FROM "{schema}".turns'
            )
            for q in queries[:WARMUP]:
                await recall(store, "u0", q, limit=LIMIT)
            backend = await pool.fetchval("SELECT pg_backend_pid()")
            cpu0, client0 = server_cpu(backend), time.process_time()
            samples: list[float] = []
            hits: list[int] = []
            for q in queries:
                t = time.perf_counter()
                got = await recall(store, "u0", q, limit=LIMIT)
                samples.append((time.perf_counter() - t) * 1000)
                hits.append(len(got))
                assert all(h.session_id.startswith("u0-") for h in got)
            cpu1, client1 = server_cpu(backend), time.process_time()
            log(f"recall p50 {median(samples):.1f} ms, p99 {percentile(samples, 99):.1f} ms")
        finally:
            await store.close()
    figures = {
        "p50": median(samples),
        "p90": percentile(samples, 90),
        "p99": percentile(samples, 99),
        "max": max(samples),
        "populate_s": seconds,
        "turns_per_s": (SESSIONS + OTHER_SESSIONS) * TURNS_PER_SESSION / seconds,
        "index_ratio": (int(tsv) + int(gin)) / int(raw),
        "stored_ratio": stored / int(raw),
        "mean_hits": sum(hits) / len(hits),
        "server_cpu_ms": (cpu1 - cpu0) * 1000 / len(queries),
        "client_cpu_ms": (client1 - client0) * 1000 / len(queries),
    }
    source = "LoCoMo turns and questions" if conversations else "generated prose"
    out = [
        f"One user with {SESSIONS:,} sessions x {TURNS_PER_SESSION} turns, plus "
        f"{OTHER_SESSIONS} sessions of 10 other users ({source}); {len(queries)} queries, "
        f"limit {LIMIT}, one at a time after {WARMUP} warm-up queries.",
        "",
        md_table(
            ["p50 ms", "p90 ms", "p99 ms", "max ms", "mean hits"],
            [
                [
                    f"{figures['p50']:.1f}",
                    f"{figures['p90']:.1f}",
                    f"{figures['p99']:.1f}",
                    f"{figures['max']:.1f}",
                    f"{figures['mean_hits']:.1f}",
                ]
            ],
            "rrrrr",
        ),
        "",
        f"Writing the {(SESSIONS + OTHER_SESSIONS) * TURNS_PER_SESSION:,} turns through "
        f"`persist` with the index on: {seconds:.0f} s ({figures['turns_per_s']:,.0f} turns/s, "
        "one 100-turn flush per session). The index (`tsvector` column + GIN) takes "
        f"{figures['index_ratio']:.2f}x the turn text; the whole store "
        f"{figures['stored_ratio']:.2f}x.",
        "",
        f"CPU per recall: {figures['server_cpu_ms']:.1f} ms in the PostgreSQL server process, "
        f"{figures['client_cpu_ms']:.1f} ms in the client (load average during the run: "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs).",
    ]
    return out, figures


# ------------------------------------------------------------------------------------------
# Quality: LoCoMo cross-session recall@K
# ------------------------------------------------------------------------------------------


async def load_sessions(store: SessionStore, conversations: Sequence[Conversation]) -> None:
    """Each conversation is a user, each LoCoMo session one durable session of that user."""
    for conv in conversations:
        by_session: dict[int, list[SessionTurn]] = {}
        for turn in conv.turns:
            by_session.setdefault(int(turn.metadata["session"]), []).append(turn)
        for n, turns in sorted(by_session.items()):
            renumbered = [t.model_copy(update={"seq": i}) for i, t in enumerate(turns)]
            state = header(f"{conv.name}-session-{n}", conv.name, len(turns), turns[0].timestamp)
            await store.persist(PersistBatch(state=state, turns=renumbered))


async def evidence_recall(
    store: SessionStore,
    conversations: Sequence[Conversation],
    scorer: SemanticScorer | None,
) -> tuple[dict[int, float], float]:
    """Mean evidence recall@K for each K, and the median recall time in ms."""
    sums = dict.fromkeys(KS, 0.0)
    n = 0
    times: list[float] = []
    for conv in conversations:
        ids = {t.turn_id: i for i, t in enumerate(conv.turns)}
        for q in conv.questions:
            t = time.perf_counter()
            hits = await recall(
                store, conv.name, q.text, limit=max(KS), scorer=scorer, candidates_per_hit=2
            )
            times.append((time.perf_counter() - t) * 1000)
            ranked = [ids[h.turn.turn_id] for h in hits]
            for k in KS:
                top = set(ranked[:k])
                sums[k] += sum(1 for e in q.evidence if e in top) / len(q.evidence)
            n += 1
    return {k: v / n for k, v in sums.items()}, median(times)


async def quality(dsn: str, conversations: Sequence[Conversation]) -> list[str]:
    scorer = default_scorer()
    rows: list[list[str]] = []

    async def measure(
        name: str, open_store: Callable[[], Awaitable[SessionStore]], semantic: bool = False
    ) -> None:
        store = await open_store()
        try:
            await load_sessions(store, conversations)
            variants: list[tuple[str, SemanticScorer | None]] = [("lexical", None)]
            if scorer is not None and semantic:
                variants.append(("lexical, top 100 re-ranked by `[semantic]`", scorer))
            for label, sc in variants:
                at_k, ms = await evidence_recall(store, conversations, sc)
                log(f"{name} {label}: recall@20 {at_k[20]:.3f}")
                rows.append([name, label, *(f"{at_k[k]:.3f}" for k in KS), f"{ms:.1f}"])
        finally:
            await store.close()

    async def memory() -> SessionStore:
        return InMemorySessionStore()

    with TemporaryDirectory() as tmp:

        async def sqlite() -> SessionStore:
            store = SQLiteSessionStore(Path(tmp) / "locomo.db")
            await store.setup()
            return store

        await measure("memory (bm25s scan)", memory)
        await measure("SQLite FTS5", sqlite, semantic=True)
    async with fresh_schema(dsn, "bench_recall_q") as schema:

        async def postgres() -> SessionStore:
            store = PostgresSessionStore(dsn, schema=schema, max_size=2, recall=True)
            await store.setup()
            return store

        await measure("PostgreSQL tsvector", postgres)
    n_sessions = sum(len({t.metadata["session"] for t in c.turns}) for c in conversations)
    n_questions = sum(len(c.questions) for c in conversations)
    return [
        f"LoCoMo development half: {len(conversations)} users, {n_sessions} sessions, "
        f"{sum(len(c.turns) for c in conversations):,} turns, {n_questions} questions asked "
        "across each user's sessions. Evidence recall@K of `recall(user, question, limit=K)`"
        + ("" if scorer else " (no semantic scorer installed: lexical only)")
        + ".",
        "",
        md_table(
            ["backend", "ranking", *(f"recall@{k}" for k in KS), "median ms"],
            rows,
            "llrrrr",
        ),
    ]


async def main() -> int:
    started = time.perf_counter()
    dsn = await postgres_dsn()
    conversations = load()
    if not conversations:
        log("LoCoMo data not found: latency on generated prose, no quality figures")
    out = ["## Recall across a user's sessions", ""]
    lat_out, figures = await latency(dsn, conversations)
    out += ["### Latency on PostgreSQL", "", *lat_out, ""]
    if conversations:
        out += ["### LoCoMo cross-session recall", "", *(await quality(dsn, conversations)), ""]
    checks = [
        (
            figures["p50"] <= GOAL_P50_MS,
            f"recall over {SESSIONS:,} sessions x {TURNS_PER_SESSION} turns, p50 "
            f"{figures['p50']:.1f} ms <= {GOAL_P50_MS:.0f} ms",
        ),
        (
            figures["p99"] <= GOAL_P99_MS,
            f"recall over {SESSIONS:,} sessions x {TURNS_PER_SESSION} turns, p99 "
            f"{figures['p99']:.1f} ms <= {GOAL_P99_MS:.0f} ms",
        ),
    ]
    return finish(out, checks, started)


if __name__ == "__main__":
    if "--help" in sys.argv:
        print(__doc__)
        raise SystemExit(0)
    run_main(main)

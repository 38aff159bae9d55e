"""Copy-on-write branches: 10 branches of a 1,000-turn session, each with 10 own turns.

Goal (issue "Branches"): the store holds at most 1.2x the bytes of the parent session alone.
Store-level measurement on PostgreSQL: the parent's turns are persisted in batches like the
worker's flushes; each branch is a header pointing at ``(parent, generation, fork_seq)`` plus its
own turns. Run: ``python -m bench.bench_branches``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bench.common import (
    EXIT_GOAL_MISSED,
    EXIT_OK,
    TextGenerator,
    fresh_schema,
    goal_line,
    log,
    md_table,
    postgres_dsn,
    run_main,
    schema_bytes,
)
from durable_sessions.models import SessionState, SessionTurn
from durable_sessions.stores.base import PersistBatch, read_transcript
from durable_sessions.stores.postgres import PostgresSessionStore

PARENT_TURNS = 1_000
BRANCHES = 10
OWN_TURNS = 10
TURN_BYTES = 500
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def header(session_id: str, turns: int, **kw: object) -> SessionState:
    return SessionState(
        session_id=session_id,
        user_id="bench",
        created_at=T0,
        updated_at=T0,
        turn_count=turns,
        **kw,  # type: ignore[arg-type]
    )


async def main() -> int:
    dsn = await postgres_dsn()
    text = TextGenerator(seed=4)
    async with fresh_schema(dsn, "bench_branches") as schema:
        store = PostgresSessionStore(dsn, schema=schema)
        await store.setup()
        empty = await schema_bytes(dsn, schema)
        log(f"parent: {PARENT_TURNS} turns of ~{TURN_BYTES} B")
        for start in range(0, PARENT_TURNS, 100):
            turns = [
                SessionTurn(
                    role="user",
                    content=text.text(TURN_BYTES),
                    seq=seq,
                    timestamp=T0 + timedelta(seconds=seq),
                    tokens=100,
                )
                for seq in range(start, start + 100)
            ]
            await store.persist(PersistBatch(state=header("parent", start + 100), turns=turns))
        parent_only = await schema_bytes(dsn, schema) - empty
        log(f"{BRANCHES} branches x {OWN_TURNS} own turns")
        for b in range(BRANCHES):
            fork = 100 * (b + 1) - 50
            sid = f"branch-{b}"
            turns = [
                SessionTurn(
                    role="assistant", content=text.text(TURN_BYTES), seq=fork + i, tokens=100
                )
                for i in range(OWN_TURNS)
            ]
            state = header(
                sid,
                fork + OWN_TURNS,
                parent_session_id="parent",
                branch_name=f"b{b}",
                fork_seq=fork,
                parent_generation=0,
            )
            await store.persist(PersistBatch(state=state, turns=turns))
        with_branches = await schema_bytes(dsn, schema) - empty
        check = await read_transcript(store, "branch-9")
        assert len(check) == 950 + OWN_TURNS
        await store.close()
    ratio = with_branches / parent_only
    ok = ratio <= 1.2
    print("## Branch storage (copy-on-write)\n")
    print(
        f"A {PARENT_TURNS}-turn parent (~{TURN_BYTES} B per turn) and {BRANCHES} branches forked "
        f"along it, each with {OWN_TURNS} own turns; PostgreSQL relation sizes (heap, TOAST, "
        "indexes) above an empty schema. A branch's transcript is read through the parent "
        "pointer (checked: a branch forked at turn 950 reads 960 turns).\n"
    )
    print(
        md_table(
            ["stored", "bytes", "vs parent alone"],
            [
                ["parent alone", f"{parent_only:,}", "1.00"],
                [f"parent + {BRANCHES} branches", f"{with_branches:,}", f"{ratio:.3f}"],
            ],
            "lrr",
        )
    )
    print("\n### Goals\n")
    print(goal_line(ok, f"store with branches / parent alone: {ratio:.3f} <= 1.2"))
    return EXIT_OK if ok else EXIT_GOAL_MISSED


if __name__ == "__main__":
    run_main(main)

"""``SessionAnalytics.get_session_stats`` on 10,000 sessions in PostgreSQL.

Goal (issue "HTTP API ... and analytics"): answers in <= 100 ms, computed in the database.
Run: ``python -m bench.bench_stats``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from bench.common import (
    EXIT_GOAL_MISSED,
    EXIT_OK,
    goal_line,
    log,
    md_table,
    median,
    percentile,
    postgres_dsn,
    postgres_store,
    run_main,
)
from durable_sessions.analytics import SessionAnalytics
from durable_sessions.models import Checkpoint, SessionState, SessionStatus
from durable_sessions.stores.base import PersistBatch

SESSIONS = 10_000
USERS = 100
T0 = datetime(2026, 1, 1, tzinfo=UTC)
STATUSES = [
    SessionStatus.ACTIVE,
    SessionStatus.SUSPENDED,
    SessionStatus.CLOSED,
    SessionStatus.EXPIRED,
]


async def main() -> int:
    dsn = await postgres_dsn()
    async with postgres_store(dsn, "bench_stats") as store:
        log(f"{SESSIONS} session headers over {USERS} users, 2 checkpoints each")
        for i in range(SESSIONS):
            at = T0 + timedelta(seconds=i)
            state = SessionState(
                session_id=f"s{i:05d}",
                user_id=f"user-{i % USERS}",
                status=STATUSES[i % 4],
                created_at=at,
                updated_at=at,
                turn_count=i % 50,
                total_tokens=(i % 50) * 120,
                total_cost=(i % 50) * 0.001,
            )
            cps = [
                Checkpoint(
                    checkpoint_id=f"c{i}-{k}",
                    session_id=state.session_id,
                    turn_count=k,
                    created_at=at,
                    reason="auto",
                )
                for k in range(2)
            ]
            await store.persist(PersistBatch(state=state, checkpoints=cps))
        analytics = SessionAnalytics(store)
        timings: dict[str, list[float]] = {"all users": [], "one user": []}
        for _ in range(3):  # warm-up
            await analytics.get_session_stats()
        for _ in range(21):
            for label, user in (("all users", None), ("one user", "user-7")):
                started = time.perf_counter()
                stats = await analytics.get_session_stats(user)
                timings[label].append((time.perf_counter() - started) * 1000)
        total = await analytics.get_session_stats()
        assert total.active + total.suspended + total.closed + total.expired == SESSIONS
    worst = max(median(v) for v in timings.values())
    ok = worst <= 100
    print("## Session statistics on PostgreSQL\n")
    print(
        f"`SessionAnalytics.get_session_stats` over {SESSIONS:,} sessions ({USERS} users, 2 "
        "checkpoints each): counts by status, average turns, checkpoints per session, tokens "
        "and cost, computed by PostgreSQL (indexed aggregate queries). 21 calls each.\n"
    )
    rows = [
        [label, f"{median(v):.1f}", f"{percentile(v, 90):.1f}", f"{max(v):.1f}"]
        for label, v in timings.items()
    ]
    print(md_table(["scope", "median ms", "p90 ms", "max ms"], rows, "lrrr"))
    print(
        f"\nCheck: {total.active} active, {total.suspended} suspended, {total.closed} closed, "
        f"{total.expired} expired; {total.checkpoints_per_session:.1f} checkpoints per session."
    )
    print("\n### Goals\n")
    print(goal_line(ok, f"get_session_stats median {worst:.1f} ms <= 100 ms"))
    del stats
    return EXIT_OK if ok else EXIT_GOAL_MISSED


if __name__ == "__main__":
    run_main(main)

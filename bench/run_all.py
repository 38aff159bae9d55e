"""Run every ``bench/bench_*.py`` and collect their Markdown into ``bench/RESULTS.md``.

Run ``python -m bench`` (or ``python -m bench.run_all``) from the repository root, with
PostgreSQL at ``TEST_DATABASE_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``)
and the peers of ``bench_peers`` installed (``pip install -e '.[bench]'``). Each benchmark runs
in its own process (``python -m bench.<name>``); its progress streams to this terminal, its
stdout becomes its section of the results. ``--only NAME`` runs a subset, ``--output PATH``
writes elsewhere. The exit status is 1 when a benchmark missed a goal or failed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.common import (
    REPO_ROOT,
    CannotRun,
    bundled_binary,
    log,
    postgres_dsn,
    postgres_version,
)

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUTPUT = BENCH_DIR / "RESULTS.md"
TIMEOUT_SECONDS = 30 * 60

STATUS = {0: "ok (no goal missed)", 1: "goal missed", 2: "could not run"}


@dataclass
class Outcome:
    name: str
    status: int
    seconds: float
    markdown: str

    @property
    def verdict(self) -> str:
        return STATUS.get(self.status, f"crashed (exit status {self.status})")


def discover() -> list[str]:
    return sorted(p.stem for p in BENCH_DIR.glob("bench_*.py"))


def run_one(name: str) -> Outcome:
    log(f"=== {name}")
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", f"bench.{name}"],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
        status, stdout = proc.returncode, proc.stdout
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout
        stdout = out.decode() if isinstance(out, bytes) else (out or "")
        status = -1
        stdout += f"\n\n**Timed out after {TIMEOUT_SECONDS} s.**"
    seconds = time.perf_counter() - started
    outcome = Outcome(name, status, seconds, stdout.strip())
    log(f"=== {name}: {outcome.verdict} in {seconds:.0f} s")
    return outcome


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def temporal_cli_version() -> str:
    try:
        out = subprocess.run(
            [bundled_binary("temporal"), "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
    except (OSError, RuntimeError, subprocess.TimeoutExpired):
        return "not found"
    return out.strip().removeprefix("temporal version ") or "unknown"


def pg_version() -> str:
    async def probe() -> str:
        return await postgres_version(await postgres_dsn())

    try:
        return asyncio.run(probe())
    except CannotRun as exc:
        return f"unavailable ({exc})"


def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def header(load_before: str, load_after: str) -> list[str]:
    peers = ", ".join(
        f"{p} {package_version(p)}"
        for p in ("langgraph", "langgraph-checkpoint-postgres", "openai-agents", "sqlalchemy")
    )
    return [
        "# Benchmark results",
        "",
        "Written by `python -m bench` (`bench/run_all.py`); each section below is one "
        "`bench/bench_*.py`, run in its own process. Re-run to refresh; numbers from the dev "
        "server on a small machine are noisy, so compare ratios measured in the same run.",
        "",
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {os.cpu_count()} CPUs (nproc), {cpu_model()}, {platform.system()} "
        f"{platform.release()}",
        f"- Python {platform.python_version()}, temporalio {package_version('temporalio')}, "
        f"Temporal CLI {temporal_cli_version()}",
        f"- PostgreSQL {pg_version()}, asyncpg {package_version('asyncpg')}, "
        f"pydantic {package_version('pydantic')}",
        f"- Peers: {peers}",
        f"- Load average (1 / 5 / 15 min) before the run: {load_before}; after: {load_after}. "
        "Anything else running on the machine (other test suites, say) shows here and "
        "inflates the noise.",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", metavar="NAME", help="e.g. bench_turns")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    names = discover()
    if args.only:
        wanted = {n.removesuffix(".py") for n in args.only}
        unknown = wanted - set(names)
        if unknown:
            parser.error(f"no such benchmark: {', '.join(sorted(unknown))}")
        names = [n for n in names if n in wanted]

    load_before = load_average()
    outcomes = [run_one(name) for name in names]
    lines = header(load_before, load_average())
    lines += [
        "| benchmark | result | wall time |",
        "| --- | --- | ---: |",
        *(f"| `{o.name}.py` | {o.verdict} | {o.seconds:.0f} s |" for o in outcomes),
        "",
    ]
    for o in outcomes:
        lines += [o.markdown or f"## {o.name}\n\n_No output ({o.verdict})._", ""]
    args.output.write_text("\n".join(lines).rstrip() + "\n")
    log(f"wrote {args.output}")
    return 0 if all(o.status == 0 for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())

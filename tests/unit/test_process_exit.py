"""Our commands end their process without interpreter finalization (``_process``), and lose
nothing by it: the same exit status, every ``atexit`` handler run, every buffered line out."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def run(body: str) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(
        """
        import atexit, sys
        from durable_sessions._process import run_as_process
        atexit.register(lambda: print("atexit ran", flush=True))

        def main():
        {body}

        run_as_process(main)
        print("never reached")
        """
    ).format(body=textwrap.indent(textwrap.dedent(body), "    "))
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("body", "status", "stderr_has"),
    [
        ("print('answer', end='')  # buffered: stdout is a pipe", 0, ""),
        ("raise SystemExit(3)", 3, ""),
        ("raise SystemExit('error: what to do next')", 1, "error: what to do next"),
        ("raise SystemExit(None)", 0, ""),
        ("raise KeyboardInterrupt", 130, ""),
        ("raise RuntimeError('boom')", 1, "RuntimeError: boom"),
    ],
)
def test_the_process_ends_with_pythons_status_and_loses_no_output(
    body: str, status: int, stderr_has: str
) -> None:
    done = run(body)
    assert done.returncode == status, done.stderr
    assert stderr_has in done.stderr
    assert "atexit ran" in done.stdout
    assert "never reached" not in done.stdout
    if "answer" in body:
        assert done.stdout.startswith("answer")


def test_the_cli_exits_through_it() -> None:
    """``durable-sessions`` itself: an error's status and message as before."""
    done = subprocess.run(
        [sys.executable, "-m", "durable_sessions.cli", "session", "show", "x", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"DURABLE_SESSIONS_TEMPORAL_ADDRESS": "127.0.0.1:1", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "cannot reach Temporal at 127.0.0.1:1" in done.stderr

"""Which sticky queues a starting worker may release (``durable_sessions._sticky.is_dead``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from durable_sessions._sticky import CLOCK_MARGIN, StickyQueue, is_dead

HOST = socket.gethostname()
UUID = "0123456789abcdef0123456789abcdef"
ME = f"{os.getpid()}@{HOST}"
STARTED = 1_000_000.0


def _queue(identity: str, last_started: float = STARTED - 60) -> StickyQueue:
    return StickyQueue(f"{identity}-{UUID}", last_started)


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], stdout=-1)
    return int(proc.stdout)  # it has exited


def test_a_queue_of_a_process_of_this_host_that_is_gone_is_dead() -> None:
    assert is_dead(_queue(f"{_dead_pid()}@{HOST}"), ME, started=STARTED)


def test_a_queue_of_a_running_process_of_this_host_is_not() -> None:
    assert not is_dead(_queue(f"{os.getppid()}@{HOST}"), ME, started=STARTED)


def test_a_queue_of_another_host_is_never_released() -> None:
    assert not is_dead(_queue(f"{_dead_pid()}@elsewhere-{HOST}"), ME, started=STARTED)


def test_our_own_identity_is_dead_when_no_task_was_started_from_it_since_we_started() -> None:
    # A container restarted keeps its host name and, often, its pid.
    assert is_dead(_queue(ME, STARTED - 5), ME, started=STARTED)
    assert is_dead(_queue(ME, 0.0), ME, started=STARTED)  # tasks scheduled on it, none started
    # A twin with our identity that took a task since we started is alive.
    assert not is_dead(_queue(ME, STARTED - CLOCK_MARGIN / 2), ME, started=STARTED)
    assert not is_dead(_queue(ME, STARTED + 5), ME, started=STARTED)


def test_our_own_identity_is_never_released_while_a_worker_of_ours_polls() -> None:
    assert not is_dead(_queue(ME, STARTED - 5), ME, started=STARTED, polled_here=True)


def test_custom_identities_and_odd_names_are_left_alone() -> None:
    assert not is_dead(_queue(f"{_dead_pid()}@{HOST}"), "my-worker", started=STARTED)
    assert not is_dead(_queue("my-worker"), ME, started=STARTED)
    assert not is_dead(StickyQueue(f"{_dead_pid()}@{HOST}-not-a-uuid", 0.0), ME, started=STARTED)

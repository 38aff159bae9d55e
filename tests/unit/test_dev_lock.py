"""``dev``'s data-directory lock: a new ``dev`` never starts a Temporal server on a database
that the server of an earlier (killed) ``dev`` still has open."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from durable_sessions import dev

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")


def _holder(fd: int, seconds: float) -> subprocess.Popen[bytes]:
    """A process that holds the lock by inheriting ``fd``, as the Temporal server does, with
    ``start-dev`` on its command line."""
    return subprocess.Popen(
        [sys.executable, "-c", f"import time; time.sleep({seconds})", "start-dev"],
        pass_fds=(fd,),
    )


def test_the_lock_is_free_only_when_dev_and_its_server_are_both_gone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = dev._lock_data_dir(tmp_path)
    assert first is not None
    server = _holder(first, 1.5)
    os.close(first)  # ``dev`` is gone (killed); its server still runs

    started = time.monotonic()
    second = dev._lock_data_dir(tmp_path)
    waited = time.monotonic() - started
    assert second is not None
    assert server.poll() is not None, "the lock was taken while the old server still ran"
    assert waited > 0.5
    assert "still in use by the Temporal server of a `dev`" in capsys.readouterr().out
    os.close(second)


def test_an_orphaned_server_that_does_not_stop_is_killed_after_the_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(dev, "DIR_WAIT", 0.5)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # the pid of a ``dev`` that was killed
    first = dev._lock_data_dir(tmp_path)
    assert first is not None
    server = _holder(first, 60)
    os.pwrite(first, f"{gone.pid} {server.pid}\n".encode(), 0)
    os.close(first)

    second = dev._lock_data_dir(tmp_path)
    assert second is not None
    assert server.wait(5) == -9
    assert f"stopping that Temporal server (pid {server.pid})" in capsys.readouterr().out
    os.close(second)


def test_a_running_dev_is_never_killed_the_second_dev_stops_at_once_with_an_error(
    tmp_path: Path,
) -> None:
    first = dev._lock_data_dir(tmp_path)
    assert first is not None
    running_dev = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "durable-sessions", "dev"]
    )
    server = _holder(first, 60)
    os.pwrite(first, f"{running_dev.pid} {server.pid}\n".encode(), 0)
    try:
        started = time.monotonic()
        with pytest.raises(
            SystemExit, match=rf"running `durable-sessions dev` \(pid {running_dev.pid}\)"
        ):
            dev._lock_data_dir(tmp_path)
        assert time.monotonic() - started < dev.DIR_WAIT / 2  # no wait for a dev that stays
        assert server.poll() is None and running_dev.poll() is None
    finally:
        for proc in (server, running_dev):
            proc.kill()
            proc.wait()
        os.close(first)


def test_a_dead_devs_pid_given_to_another_process_is_not_read_as_a_running_dev(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pid in the file may belong to a later, unrelated process: the wait goes on."""
    monkeypatch.setattr(dev, "DIR_WAIT", 0.3)
    first = dev._lock_data_dir(tmp_path)
    assert first is not None
    unrelated = subprocess.Popen(["sleep", "60"])
    server = _holder(first, 60)
    os.pwrite(first, f"{unrelated.pid} {server.pid}\n".encode(), 0)
    os.close(first)
    try:
        second = dev._lock_data_dir(tmp_path)
        assert second is not None
        assert server.wait(5) == -9
        assert unrelated.poll() is None
        os.close(second)
    finally:
        for proc in (server, unrelated):
            proc.kill()
            proc.wait()


def test_the_lock_is_released_when_its_holder_exits_while_another_waits(tmp_path: Path) -> None:
    first = dev._lock_data_dir(tmp_path)
    assert first is not None
    taken: list[int | None] = []
    waiter = threading.Thread(target=lambda: taken.append(dev._lock_data_dir(tmp_path)))
    waiter.start()
    time.sleep(0.3)
    assert not taken, "a second dev took a held lock"
    os.close(first)
    waiter.join(5)
    assert taken and taken[0] is not None
    os.close(taken[0])

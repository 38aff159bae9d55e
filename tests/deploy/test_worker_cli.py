"""``python -m durable_sessions.worker`` as an operator runs it: clear errors, no warnings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import free_port


def test_worker_without_temporal_says_what_to_do(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DURABLE_SESSIONS_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "DURABLE_SESSIONS_DATABASE_URL": f"sqlite:///{tmp_path / 'sessions.db'}",
    }
    proc = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-m", "durable_sessions.worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "cannot reach Temporal at 127.0.0.1:" in proc.stderr
    assert "durable-sessions dev" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "RuntimeWarning" not in proc.stderr

"""``import durable_sessions`` inside a Temporal workflow sandbox (issue 13).

A user's workflow module (``sandboxed_user_workflow``) imports the package for ``SessionTurn``
and runs on a plain ``temporalio`` ``Worker``: no plugin, the default sandbox, which re-imports
every non-standard module for each workflow. Before the package imported its heavy parts lazily
this failed validation: ``cryptography`` was re-imported and raised ``SystemError``.
"""

from __future__ import annotations

import subprocess
import sys
import uuid

from temporalio.client import Client
from temporalio.worker import Worker

from tests.integration.sandboxed_user_workflow import UsesSessionTurn

HEAVY = ("cryptography", "asyncpg", "numpy", "bm25s", "fastapi", "starlette", "temporalio.client")


async def test_a_user_workflow_importing_the_package_runs_in_the_default_sandbox(
    client: Client,
) -> None:
    task_queue = f"sandbox-{uuid.uuid4().hex[:12]}"
    async with Worker(client, task_queue=task_queue, workflows=[UsesSessionTurn]):
        result = await client.execute_workflow(
            UsesSessionTurn.run,
            ["hello", "world"],
            id=f"sandbox-{uuid.uuid4().hex}",
            task_queue=task_queue,
        )
    assert result == ["durable_sessions:0:hello", "durable_sessions:1:world"]


def test_import_durable_sessions_loads_no_heavy_dependency() -> None:
    code = (
        f"import sys, durable_sessions\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"import durable_sessions loaded {out}"

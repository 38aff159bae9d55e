"""deploy/setup.sh against the real dev server: namespace, search attributes, store migrations."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import uuid
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from tests.helpers import bundled_binary

SETUP = Path(__file__).resolve().parents[2] / "deploy" / "setup.sh"


async def run_setup(env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "sh",
        str(SETUP),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode or 0, out.decode()


async def test_setup_script_prepares_a_fresh_namespace(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    namespace = f"setup-{uuid.uuid4().hex[:8]}"
    db = tmp_path / "sessions.db"
    bin_dir = str(Path(bundled_binary("temporal")).parent)  # temporal + durable-sessions
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_SESSIONS_")}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(tmp_path),
        DURABLE_SESSIONS_TEMPORAL_ADDRESS=temporal_env.client.service_client.config.target_host,
        DURABLE_SESSIONS_NAMESPACE=namespace,
        DURABLE_SESSIONS_DATABASE_URL=f"sqlite:///{db}",
        SETUP_WAIT_SECONDS="60",
    )

    started = time.monotonic()
    code, out = await run_setup(env)
    assert code == 0, out
    assert f"creating namespace {namespace}" in out
    assert out.rstrip().endswith("setup: done")
    code, out = await run_setup(env)  # a second `up` runs it again
    assert code == 0, out
    assert f"namespace {namespace} exists" in out
    assert time.monotonic() - started < 90

    listed = await temporal_env.client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    keyword = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    assert listed.custom_attributes["SessionUserId"] == keyword
    assert listed.custom_attributes["SessionStatus"] == keyword
    with sqlite3.connect(db) as conn:  # `durable-sessions db upgrade` created the schema
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
    assert {"sessions", "turns", "checkpoints"} <= tables


async def test_setup_script_fails_clearly_without_temporal(tmp_path: Path) -> None:
    bin_dir = str(Path(bundled_binary("temporal")).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_SESSIONS_")}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(tmp_path),
        DURABLE_SESSIONS_TEMPORAL_ADDRESS="127.0.0.1:1",
        DURABLE_SESSIONS_DATABASE_URL=f"sqlite:///{tmp_path / 's.db'}",
        SETUP_WAIT_SECONDS="2",
    )
    code, out = await run_setup(env)
    assert code != 0
    assert "Temporal health: still failing after 2s" in out

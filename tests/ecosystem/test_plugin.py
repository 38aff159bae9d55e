"""``DurableSessionsPlugin`` on a user's own, plain temporalio client and worker."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import DataConverter, PayloadCodec
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

import durable_sessions
from durable_sessions.client import SessionManager
from durable_sessions.models import SessionConfig, SessionStatus, SessionTurn
from durable_sessions.plugin import (
    PASSTHROUGH_MODULES,
    DurableSessionsPlugin,
    InlineActivations,
    with_passthrough,
    with_pydantic_payloads,
)
from durable_sessions.stores.base import read_transcript
from durable_sessions.stores.postgres import PostgresSessionStore
from durable_sessions.workflows.session import SessionWorkflow
from tests.helpers import assert_eventually
from tests.pg import postgres_dsn_or_skip, temporary_schema

HISTORIES = Path(__file__).parents[1] / "histories"


@activity.defn
async def shout(text: str) -> str:
    return text.upper()


@workflow.defn(sandboxed=False)
class UsersOwnWorkflow:
    """A workflow of the user's, on the same worker as the sessions."""

    @workflow.run
    async def run(self, text: str) -> str:
        from datetime import timedelta

        result: str = await workflow.execute_activity(
            shout, text, start_to_close_timeout=timedelta(seconds=10)
        )
        return result


@workflow.defn(sandboxed=False)
class ThreadNameWorkflow:
    """Reports the thread its activations run on (deliberately not deterministic: a test probe)."""

    @workflow.run
    async def run(self) -> list[str]:
        first = threading.current_thread().name
        await workflow.sleep(0.01)  # a second activation, after a timer
        return [first, threading.current_thread().name]


@workflow.defn(sandboxed=False)
class OtherThreadNameWorkflow(ThreadNameWorkflow):
    """The same probe, as a workflow the executor was not told to run inline."""

    @workflow.run
    async def run(self) -> list[str]:
        return await super().run()


def target(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


@pytest_asyncio.fixture(loop_scope="session")
async def fresh_pg_store() -> AsyncIterator[PostgresSessionStore]:
    """A PostgreSQL store on an empty schema that nobody has set up: the plugin must."""
    dsn = await postgres_dsn_or_skip()
    async with temporary_schema(dsn) as schema:
        s = PostgresSessionStore(dsn, schema=schema)
        try:
            yield s
        finally:
            await s.close()


async def test_plugin_on_a_plain_client_and_worker_runs_the_session_lifecycle(
    temporal_env: WorkflowEnvironment, fresh_pg_store: PostgresSessionStore, task_queue: str
) -> None:
    store = fresh_pg_store
    plugin = DurableSessionsPlugin(store)
    client = await Client.connect(target(temporal_env), plugins=[plugin])
    assert issubclass(client.data_converter.payload_converter_class, PydanticPayloadConverter)
    manager = SessionManager(
        client, store, SessionConfig(flush_interval=0.2), task_queue=task_queue
    )

    # A plain Worker: the client's plugin adds our workflows and activities to the user's own.
    async with Worker(
        client, task_queue=task_queue, workflows=[UsersOwnWorkflow], activities=[shout]
    ):
        state = await manager.create("plugin-user", {"via": "plugin"})
        first = await manager.add_turn(state.session_id, SessionTurn(role="user", content="hi"))
        second = await manager.add_turn(
            state.session_id, SessionTurn(role="assistant", content="hello!")
        )
        assert (first.seq, second.seq) == (0, 1)

        assert (await manager.suspend(state.session_id)).status == SessionStatus.SUSPENDED
        assert (await manager.resume(state.session_id)).status == SessionStatus.ACTIVE
        third = await manager.add_turn(state.session_id, SessionTurn(role="user", content="bye"))
        assert third.seq == 2
        closed = await manager.close(state.session_id)
        assert closed.status == SessionStatus.CLOSED

        history = await manager.history(state.session_id)
        assert [t.content for t in history] == ["hi", "hello!", "bye"]
        assert [t.seq for t in history] == [0, 1, 2]

        # The worker set the unmigrated store up itself, and the turns are in it.
        header = await store.get_session(state.session_id)
        assert header is not None and header.status == SessionStatus.CLOSED
        stored = await read_transcript(store, state.session_id)
        assert [t.turn_id for t in stored] == [first.turn_id, second.turn_id, third.turn_id]

        # The user's own workflow still runs next to ours.
        result = await client.execute_workflow(
            UsersOwnWorkflow.run, "quiet", id=f"own-{task_queue}", task_queue=task_queue
        )
        assert result == "QUIET"


async def test_our_activations_run_on_the_event_loop_and_the_users_in_threads(
    temporal_env: WorkflowEnvironment, store: durable_sessions.SessionStore, task_queue: str
) -> None:
    client = await durable_sessions.connect(target(temporal_env))
    plugin = DurableSessionsPlugin(store)
    # The plugin gives a worker without an executor of its own one that runs ours inline ...
    ours = Worker(client, task_queue=f"{task_queue}-ours", plugins=[plugin])
    installed = ours.config(active_config=True)
    executor = installed.get("workflow_task_executor")
    assert isinstance(executor, InlineActivations)
    assert SessionWorkflow in executor.inline
    # ... and leaves one the user gave alone.
    own = ThreadPoolExecutor(max_workers=2)
    kept = Worker(
        client, task_queue=f"{task_queue}-own", plugins=[plugin], workflow_task_executor=own
    )
    assert kept.config(active_config=True).get("workflow_task_executor") is own
    own.shutdown()

    probe = InlineActivations([ThreadNameWorkflow], max_workers=2)
    loop_thread = threading.current_thread().name
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[ThreadNameWorkflow, OtherThreadNameWorkflow],
        workflow_task_executor=probe,
    ):
        inline = await client.execute_workflow(
            ThreadNameWorkflow.run, id=f"inline-{uuid.uuid4().hex}", task_queue=task_queue
        )
        threaded = await client.execute_workflow(
            OtherThreadNameWorkflow.run, id=f"threaded-{uuid.uuid4().hex}", task_queue=task_queue
        )
    probe.shutdown()
    assert inline == [loop_thread, loop_thread]
    assert all(name.startswith("temporal_workflow_") for name in threaded), threaded


async def test_worker_only_plugin_with_a_pydantic_client(
    temporal_env: WorkflowEnvironment, store: durable_sessions.SessionStore, task_queue: str
) -> None:
    client = await durable_sessions.connect(target(temporal_env))
    manager = SessionManager(
        client, store, SessionConfig(flush_interval=0.2), task_queue=task_queue
    )
    async with Worker(client, task_queue=task_queue, plugins=[DurableSessionsPlugin(store)]):
        s = await manager.create("worker-plugin-user")
        await manager.add_turn(s.session_id, SessionTurn(role="user", content="one"))
        await manager.add_turn(s.session_id, SessionTurn(role="assistant", content="two"))
        assert [t.content for t in await manager.history(s.session_id)] == ["one", "two"]

        async def flushed() -> None:
            header = await store.get_session(s.session_id)
            assert header is not None and header.turn_count == 2

        await assert_eventually(flushed)


async def test_worker_only_plugin_refuses_a_client_without_pydantic_payloads(
    temporal_env: WorkflowEnvironment, store: durable_sessions.SessionStore, task_queue: str
) -> None:
    client = await Client.connect(target(temporal_env))
    with pytest.raises(ValueError, match="pydantic payloads"):
        Worker(client, task_queue=task_queue, plugins=[DurableSessionsPlugin(store)])


class _MarkerCodec(PayloadCodec):
    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)


def test_converter_keeps_an_existing_codec() -> None:
    codec = _MarkerCodec()
    existing = dataclasses.replace(DataConverter.default, payload_codec=codec)
    converted = with_pydantic_payloads(existing)
    assert converted.payload_codec is codec
    assert issubclass(converted.payload_converter_class, PydanticPayloadConverter)
    assert with_pydantic_payloads(converted) is converted
    assert issubclass(
        with_pydantic_payloads(None).payload_converter_class, PydanticPayloadConverter
    )


def test_runner_extends_the_users_sandbox() -> None:
    users = SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("my_models")
    )
    runner = with_passthrough(users)
    assert isinstance(runner, SandboxedWorkflowRunner)
    assert {"my_models", *PASSTHROUGH_MODULES} <= set(runner.restrictions.passthrough_modules)
    unsandboxed = UnsandboxedWorkflowRunner()
    assert with_passthrough(unsandboxed) is unsandboxed


async def test_replayer_with_the_plugin_replays_recorded_histories() -> None:
    plugin = DurableSessionsPlugin(durable_sessions.InMemorySessionStore())
    replayer = Replayer(workflows=[], plugins=[plugin])
    for name in ("lifecycle", "ttl_expiry"):
        path = HISTORIES / f"{name}.json"
        await replayer.replay_workflow(WorkflowHistory.from_json(name, path.read_text()))

"""Metrics and tracing on a real worker: one Prometheus endpoint serves the SDK's and ours."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import urllib.request
import uuid
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.common import MetricMeter
from temporalio.runtime import Runtime
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from durable_sessions import metrics
from durable_sessions.activities.context import ContextActivities
from durable_sessions.activities.persistence import PersistenceActivities
from durable_sessions.client import SessionManager, connect
from durable_sessions.models import SessionConfig, SessionTurn
from durable_sessions.stores.base import PersistBatch
from durable_sessions.stores.memory import InMemorySessionStore
from durable_sessions.worker import WORKFLOWS, workflow_runner
from tests.helpers import assert_eventually, free_port


class MeteredPersistence(PersistenceActivities):
    """``persist_batch`` with the recorder call the production activity is to make."""

    @activity.defn(name="persist_batch")
    async def persist_batch(self, batch: PersistBatch) -> None:
        with metrics.stopwatch() as sw:
            await super().persist_batch(batch)
        metrics.record_flush(len(batch.turns), sw.seconds, len(batch.checkpoints))


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        body: bytes = resp.read()
        return body.decode()


def total(text: str, name: str, **labels: str) -> float:
    """Sum of a metric's samples (exact name) whose labels include ``labels``."""
    found = 0.0
    for m in re.finditer(
        rf"^{re.escape(name)}(?:\{{(?P<labels>[^}}]*)\}})? (?P<v>\S+)$", text, re.M
    ):
        have = dict(re.findall(r'(\w+)="([^"]*)"', m["labels"] or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            found += float(m["v"])
    return found


@pytest.fixture(scope="module")
def metrics_runtime() -> tuple[Runtime, int]:
    port = free_port()
    return metrics.runtime_with_metrics(port, host="127.0.0.1"), port


async def metered_client(env: WorkflowEnvironment, runtime: Runtime, **kwargs: Any) -> Client:
    target = env.client.service_client.config.target_host
    return await connect(target, namespace=env.client.namespace, runtime=runtime, **kwargs)


async def test_our_metrics_share_the_sdk_endpoint(
    temporal_env: WorkflowEnvironment, task_queue: str, metrics_runtime: tuple[Runtime, int]
) -> None:
    runtime, port = metrics_runtime
    client = await metered_client(temporal_env, runtime)
    store = InMemorySessionStore()
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=[
            *MeteredPersistence(store).all(),
            *ContextActivities(store, on_prune=metrics.record_prune).all(),
        ],
        workflow_runner=workflow_runner(),
    )
    manager = SessionManager(
        client, store, SessionConfig(flush_interval=0.1), task_queue, call_timeout=10
    )
    async with worker:
        state = await manager.create("metrics-user")
        for i in range(5):
            await manager.add_turn(state.session_id, SessionTurn(role="user", content=f"hi {i}"))
        await manager.checkpoint(state.session_id)
        await manager.context(state.session_id, "hi 3", max_turns=2)
        await manager.close(state.session_id)

        async def moved() -> str:
            text = await asyncio.to_thread(scrape, port)
            assert total(text, "durable_sessions_turns_total", task_queue=task_queue) >= 5
            return text

        text = await assert_eventually(moved, timeout=20)

    labels = {"task_queue": task_queue, "activity_type": "persist_batch"}
    assert total(text, "durable_sessions_turns_total", **labels) >= 5
    assert total(text, "durable_sessions_checkpoints_total", **labels) >= 2  # manual + close
    flushes = total(text, "durable_sessions_flush_batch_size_count", **labels)
    assert flushes >= 1
    assert total(text, "durable_sessions_flush_batch_size_sum", **labels) >= 5
    assert total(text, "durable_sessions_flush_seconds_count", **labels) == flushes
    assert "durable_sessions_flush_seconds_bucket{" in text and 'le="0.005"' in text
    assert total(text, "durable_sessions_prune_seconds_count", task_queue=task_queue) >= 1
    # ... on the endpoint that also serves the SDK's own metrics.
    assert total(text, "temporal_activity_execution_latency_count", task_queue=task_queue) >= 1
    assert total(text, "temporal_workflow_completed", task_queue=task_queue) >= 1


def test_recorders_are_no_ops_outside_temporal() -> None:
    assert metrics.current_meter() is MetricMeter.noop
    metrics.record_flush(3, 0.01, 1)
    metrics.record_prune(0.002)
    metrics.record_turns(2)
    metrics.record_checkpoints(0)
    with metrics.stopwatch() as sw:
        pass
    assert 0 <= sw.seconds < 1
    assert sw.seconds == sw.seconds  # frozen once the block exits


async def test_recorders_take_an_explicit_meter(metrics_runtime: tuple[Runtime, int]) -> None:
    runtime, port = metrics_runtime
    marker = uuid.uuid4().hex
    meter = runtime.metric_meter.with_additional_attributes({"probe": marker})
    metrics.record_flush(7, 0.02, 2, meter=meter)
    metrics.record_prune(0.3, meter=meter)

    async def recorded() -> str:
        text = await asyncio.to_thread(scrape, port)
        assert total(text, "durable_sessions_turns_total", probe=marker) == 7
        return text

    text = await assert_eventually(recorded, timeout=10)
    assert total(text, "durable_sessions_checkpoints_total", probe=marker) == 2
    assert total(text, "durable_sessions_flush_batch_size_bucket", probe=marker, le="10") == 1
    assert total(text, "durable_sessions_flush_batch_size_bucket", probe=marker, le="5") == 0
    assert total(text, "durable_sessions_flush_seconds_bucket", probe=marker, le="0.025") == 1
    assert total(text, "durable_sessions_prune_seconds_sum", probe=marker) == pytest.approx(0.3)


def test_tracing_interceptors_off_and_missing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert metrics.tracing_interceptors(False) == []
    monkeypatch.setitem(sys.modules, "temporalio.contrib.opentelemetry", None)
    with caplog.at_level(logging.WARNING, logger="durable_sessions.metrics"):
        assert metrics.tracing_interceptors(True) == []
    assert "OpenTelemetry is not installed" in caplog.text


async def test_tracing_interceptor_traces_a_session(
    temporal_env: WorkflowEnvironment, task_queue: str
) -> None:
    pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from temporalio.contrib.opentelemetry import TracingInterceptor

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # The interceptor uses the global provider; set ours unless something already did.
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(provider)
    else:  # pragma: no cover - another test configured OpenTelemetry first
        pytest.skip("a global tracer provider is already configured")

    interceptors = metrics.tracing_interceptors(True)
    assert [type(i) for i in interceptors] == [TracingInterceptor]
    target = temporal_env.client.service_client.config.target_host
    client = await connect(
        target, namespace=temporal_env.client.namespace, interceptors=interceptors
    )
    store = InMemorySessionStore()
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=PersistenceActivities(store).all(),
        workflow_runner=workflow_runner(),
    )
    manager = SessionManager(
        client, store, SessionConfig(flush_interval=0.1), task_queue, call_timeout=10
    )
    async with worker:
        state = await manager.create("traced")
        await manager.add_turn(state.session_id, SessionTurn(role="user", content="hello"))
        await manager.close(state.session_id)
    provider.force_flush()
    names = {s.name for s in exporter.get_finished_spans()}
    assert "RunWorkflow:Session" in names, names  # the workflow, in the sandbox
    assert "HandleUpdate:add_turn" in names, names
    assert "RunActivity:persist_batch" in names, names
    assert "StartWorkflowUpdate:add_turn" in names, names  # the client side

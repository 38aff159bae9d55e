"""Our own metrics and tracing, on the Temporal SDK's telemetry.

The counters and histograms below are created on the SDK's ``MetricMeter`` (the worker
runtime's meter, reached through ``temporalio.activity.metric_meter()`` in an activity or
``temporalio.workflow.metric_meter()`` in a workflow), so the Prometheus endpoint the SDK
already serves for its own metrics serves ours too: one scrape target per worker.

``runtime_with_metrics(port)`` builds that runtime. Pass it to ``Client.connect(runtime=...)``
(``durable_sessions.connect(..., runtime=...)``); workers created from that client record into it.
Without such a runtime every ``record_*`` call is a cheap no-op.

Metric names (Prometheus, with the runtime's default ``counters_total_suffix=False``):

* ``durable_sessions_turns_total`` (counter): turns written to the store. A flush that Temporal
  retries after a failure counts again (activities run at least once).
* ``durable_sessions_checkpoints_total`` (counter): checkpoints written to the store.
* ``durable_sessions_flush_batch_size`` (histogram): turns per flush.
* ``durable_sessions_flush_seconds`` (histogram): time to write one flush to the store.
* ``durable_sessions_prune_seconds`` (histogram): time to compute one pruned context.

Activities add the SDK's ``namespace``, ``task_queue`` and ``activity_type`` labels.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from temporalio import activity, workflow
from temporalio.client import Interceptor
from temporalio.common import MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

__all__ = [
    "CHECKPOINTS_TOTAL",
    "FLUSH_BATCH_SIZE",
    "FLUSH_SECONDS",
    "HISTOGRAM_BUCKETS",
    "PRUNE_SECONDS",
    "TURNS_TOTAL",
    "Stopwatch",
    "current_meter",
    "prometheus_config",
    "record_checkpoints",
    "record_flush",
    "record_prune",
    "record_turns",
    "runtime_with_metrics",
    "stopwatch",
    "tracing_interceptors",
]

log = logging.getLogger("durable_sessions.metrics")

TURNS_TOTAL = "durable_sessions_turns_total"
CHECKPOINTS_TOTAL = "durable_sessions_checkpoints_total"
FLUSH_BATCH_SIZE = "durable_sessions_flush_batch_size"
FLUSH_SECONDS = "durable_sessions_flush_seconds"
PRUNE_SECONDS = "durable_sessions_prune_seconds"

_SECONDS_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
HISTOGRAM_BUCKETS: Mapping[str, Sequence[float]] = {
    FLUSH_BATCH_SIZE: (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
    FLUSH_SECONDS: _SECONDS_BUCKETS,
    PRUNE_SECONDS: _SECONDS_BUCKETS,
}
"""Bucket boundaries for our histograms. The SDK's default buckets (50 ... 10,000) are meant
for milliseconds; a runtime built without these overrides still works, with useless buckets."""


def prometheus_config(bind_address: str) -> PrometheusConfig:
    """The SDK's Prometheus exporter on ``bind_address`` (``host:port``), with our buckets."""
    return PrometheusConfig(
        bind_address=bind_address, histogram_bucket_overrides=dict(HISTOGRAM_BUCKETS)
    )


def runtime_with_metrics(port: int, *, host: str = "0.0.0.0") -> Runtime:
    """A Temporal runtime serving ``http://host:port/metrics``: the SDK's metrics and ours.

    Create one per process (each binds its port) and pass it to every client of the process.
    """
    return Runtime(telemetry=TelemetryConfig(metrics=prometheus_config(f"{host}:{port}")))


def current_meter() -> MetricMeter:
    """The meter of the running activity or workflow; a no-op meter anywhere else.

    The workflow meter skips recording during replay, so a workflow may record safely.
    """
    if activity.in_activity():
        try:
            return activity.metric_meter()
        except RuntimeError:  # a sync, non-threaded activity has no meter
            return MetricMeter.noop
    if workflow.in_workflow():
        return workflow.metric_meter()
    return MetricMeter.noop


def record_turns(count: int = 1, *, meter: MetricMeter | None = None) -> None:
    """Add ``count`` to ``durable_sessions_turns_total``."""
    if count > 0:
        (meter or current_meter()).create_counter(
            TURNS_TOTAL, "Turns written to the session store."
        ).add(count)


def record_checkpoints(count: int = 1, *, meter: MetricMeter | None = None) -> None:
    """Add ``count`` to ``durable_sessions_checkpoints_total``."""
    if count > 0:
        (meter or current_meter()).create_counter(
            CHECKPOINTS_TOTAL, "Checkpoints written to the session store."
        ).add(count)


def record_flush(
    batch_size: int, seconds: float, checkpoints: int = 0, *, meter: MetricMeter | None = None
) -> None:
    """Record one flush written to the store: its turns, checkpoints and duration.

    Call it from the flush activity after the store accepted the batch.
    """
    m = meter or current_meter()
    record_turns(batch_size, meter=m)
    record_checkpoints(checkpoints, meter=m)
    m.create_histogram(FLUSH_BATCH_SIZE, "Turns per flush to the session store.").record(
        max(0, batch_size)
    )
    m.create_histogram_float(
        FLUSH_SECONDS, "Seconds to write one flush to the session store.", "s"
    ).record(max(0.0, seconds))


def record_prune(seconds: float, *, meter: MetricMeter | None = None) -> None:
    """Record the time one pruned context took to compute."""
    (meter or current_meter()).create_histogram_float(
        PRUNE_SECONDS, "Seconds to compute one pruned context.", "s"
    ).record(max(0.0, seconds))


@dataclass
class Stopwatch:
    """Seconds since ``stopwatch()`` was entered; frozen when the block exits."""

    started: float
    stopped: float | None = None

    @property
    def seconds(self) -> float:
        end = self.stopped if self.stopped is not None else time.perf_counter()
        return end - self.started


@contextmanager
def stopwatch() -> Iterator[Stopwatch]:
    """``with stopwatch() as sw: ...`` then ``sw.seconds`` (for activities, not workflows)."""
    sw = Stopwatch(time.perf_counter())
    try:
        yield sw
    finally:
        sw.stopped = time.perf_counter()


def tracing_interceptors(enabled: bool) -> list[Interceptor]:
    """``[TracingInterceptor()]`` when ``enabled`` and OpenTelemetry is installed, else ``[]``.

    Pass the list as ``interceptors=`` to ``Client.connect`` (``durable_sessions.connect``): the
    interceptor traces client calls and, for workers created from that client, workflows and
    activities. Spans go to the global OpenTelemetry tracer provider; configuring an exporter is
    the application's job (for example with ``opentelemetry-instrument``).
    """
    if not enabled:
        return []
    try:
        from temporalio.contrib.opentelemetry import TracingInterceptor
    except ImportError:
        log.warning(
            "tracing requested but OpenTelemetry is not installed: "
            "pip install 'durable-sessions[otel]' (opentelemetry-api and opentelemetry-sdk)"
        )
        return []
    return [TracingInterceptor()]

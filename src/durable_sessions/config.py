"""One settings object for the worker, the CLI and the HTTP API, read from the environment.

Every variable has the prefix ``DURABLE_SESSIONS_``; nothing is read at import time.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from durable_sessions.workflows.messages import DEFAULT_TASK_QUEUE

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Deployment settings (see the README's table)."""

    model_config = SettingsConfigDict(env_prefix="DURABLE_SESSIONS_", extra="ignore")

    temporal_address: str = "localhost:7233"
    """``host:port`` of the Temporal frontend."""
    namespace: str = "default"
    task_queue: str = DEFAULT_TASK_QUEUE
    database_url: str | None = None
    """``postgresql://...`` or ``sqlite:///path``. None: the embedded SQLite file ``dev`` uses."""
    tls_cert: str | None = None
    """Path of the client certificate (mTLS)."""
    tls_key: str | None = None
    """Path of the client private key (mTLS)."""
    tls_ca: str | None = None
    """Path of the server CA certificate."""
    api_key: str | None = None
    """Temporal Cloud API key (implies TLS)."""
    encryption_keys: str | None = None
    """``id1:base64key,id2:base64key``, newest last."""
    metrics_port: int | None = None
    http_api_keys: str | None = None
    """``<key>=<user_id>`` pairs, comma-separated; ``sha256:<hex>=<user_id>`` for a stored hash."""
    http_port: int = 8000
    max_concurrent_workflow_tasks: int | None = Field(default=None, ge=1)
    """Workflow tasks a worker runs at once; ``create_worker``'s default is 16 (see
    ``worker.WORKFLOW_TASK_SLOTS``)."""
    max_concurrent_activities: int | None = Field(default=None, ge=1)
    sandbox: bool = False
    """Run workflows in Temporal's sandbox (about twice the CPU per workflow task; see
    ``worker.workflow_runner``)."""
    max_cached_workflows: int = Field(default=1000, ge=0)
    """Sessions a worker keeps in memory; memory is ~115 MB + ~0.15-0.2 MB per slot (measured
    by ``bench/bench_scale.py``), however many sessions are live."""
    redis_url: str | None = None
    """``redis://...``: a read-through cache of headers and recent turns in front of the store."""
    tracing: bool = False
    """OpenTelemetry tracing through Temporal's interceptor (needs the ``otel`` extra)."""
    agents: str | None = None
    """Agents this worker runs: ``module:attribute`` references, comma-separated."""
    call_timeout: float = Field(default=10.0, gt=0)
    """Seconds a client call waits for a worker before ``WorkerUnavailableError``."""

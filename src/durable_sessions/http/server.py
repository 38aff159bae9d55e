"""``durable-sessions serve``: the HTTP API under uvicorn, from ``DURABLE_SESSIONS_*`` settings.

Reads the Temporal connection, the store, ``HTTP_API_KEYS`` and ``HTTP_PORT`` from the
environment like the worker does; it needs a worker running on the same task queue.
"""

from __future__ import annotations

import logging

from durable_sessions.config import Settings
from durable_sessions.errors import TemporalUnavailableError

__all__ = ["DEFAULT_HOST", "main", "run_server"]

log = logging.getLogger("durable_sessions.http")

DEFAULT_HOST = "0.0.0.0"
"""All interfaces: ``serve`` is a service, and every request needs an API key."""


async def run_server(
    settings: Settings | None = None, *, host: str = DEFAULT_HOST, port: int | None = None
) -> None:
    """Serve the API until SIGTERM or SIGINT (uvicorn's graceful shutdown)."""
    import uvicorn

    from durable_sessions.client import SessionManager
    from durable_sessions.http.app import create_app
    from durable_sessions.http.auth import parse_api_keys
    from durable_sessions.runtime import client_from_settings, store_from_settings

    settings = settings or Settings()
    try:
        api_keys = parse_api_keys(settings.http_api_keys or "")
    except ValueError as exc:
        raise SystemExit(f"error: DURABLE_SESSIONS_HTTP_API_KEYS: {exc}") from None
    if not api_keys:
        raise SystemExit(
            "error: set DURABLE_SESSIONS_HTTP_API_KEYS (<key>=<user_id>, comma-separated; "
            "sha256:<hex>=<user_id> for a stored hash): without a key every request is refused"
        )
    store = store_from_settings(settings)
    await store.setup()
    try:
        try:
            client = await client_from_settings(settings)
        except TemporalUnavailableError as exc:
            raise SystemExit(f"error: {exc}") from None
        manager = SessionManager(
            client, store, task_queue=settings.task_queue, call_timeout=settings.call_timeout
        )
        app = create_app(manager, api_keys)
        config = uvicorn.Config(
            app,
            host=host,
            port=settings.http_port if port is None else port,
            lifespan="off",
            log_level="info",
            proxy_headers=True,
        )
        log.info(
            "HTTP API for task queue %r on %s (namespace %r), %d API key(s)",
            settings.task_queue,
            settings.temporal_address,
            settings.namespace,
            len(api_keys),
        )
        await uvicorn.Server(config).serve()
    finally:
        await store.close()


def main() -> None:
    import asyncio

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(run_server())


if __name__ == "__main__":
    from durable_sessions._process import run_as_process

    run_as_process(main)

"""``connect()``: a Temporal client with durable-sessions' data converter (and encryption).

Private; re-exported by ``durable_sessions.client`` and the package.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.client import Client
from temporalio.service import TLSConfig

from durable_sessions.converter import session_data_converter
from durable_sessions.encryption import EncryptionConfig, KeyStore, data_converter
from durable_sessions.errors import TemporalUnavailableError

__all__ = ["connect"]


async def connect(
    target: str = "localhost:7233",
    *,
    namespace: str = "default",
    tls: TLSConfig | bool = False,
    api_key: str | None = None,
    encryption: EncryptionConfig | None = None,
    keystore: KeyStore | None = None,
    starting_timeout: float = 10.0,
    **kwargs: Any,
) -> Client:
    """A Temporal client with our data converter; ``SessionManager`` and workers take it.

    With ``encryption`` every payload is AES-256-GCM encrypted before it leaves the process
    (``durable_sessions.encryption``), failure messages included; workers built from the client
    and stores used with it encrypt too. With a ``keystore`` as well (shared by every client and
    worker), each session gets its own data key, and ``SessionManager.delete`` crypto-erases it.

    A server that is still starting (it answers "Frontend is not healthy yet", as a dev server
    or a compose stack does for a moment after its port opens) is waited for, at most
    ``starting_timeout`` seconds; any other connection failure is raised at once.

    Raises:
        TemporalUnavailableError: no Temporal server answered at ``target`` (refused, not
            resolvable, TLS or auth refused, or still starting after ``starting_timeout``).
            The SDK's own error is its ``__cause__``.
    """
    if keystore is not None and encryption is None:
        raise ValueError("keystore= needs encryption=EncryptionConfig(...)")
    converter = session_data_converter
    if encryption is not None:
        if keystore is not None:
            await keystore.setup()
        converter = data_converter(encryption, keystore)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + starting_timeout
    while True:
        try:
            return await Client.connect(
                target,
                namespace=namespace,
                data_converter=converter,
                tls=tls if api_key is None else (tls or True),
                api_key=api_key,
                **kwargs,
            )
        except RuntimeError as exc:
            if "not healthy yet" in str(exc) and loop.time() < deadline:
                await asyncio.sleep(0.1)
                continue
            raise TemporalUnavailableError(_unreachable(target, namespace, str(exc))) from exc


def _unreachable(target: str, namespace: str, detail: str) -> str:
    """What a failed connection says: where, why in the SDK's words (no payloads in them), and
    what to do next."""
    reason = detail.removeprefix("Failed client connect: ").strip()
    return (
        f"cannot reach Temporal at {target} (namespace {namespace!r}): {reason[:300]}. "
        "Is the server running and reachable? `durable-sessions dev` runs one locally on "
        "localhost:7233; elsewhere set DURABLE_SESSIONS_TEMPORAL_ADDRESS to its address."
    )

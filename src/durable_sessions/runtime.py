"""Build clients and stores from ``Settings`` (shared by the worker, the CLI and the HTTP API)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.service import TLSConfig

from durable_sessions.client import connect
from durable_sessions.config import Settings
from durable_sessions.encryption import EncryptionConfig, KeyStore, keystore_for
from durable_sessions.stores.base import SessionStore

__all__ = [
    "client_from_settings",
    "data_dir",
    "default_database_url",
    "encryption_from_settings",
    "keystore_from_settings",
    "store_from_settings",
    "tls_from_settings",
]


def data_dir() -> Path:
    """Where ``dev`` keeps its files: ``$DURABLE_SESSIONS_HOME`` or the XDG data directory."""
    home = os.environ.get("DURABLE_SESSIONS_HOME")
    if home:
        return Path(home)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "durable-sessions"


def default_database_url() -> str:
    """The embedded SQLite file of ``durable-sessions dev``: the store when none is configured."""
    return f"sqlite:///{data_dir() / 'sessions.db'}"


def tls_from_settings(settings: Settings) -> TLSConfig | bool:
    if not (settings.tls_cert or settings.tls_key or settings.tls_ca):
        return settings.api_key is not None
    return TLSConfig(
        client_cert=Path(settings.tls_cert).read_bytes() if settings.tls_cert else None,
        client_private_key=Path(settings.tls_key).read_bytes() if settings.tls_key else None,
        server_root_ca_cert=Path(settings.tls_ca).read_bytes() if settings.tls_ca else None,
    )


def encryption_from_settings(settings: Settings) -> EncryptionConfig | None:
    """``DURABLE_SESSIONS_ENCRYPTION_KEYS`` parsed; None when encryption is off."""
    keys = settings.encryption_keys
    return EncryptionConfig.parse(keys) if keys and keys.strip() else None


def keystore_from_settings(
    settings: Settings, store: SessionStore | None = None
) -> KeyStore | None:
    """Where per-session keys live when encryption is on: next to the session store (same
    PostgreSQL schema, a sibling SQLite file). Every process of a deployment derives the same
    one, so clients, workers and the codec server agree on every session's key."""
    if encryption_from_settings(settings) is None:
        return None
    return keystore_for(store if store is not None else store_from_settings(settings))


async def client_from_settings(
    settings: Settings, *, keystore: KeyStore | None = None, **connect_kwargs: Any
) -> Client:
    """A client per the settings, encrypting (with per-session keys) when keys are configured.

    Without ``keystore`` the default one is built and lives as long as the process.
    """
    encryption = encryption_from_settings(settings)
    if encryption is not None and keystore is None:
        keystore = keystore_from_settings(settings)
    return await connect(
        settings.temporal_address,
        namespace=settings.namespace,
        tls=tls_from_settings(settings),
        api_key=settings.api_key,
        encryption=encryption,
        keystore=keystore,
        **connect_kwargs,
    )


def store_from_settings(settings: Settings) -> SessionStore:
    """The configured store; without a database URL, the embedded SQLite file of ``dev``."""
    from durable_sessions.stores.factory import store_from_url

    url = settings.database_url or default_database_url()
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    store = store_from_url(url)
    if settings.redis_url:
        from durable_sessions.stores.redis import RedisSessionStore

        store = RedisSessionStore(settings.redis_url, store)
    return store

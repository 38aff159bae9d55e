"""Payload encryption and per-session crypto-erasure.

With an ``EncryptionConfig`` on the client (``durable_sessions.connect(..., encryption=...)``)
every payload Temporal stores — turn text, metadata, workflow state, failure messages — is
AES-256-GCM encrypted before it leaves the process. With a ``KeyStore`` as well, each session
gets its own data key: destroying it (``SessionManager.delete``) makes the session's history
and its ``EncryptedStore`` rows unreadable for good, while other sessions stay readable.

Pieces::

    EncryptionConfig      master keys (id -> 32 bytes) and the active one; rotation = append
    KeyStore              wrapped session keys: InMemoryKeyStore, PostgresKeyStore, SQLiteKeyStore
    Keyring               master + session keys of one process (LRU/TTL cache), destroy, rewrap
    EncryptionCodec       the Temporal PayloadCodec (serialization context -> session key)
    data_converter()      pydantic converter + codec + encrypted failure attributes
    SessionCipher         encrypt_text / decrypt_text with a session's key
    EncryptedStore        wraps any SessionStore: turn text and metadata encrypted at rest
    codec_app()           codec server for the Temporal UI (FastAPI, bearer token, CORS)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from durable_sessions.encryption._codec import (
    ENCODING,
    METADATA_KEY_ID,
    SESSION_KEY_PREFIX,
    EncryptionCodec,
    codec_of,
    data_converter,
    destroy_session_key,
    keyring_of,
)
from durable_sessions.encryption._config import ENV_VAR, KEY_BYTES, EncryptionConfig, generate_key
from durable_sessions.encryption._errors import (
    DecryptionError,
    EncryptionError,
    SessionKeyDestroyedError,
    SessionKeyMissingError,
    UnknownKeyError,
)
from durable_sessions.encryption._keyring import Keyring
from durable_sessions.encryption._keystore import (
    InMemoryKeyStore,
    KeyStore,
    PostgresKeyStore,
    SQLiteKeyStore,
    WrappedKey,
    keystore_for,
)
from durable_sessions.encryption._store import EncryptedStore, SessionCipher, encrypt_store

if TYPE_CHECKING:
    from durable_sessions.encryption._server import codec_app

__all__ = [
    "ENCODING",
    "ENV_VAR",
    "KEY_BYTES",
    "METADATA_KEY_ID",
    "SESSION_KEY_PREFIX",
    "DecryptionError",
    "EncryptedStore",
    "EncryptionCodec",
    "EncryptionConfig",
    "EncryptionError",
    "InMemoryKeyStore",
    "KeyStore",
    "Keyring",
    "PostgresKeyStore",
    "SQLiteKeyStore",
    "SessionCipher",
    "SessionKeyDestroyedError",
    "SessionKeyMissingError",
    "UnknownKeyError",
    "WrappedKey",
    "codec_app",
    "codec_of",
    "data_converter",
    "destroy_session_key",
    "encrypt_store",
    "generate_key",
    "keyring_of",
    "keystore_for",
]


def __getattr__(name: str) -> Any:
    # ``codec_app`` pulls in FastAPI; only those who serve the codec need it installed.
    if name == "codec_app":
        from durable_sessions.encryption._server import codec_app

        return codec_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

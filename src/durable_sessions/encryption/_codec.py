"""The AES-GCM ``PayloadCodec`` and the data converter that puts it on a Temporal client.

Why it looks the way it does:

* **Whole payloads are encrypted.** The original ``Payload`` (metadata included: the
  ``encoding`` and pydantic's type hints say something about the data too) is serialized and
  becomes the plaintext; the outer payload says only ``binary/encrypted`` and which key.
* **Self-describing.** ``encryption-key-id`` names the key: a master key id, or
  ``session/<session id>`` for a session's data key. Decoding never depends on the context it
  runs in, so the codec server (which only knows the namespace), the CLI and replays decode
  alike, and payloads written before a rotation keep decoding after it.
* **Serialization context picks the session.** Temporal 1.35 hands a codec that implements
  ``WithSerializationContext`` the workflow id of the payload's workflow (for workflow inputs,
  results, updates, queries, signals, activity inputs and results); session id = workflow id, so
  ``with_context`` returns a copy bound to that session's key. Payloads without a workflow
  (client-level, standalone activities, Nexus) use the active master key.
* **Failures too.** With ``DefaultFailureConverterWithEncodedAttributes`` the message and stack
  trace of every failure move into a payload this codec encrypts: a turn echoed by a validation
  error or a database error message cannot reach history in plaintext.
* **Not encrypted:** workflow ids (session ids), search attributes (user id, status), workflow,
  activity, update and signal names, and ``ApplicationError`` types: Temporal needs them in the
  clear, and none of them may carry conversation text (``ARCHITECTURE.md``). Activity and timer
  summaries are payloads and are encrypted like the rest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Self

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)

from durable_sessions.converter import session_data_converter
from durable_sessions.encryption._config import EncryptionConfig
from durable_sessions.encryption._errors import DecryptionError
from durable_sessions.encryption._keyring import Keyring, aad, open_sealed, seal
from durable_sessions.encryption._keystore import KeyStore

__all__ = [
    "ENCODING",
    "METADATA_KEY_ID",
    "SESSION_KEY_PREFIX",
    "EncryptionCodec",
    "codec_of",
    "data_converter",
    "destroy_session_key",
    "keyring_of",
]

ENCODING = b"binary/encrypted"
METADATA_KEY_ID = "encryption-key-id"
METADATA_CIPHER = "encryption-cipher"
CIPHER = b"AES-256-GCM"
SESSION_KEY_PREFIX = "session/"
"""``encryption-key-id`` of a payload under a session's data key: ``session/<session id>``."""
_PURPOSE = "durable-sessions/payload/v1"
_MAX_LAYERS = 8


def _session_of(context: SerializationContext) -> str | None:
    if isinstance(context, WorkflowSerializationContext):
        return context.workflow_id
    if isinstance(context, ActivitySerializationContext):
        return context.workflow_id
    return None


class EncryptionCodec(PayloadCodec, WithSerializationContext):
    """Encrypts every payload with AES-256-GCM; see the module docstring.

    Args:
        keyring: The keys (shared by every per-workflow copy, and so is its cache).
        session_id: The session whose key new payloads use; None: the active master key.
            Set by ``with_context``, not by callers.
    """

    def __init__(self, keyring: Keyring, *, session_id: str | None = None) -> None:
        self.keyring = keyring
        self.session_id = session_id

    def with_context(self, context: SerializationContext) -> Self:
        """A copy bound to the context's workflow (= session), when sessions have own keys."""
        session_id = _session_of(context) if self.keyring.per_session else None
        if session_id == self.session_id:
            return self
        return type(self)(self.keyring, session_id=session_id)

    async def _encryption_key(self) -> tuple[str, AESGCM]:
        if self.session_id is not None:
            key = await self.keyring.session_key(self.session_id, create=True)
            return SESSION_KEY_PREFIX + self.session_id, key
        key_id = self.keyring.active_id
        return key_id, self.keyring.master(key_id)

    async def _decryption_key(self, key_id: str) -> AESGCM:
        if key_id.startswith(SESSION_KEY_PREFIX):
            session_id = key_id[len(SESSION_KEY_PREFIX) :]
            return await self.keyring.session_key(session_id, create=False)
        return self.keyring.master(key_id)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Encrypt every payload, including one that already is (decoding peels every layer):
        skipping payloads that merely claim to be encrypted would let plaintext through."""
        if not payloads:
            return []
        key_id, key = await self._encryption_key()
        associated = aad(_PURPOSE, key_id)
        return [
            Payload(
                metadata={
                    "encoding": ENCODING,
                    METADATA_KEY_ID: key_id.encode("utf-8"),
                    METADATA_CIPHER: CIPHER,
                },
                data=seal(key, payload.SerializeToString(), associated),
            )
            for payload in payloads
        ]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Decrypt encrypted payloads; others (written before encryption was on) pass as is."""
        return [await self.decode_one(payload) for payload in payloads]

    async def decode_one(self, payload: Payload) -> Payload:
        """Decrypt one payload (every layer of it); a plaintext payload is returned as is.

        Raises:
            SessionKeyDestroyedError: If it belongs to an erased session.
            UnknownKeyError: If its master key is not configured.
            DecryptionError: If it is malformed or does not authenticate.
        """
        for _ in range(_MAX_LAYERS):
            if payload.metadata.get("encoding") != ENCODING:
                return payload
            raw_id = payload.metadata.get(METADATA_KEY_ID)
            if not raw_id:
                raise DecryptionError(f"encrypted payload without {METADATA_KEY_ID!r} metadata")
            key_id = raw_id.decode("utf-8")
            key = await self._decryption_key(key_id)
            plaintext = open_sealed(key, payload.data, aad(_PURPOSE, key_id), "payload")
            payload = Payload()
            payload.ParseFromString(plaintext)
        raise DecryptionError(f"payload nested more than {_MAX_LAYERS} encryption layers deep")


def data_converter(
    config: EncryptionConfig,
    keystore: KeyStore | None = None,
    *,
    keyring: Keyring | None = None,
    base: DataConverter = session_data_converter,
) -> DataConverter:
    """The project's pydantic data converter with the encryption codec and encrypted failures.

    Args:
        config: Master keys.
        keystore: Where per-session data keys live; None: master-key encryption only (no
            per-session crypto-erasure).
        keyring: Use this keyring (and its cache) instead of building one from the above.
        base: The converter to add encryption to.
    """
    ring = keyring if keyring is not None else Keyring(config, keystore)
    return dataclasses.replace(
        base,
        payload_codec=EncryptionCodec(ring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def codec_of(source: Any) -> EncryptionCodec | None:
    """The ``EncryptionCodec`` of a ``Client`` or ``DataConverter``, None if it has none."""
    converter = getattr(source, "data_converter", source)
    codec = getattr(converter, "payload_codec", None)
    return codec if isinstance(codec, EncryptionCodec) else None


def keyring_of(source: Any) -> Keyring | None:
    """The ``Keyring`` behind a ``Client`` or ``DataConverter``, None without encryption."""
    codec = codec_of(source)
    return None if codec is None else codec.keyring


async def destroy_session_key(source: Any, session_id: str) -> bool:
    """Crypto-erase a session through a client's codec.

    Returns True when a live key was destroyed; False when there was none (already erased, or
    never written) or the client has no per-session keys (then there is nothing to erase).

    What ``SessionManager.delete`` calls after terminating the workflow: from then on neither
    the session's history nor its (``EncryptedStore``) rows can be decrypted by anyone.
    """
    ring = keyring_of(source)
    if ring is None or not ring.per_session:
        return False
    return await ring.destroy(session_id)

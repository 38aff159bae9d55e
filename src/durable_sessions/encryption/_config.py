"""``EncryptionConfig``: the master keys, and which one new writes use.

Why it looks the way it does:

* **Several keys, one active.** Rotation must never make old history unreadable: Temporal keeps a
  session's history for as long as it runs (plus retention), and workers replay it. So the config
  holds every key that may still be needed, each under a short id recorded next to what it
  encrypted, and only ``active`` is used for new writes.
* **Plain dataclass, keys hidden from ``repr``.** Configs end up in logs and tracebacks; the key
  bytes must not. Validation happens once, at construction.
* **``id:base64key`` strings.** One environment variable (``DURABLE_SESSIONS_ENCRYPTION_KEYS``)
  carries the whole key set; newest last is the active one, so rotating is appending.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["ENV_VAR", "KEY_BYTES", "TTL_ENV_VAR", "EncryptionConfig", "generate_key"]

KEY_BYTES = 32
"""AES-256: every master key is 32 random bytes."""

ENV_VAR = "DURABLE_SESSIONS_ENCRYPTION_KEYS"
TTL_ENV_VAR = "DURABLE_SESSIONS_ENCRYPTION_KEY_CACHE_TTL"
"""Seconds a process reuses a session key (``key_cache_ttl``); 0: erasure immediate everywhere."""

_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
"""Key ids travel in payload metadata and in ``id:key`` lists: no ``:``, ``,`` or ``/``."""


def generate_key() -> str:
    """A new random master key, base64-encoded (what ``from_env`` expects after ``id:``)."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


@dataclass(frozen=True)
class EncryptionConfig:
    """Master keys for payload encryption.

    Args:
        keys: Key id -> 32-byte AES-256 key. Keep every key that encrypted something still
            readable (history of live sessions, wrapped session keys) until it was re-wrapped.
        active: The id of the key new payloads and new session keys are encrypted with.
        key_cache_ttl: Seconds a process keeps using a session's unwrapped data key before
            asking the key store again. It bounds crypto-erasure: the process that deletes a
            session stops at once, every other process within ``key_cache_ttl``. ``0`` makes
            erasure immediate everywhere, at the cost of one key-store read per payload
            encoded or decoded.

    Raises:
        ValueError: If a key is not 32 bytes, an id is malformed, ``active`` is unknown or
            ``key_cache_ttl`` is negative.
    """

    keys: Mapping[str, bytes] = field(repr=False)
    active: str
    key_cache_ttl: float = 60.0

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("EncryptionConfig needs at least one key")
        for key_id, key in self.keys.items():
            if not _KEY_ID.match(key_id):
                raise ValueError(
                    f"key id {key_id!r} must be 1-64 characters of letters, digits, '_', '.', '-'"
                )
            if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
                raise ValueError(f"key {key_id!r} must be {KEY_BYTES} bytes (AES-256)")
        if self.active not in self.keys:
            raise ValueError(f"active key {self.active!r} is not one of the configured keys")
        if not self.key_cache_ttl >= 0:
            raise ValueError("key_cache_ttl must be >= 0 seconds")
        # Frozen copy: a caller mutating its dict later must not change a live codec's keys.
        object.__setattr__(
            self, "keys", MappingProxyType({k: bytes(v) for k, v in self.keys.items()})
        )

    @property
    def key_ids(self) -> list[str]:
        """Configured key ids, in the order given."""
        return list(self.keys)

    def key(self, key_id: str) -> bytes | None:
        """The key with this id, or None."""
        return self.keys.get(key_id)

    def rotate(self, key_id: str, key: bytes) -> EncryptionConfig:
        """A config with ``key`` added under ``key_id`` and made active; old keys stay."""
        if key_id in self.keys:
            raise ValueError(f"key id {key_id!r} is already configured")
        return EncryptionConfig(
            keys={**self.keys, key_id: key}, active=key_id, key_cache_ttl=self.key_cache_ttl
        )

    def without(self, key_id: str) -> EncryptionConfig:
        """A config without a retired key (only once nothing needs it: see ``Keyring.rewrap``)."""
        if key_id == self.active:
            raise ValueError("the active key cannot be removed")
        return EncryptionConfig(
            keys={k: v for k, v in self.keys.items() if k != key_id},
            active=self.active,
            key_cache_ttl=self.key_cache_ttl,
        )

    @classmethod
    def parse(cls, spec: str) -> EncryptionConfig:
        """Parse ``id1:base64key,id2:base64key``; the last entry is the active key.

        Raises:
            ValueError: On a malformed entry, a duplicate id, or a key that is not 32 bytes of
                base64. The message never contains key material.
        """
        keys: dict[str, bytes] = {}
        last: str | None = None
        for position, raw in enumerate(spec.split(","), start=1):
            entry = raw.strip()
            if not entry:
                continue
            key_id, sep, encoded = entry.partition(":")
            key_id = key_id.strip()
            if not sep or not key_id:
                raise ValueError(f"encryption key entry {position} must look like id:base64key")
            if key_id in keys:
                raise ValueError(f"encryption key id {key_id!r} appears twice")
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"encryption key {key_id!r} is not valid base64") from None
            keys[key_id] = key
            last = key_id
        if last is None:
            raise ValueError("no encryption keys given (expected id1:base64key,id2:base64key)")
        return cls(keys=keys, active=last)

    @classmethod
    def from_env(cls, spec: str | None = None) -> EncryptionConfig | None:
        """Parse ``spec``, or ``$DURABLE_SESSIONS_ENCRYPTION_KEYS`` when ``spec`` is None.

        Returns None when neither is set (encryption off), so callers can write
        ``connect(..., encryption=EncryptionConfig.from_env(settings.encryption_keys))``.
        ``$DURABLE_SESSIONS_ENCRYPTION_KEY_CACHE_TTL`` (seconds) sets ``key_cache_ttl``.
        """
        if spec is None:
            spec = os.environ.get(ENV_VAR)
        if spec is None or not spec.strip():
            return None
        config = cls.parse(spec)
        ttl = os.environ.get(TTL_ENV_VAR, "").strip()
        if ttl:
            try:
                seconds = float(ttl)
            except ValueError:
                raise ValueError(f"{TTL_ENV_VAR} must be a number of seconds") from None
            config = dataclasses.replace(config, key_cache_ttl=seconds)
        return config

"""Crypto-erasure across processes: the bound is ``EncryptionConfig.key_cache_ttl``, and ``0``
makes it immediate everywhere (every use of a key asks the key store for its tombstone)."""

from __future__ import annotations

import base64
import dataclasses

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import WorkflowSerializationContext

from durable_sessions.encryption import (
    EncryptionCodec,
    EncryptionConfig,
    InMemoryKeyStore,
    Keyring,
    SessionKeyDestroyedError,
)


def _payload(text: str) -> Payload:
    return pydantic_data_converter.payload_converter.to_payloads([text])[0]


_CTX = WorkflowSerializationContext(namespace="default", workflow_id="A")


async def test_zero_key_cache_ttl_erases_at_once_in_every_process(
    config: EncryptionConfig,
) -> None:
    immediate = dataclasses.replace(config, key_cache_ttl=0)
    keystore = InMemoryKeyStore()
    writer = Keyring(immediate, keystore)
    [a] = await EncryptionCodec(writer).with_context(_CTX).encode([_payload("t")])
    other = EncryptionCodec(Keyring(immediate, keystore))  # another process: its own cache
    await other.decode([a])
    await other.decode([a])  # used twice while live
    await writer.destroy("A")
    with pytest.raises(SessionKeyDestroyedError):
        await other.decode([a])  # no TTL window: the tombstone is seen on the next use


async def test_default_bound_is_the_configured_ttl(config: EncryptionConfig) -> None:
    assert config.key_cache_ttl == 60.0
    assert Keyring(config).cache_ttl == 60.0
    assert Keyring(dataclasses.replace(config, key_cache_ttl=5)).cache_ttl == 5
    assert config.rotate("k9", b"\x01" * 32).key_cache_ttl == config.key_cache_ttl
    with pytest.raises(ValueError, match="key_cache_ttl"):
        dataclasses.replace(config, key_cache_ttl=-1)


def test_key_cache_ttl_from_the_environment(
    config: EncryptionConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = "k1:" + base64.b64encode(config.keys["k1"]).decode()
    monkeypatch.setenv("DURABLE_SESSIONS_ENCRYPTION_KEY_CACHE_TTL", "0")
    loaded = EncryptionConfig.from_env(spec)
    assert loaded is not None and loaded.key_cache_ttl == 0
    monkeypatch.setenv("DURABLE_SESSIONS_ENCRYPTION_KEY_CACHE_TTL", "soon")
    with pytest.raises(ValueError, match="KEY_CACHE_TTL"):
        EncryptionConfig.from_env(spec)

"""The codec, keyring and config on their own: formats, rotation, erasure, caching."""

from __future__ import annotations

import asyncio
import base64
import dataclasses

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    ActivitySerializationContext,
    DefaultFailureConverterWithEncodedAttributes,
    WorkflowSerializationContext,
)
from temporalio.exceptions import ApplicationError

from durable_sessions.encryption import (
    ENCODING,
    METADATA_KEY_ID,
    DecryptionError,
    EncryptionCodec,
    EncryptionConfig,
    InMemoryKeyStore,
    Keyring,
    SessionKeyDestroyedError,
    SessionKeyMissingError,
    UnknownKeyError,
    WrappedKey,
    codec_of,
    data_converter,
    destroy_session_key,
    keyring_of,
)
from durable_sessions.errors import SessionNotFoundError
from durable_sessions.models import SessionTurn
from tests.encryption.conftest import new_key


def _ctx(workflow_id: str) -> WorkflowSerializationContext:
    return WorkflowSerializationContext(namespace="default", workflow_id=workflow_id)


def _payload(text: str) -> Payload:
    return pydantic_data_converter.payload_converter.to_payloads([text])[0]


# ---------------------------------------------------------------------- config


def test_parse_spec_newest_last_is_active() -> None:
    k1, k2 = new_key(), new_key()
    spec = f"k1:{base64.b64encode(k1).decode()}, k2:{base64.b64encode(k2).decode()}"
    config = EncryptionConfig.from_env(spec)
    assert config is not None
    assert config.active == "k2"
    assert config.key("k1") == k1 and config.key("k2") == k2


def test_from_env_reads_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DURABLE_SESSIONS_ENCRYPTION_KEYS", raising=False)
    assert EncryptionConfig.from_env() is None
    key = base64.b64encode(new_key()).decode()
    monkeypatch.setenv("DURABLE_SESSIONS_ENCRYPTION_KEYS", f"main:{key}")
    config = EncryptionConfig.from_env()
    assert config is not None and config.active == "main"


_B64X = base64.b64encode(b"x" * 32).decode()


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("k1", "id:base64key"),
        ("k1:not base64!", "not valid base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "32 bytes"),
        (f"k1:{_B64X},k1:{_B64X}", "twice"),
        (f"bad/id:{_B64X}", "key id"),
        (" , ", "no encryption keys"),
    ],
)
def test_parse_rejects_bad_specs_without_echoing_keys(spec: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        EncryptionConfig.parse(spec)
    assert "eHh4" not in str(info.value)  # base64 of "xxx": no key material in messages


def test_config_hides_keys_and_validates_active() -> None:
    key = new_key()
    config = EncryptionConfig(keys={"k1": key}, active="k1")
    assert key.hex() not in repr(config) and repr(key) not in repr(config)
    with pytest.raises(ValueError, match="active"):
        EncryptionConfig(keys={"k1": key}, active="k2")
    rotated = config.rotate("k2", new_key())
    assert rotated.active == "k2" and rotated.key_ids == ["k1", "k2"]
    assert rotated.without("k1").key_ids == ["k2"]


# ---------------------------------------------------------------------- master-key codec


async def test_payloads_round_trip_with_fresh_nonces(config: EncryptionConfig) -> None:
    codec = EncryptionCodec(Keyring(config))
    original = _payload("a secret turn")
    first, second = await codec.encode([original, original])
    assert first.metadata["encoding"] == ENCODING
    assert first.metadata[METADATA_KEY_ID] == b"k1"
    assert b"a secret turn" not in first.data and b"json/plain" not in first.data
    assert first.data != second.data  # a random nonce per payload
    assert await codec.decode([first, second]) == [original, original]


async def test_plaintext_payloads_pass_through_decode(config: EncryptionConfig) -> None:
    codec = EncryptionCodec(Keyring(config))
    plain = _payload("written before encryption was on")
    assert await codec.decode([plain]) == [plain]


async def test_encode_never_trusts_an_encrypted_label(config: EncryptionConfig) -> None:
    codec = EncryptionCodec(Keyring(config))
    fake = Payload(metadata={"encoding": ENCODING}, data=b"plaintext in disguise")
    [sealed] = await codec.encode([fake])
    assert b"in disguise" not in sealed.data
    [twice] = await codec.encode(await codec.encode([_payload("layers")]))
    assert await codec.decode([twice]) == [_payload("layers")]  # every layer peeled


async def test_tampered_or_foreign_payloads_fail_clearly(config: EncryptionConfig) -> None:
    codec = EncryptionCodec(Keyring(config))
    [encoded] = await codec.encode([_payload("x")])
    tampered = Payload()
    tampered.CopyFrom(encoded)
    tampered.data = encoded.data[:-1] + bytes([encoded.data[-1] ^ 1])
    with pytest.raises(DecryptionError, match="does not authenticate"):
        await codec.decode([tampered])
    other = EncryptionCodec(Keyring(EncryptionConfig(keys={"k1": new_key()}, active="k1")))
    with pytest.raises(DecryptionError):
        await other.decode([encoded])
    stranger = EncryptionCodec(Keyring(EncryptionConfig(keys={"k9": new_key()}, active="k9")))
    with pytest.raises(UnknownKeyError, match="'k1' is not configured"):
        await stranger.decode([encoded])


async def test_rotation_keeps_old_payloads_readable(config: EncryptionConfig) -> None:
    """(c) Payloads written under k1 decode after k2 became active; new ones use k2."""
    old = await EncryptionCodec(Keyring(config)).encode([_payload("before rotation")])
    rotated = EncryptionCodec(Keyring(config.rotate("k2", new_key())))
    new = await rotated.encode([_payload("after rotation")])
    assert new[0].metadata[METADATA_KEY_ID] == b"k2"
    assert await rotated.decode(old + new) == [
        _payload("before rotation"),
        _payload("after rotation"),
    ]


async def test_data_converter_encrypts_values_and_failure_messages(
    config: EncryptionConfig,
) -> None:
    converter = data_converter(config)
    assert converter.failure_converter_class is DefaultFailureConverterWithEncodedAttributes
    turn = SessionTurn(role="user", content="pydantic survives encryption")
    [payload] = await converter.encode([turn])
    assert b"pydantic survives" not in payload.SerializeToString()
    assert await converter.decode([payload], [SessionTurn]) == [turn]

    from temporalio.api.failure.v1 import Failure

    failure = Failure()
    await converter.encode_failure(ApplicationError("leaked secret-7731 in a message"), failure)
    assert failure.message == "Encoded failure" and not failure.stack_trace
    assert b"secret-7731" not in failure.SerializeToString()
    decoded = await converter.decode_failure(failure)
    assert "secret-7731" in str(decoded)


# ---------------------------------------------------------------------- session keys


async def test_context_selects_the_session_key(config: EncryptionConfig) -> None:
    keystore = InMemoryKeyStore()
    codec = EncryptionCodec(Keyring(config, keystore))
    wf = codec.with_context(_ctx("session-a"))
    act = codec.with_context(
        ActivitySerializationContext(
            namespace="default",
            activity_id="1",
            activity_type="persist_batch",
            activity_task_queue="q",
            workflow_id="session-a",
            workflow_type="Session",
            is_local=False,
        )
    )
    standalone = codec.with_context(
        ActivitySerializationContext(
            namespace="default",
            activity_id="1",
            activity_type="x",
            activity_task_queue="q",
            workflow_id=None,
            workflow_type=None,
            is_local=False,
        )
    )
    [a1] = await wf.encode([_payload("a")])
    [a2] = await act.encode([_payload("a")])
    [m] = await standalone.encode([_payload("m")])
    assert a1.metadata[METADATA_KEY_ID] == a2.metadata[METADATA_KEY_ID] == b"session/session-a"
    assert m.metadata[METADATA_KEY_ID] == b"k1"
    stored = await keystore.get_wrapped("session-a")
    assert stored is not None and stored.key_id == "k1" and stored.wrapped is not None
    # Decoding needs no context: any codec with the keys opens all of them.
    fresh = EncryptionCodec(Keyring(config, keystore))
    assert await fresh.decode([a1, a2, m]) == [_payload("a"), _payload("a"), _payload("m")]


async def test_without_keystore_context_is_ignored(config: EncryptionConfig) -> None:
    codec = EncryptionCodec(Keyring(config))
    assert codec.with_context(_ctx("s")) is codec


async def test_destroyed_key_erases_one_session_only(config: EncryptionConfig) -> None:
    """(b, unit) After destroying A's key, A's payloads never decrypt again; B's do."""
    keystore = InMemoryKeyStore()
    ring = Keyring(config, keystore)
    codec = EncryptionCodec(ring)
    [a] = await codec.with_context(_ctx("A")).encode([_payload("A's turn")])
    [b] = await codec.with_context(_ctx("B")).encode([_payload("B's turn")])
    assert await ring.destroy("A") is True
    assert await ring.destroy("A") is False  # idempotent
    for reader in (codec, EncryptionCodec(Keyring(config, keystore))):
        with pytest.raises(SessionKeyDestroyedError, match="'A' was destroyed") as info:
            await reader.decode([a])
        assert isinstance(info.value, SessionNotFoundError)
        assert await reader.decode([b]) == [_payload("B's turn")]
    # The id is erased for good: writing for it does not mint a fresh key.
    with pytest.raises(SessionKeyDestroyedError):
        await (
            EncryptionCodec(Keyring(config, keystore))
            .with_context(_ctx("A"))
            .encode([_payload("again")])
        )
    assert (await keystore.get_wrapped("A")) == WrappedKey.tombstone()


async def test_other_processes_stop_decrypting_within_the_cache_ttl(
    config: EncryptionConfig,
) -> None:
    keystore = InMemoryKeyStore()
    writer = Keyring(config, keystore)
    [a] = await EncryptionCodec(writer).with_context(_ctx("A")).encode([_payload("t")])
    other = EncryptionCodec(Keyring(config, keystore, cache_ttl=0.2))
    await other.decode([a])  # caches A's key
    await writer.destroy("A")
    await other.decode([a])  # still within the TTL: the documented window
    await asyncio.sleep(0.25)
    with pytest.raises(SessionKeyDestroyedError):
        await other.decode([a])


async def test_missing_session_key_is_not_minted_on_decode(config: EncryptionConfig) -> None:
    codec = EncryptionCodec(Keyring(config, InMemoryKeyStore()))
    [a] = await codec.with_context(_ctx("A")).encode([_payload("t")])
    with pytest.raises(SessionKeyMissingError):
        await EncryptionCodec(Keyring(config, InMemoryKeyStore())).decode([a])


async def test_wrapped_keys_are_bound_to_their_session(config: EncryptionConfig) -> None:
    keystore = InMemoryKeyStore()
    codec = EncryptionCodec(Keyring(config, keystore))
    await codec.with_context(_ctx("A")).encode([_payload("t")])
    stolen = await keystore.get_wrapped("A")
    assert stolen is not None
    await keystore.put_wrapped("B", stolen)  # A's wrapped key copied into B's row
    with pytest.raises(DecryptionError, match="session 'B'"):
        await (
            EncryptionCodec(Keyring(config, keystore))
            .with_context(_ctx("B"))
            .encode([_payload("t")])
        )


async def test_rewrap_retires_the_old_master_key(config: EncryptionConfig) -> None:
    keystore = InMemoryKeyStore()
    old_ring = Keyring(config, keystore)
    [a] = await EncryptionCodec(old_ring).with_context(_ctx("A")).encode([_payload("t")])
    await EncryptionCodec(old_ring).with_context(_ctx("gone")).encode([_payload("t")])
    await old_ring.destroy("gone")
    rotated = config.rotate("k2", new_key())
    assert await Keyring(rotated, keystore).rewrap(batch=1) == 1
    stored = await keystore.get_wrapped("A")
    assert stored is not None and stored.key_id == "k2"
    assert await keystore.get_wrapped("gone") == WrappedKey.tombstone()
    retired = EncryptionCodec(Keyring(rotated.without("k1"), keystore))
    assert await retired.decode([a]) == [_payload("t")]


async def test_key_cache_is_bounded(config: EncryptionConfig) -> None:
    ring = Keyring(config, InMemoryKeyStore(), cache_size=3)
    codec = EncryptionCodec(ring)
    for i in range(10):
        await codec.with_context(_ctx(f"s{i}")).encode([_payload("t")])
    assert len(ring._cache) == 3


async def test_helpers_find_the_codec_on_a_converter(config: EncryptionConfig) -> None:
    converter = data_converter(config, InMemoryKeyStore())
    assert codec_of(converter) is converter.payload_codec
    ring = keyring_of(converter)
    assert ring is not None and ring.per_session
    assert codec_of(pydantic_data_converter) is None
    assert await destroy_session_key(pydantic_data_converter, "x") is False
    [p] = await ring_codec(converter).with_context(_ctx("x")).encode([_payload("t")])
    assert await destroy_session_key(converter, "x") is True
    with pytest.raises(SessionKeyDestroyedError):
        await ring_codec(converter).decode([p])
    # dataclasses.replace keeps the codec: what create_worker / Client see.
    assert codec_of(dataclasses.replace(converter)) is converter.payload_codec


def ring_codec(converter: object) -> EncryptionCodec:
    codec = codec_of(converter)
    assert codec is not None
    return codec


def test_public_names_resolve() -> None:
    import durable_sessions.encryption as encryption

    for name in encryption.__all__:
        assert getattr(encryption, name) is not None, name
    assert sorted(encryption.__all__) == sorted(set(encryption.__all__))

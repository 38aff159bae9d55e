"""Encryption against a real Temporal dev server and PostgreSQL: what history really holds.

(a) no turn text, metadata or failure message is in history in plaintext, yet all of it
    decodes with the codec; (b) deleting a session destroys its key: its history no longer
    decrypts, other sessions' does; (c) rotating the master key keeps old history readable
    (workers replay it) while new payloads use the new key.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import ClassVar

import pytest
from temporalio.api.failure.v1 import Failure
from temporalio.client import WorkflowUpdateFailedError
from temporalio.converter import DefaultFailureConverterWithEncodedAttributes, PayloadConverter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from durable_sessions.encryption import (
    ENCODING,
    METADATA_KEY_ID,
    EncryptedStore,
    EncryptionConfig,
    PostgresKeyStore,
    SessionKeyDestroyedError,
    UnknownKeyError,
    codec_of,
)
from durable_sessions.errors import SessionNotFoundError
from durable_sessions.models import SessionTurn
from durable_sessions.stores.base import PersistBatch, SessionStore
from durable_sessions.workflows.messages import RestoreRequest
from tests.encryption.conftest import encrypted_client, encrypted_stack, new_key, with_converter
from tests.encryption.history import payloads_and_failures, raw_histories
from tests.helpers import assert_eventually


def _failure_chain(error: BaseException | None) -> list[ApplicationError]:
    chain: list[ApplicationError] = []
    while error is not None:
        assert isinstance(error, ApplicationError)
        chain.append(error)
        error = error.__cause__
    return chain


class RecordingFailureConverter(DefaultFailureConverterWithEncodedAttributes):
    """Notes each failure's ``message`` as it arrived (the codec never touches that field)."""

    received: ClassVar[list[str]] = []

    def from_failure(self, failure: Failure, payload_converter: PayloadConverter) -> BaseException:
        self.received.append(failure.message)
        return super().from_failure(failure, payload_converter)


class EchoingFlakyStore(EncryptedStore):
    """Fails the first four flushes of turns with a message that echoes turn text, like some
    driver errors do ("Failing row contains (...)"). The flush is a local activity tried three
    times: its last failure is recorded in its marker; the fourth failure is the first attempt
    of the ordinary activity it falls back to, recorded as that activity's last failure.

    An ``EncryptedStore`` itself, so ``create_worker`` does not wrap it once more."""

    FAILURES = 4

    def __init__(self, store: SessionStore) -> None:
        assert isinstance(store, EncryptedStore)
        super().__init__(store.inner, store.cipher)
        self.failed = 0

    async def persist(self, batch: PersistBatch) -> None:
        if batch.turns and self.failed < self.FAILURES:
            self.failed += 1
            raise RuntimeError(f"could not store row ({batch.turns[0].content})")
        await super().persist(batch)


async def test_history_holds_no_plaintext_and_decodes_with_the_codec(
    temporal_env: WorkflowEnvironment,
    config: EncryptionConfig,
    pg_keystore: PostgresKeyStore,
    pg_store: SessionStore,
    task_queue: str,
) -> None:
    """(a)"""
    mark = uuid.uuid4().hex[:10]
    texts = [f"turn-text-{mark}-{i}" for i in range(4)]
    turn_meta = f"turn-meta-{mark}"
    session_meta = f"session-meta-{mark}"
    signal_text = f"signal-text-{mark}"
    rejected = f"rejected-input-{mark}"
    async with encrypted_stack(
        temporal_env, config, pg_keystore, task_queue, pg_store, worker_store=EchoingFlakyStore
    ) as stack:
        manager = stack.manager
        sid = (await manager.create("user-a", metadata={"title": session_meta})).session_id
        # One batch, then nothing until it is stored: its flush is the timer's (a local
        # activity, then the ordinary activity it falls back to), not one riding on a later
        # turn's task (an ordinary activity from the start, one recorded failure).
        await manager.add_turns(
            sid, [SessionTurn(role="user", content=t, metadata={"note": turn_meta}) for t in texts]
        )

        async def stored() -> None:
            header = await stack.store.get_session(sid)
            assert header is not None and header.turn_count == len(texts)

        await assert_eventually(stored, timeout=30)
        await manager.send_turn(sid, SessionTurn(role="assistant", content=signal_text))
        handle = stack.client.get_workflow_handle(sid)

        # A rejected update whose failure message echoes its input (pydantic does). Rejections
        # are not recorded in history; check that they travel sealed all the same.
        probe = with_converter(
            stack.client,
            dataclasses.replace(
                stack.client.data_converter, failure_converter_class=RecordingFailureConverter
            ),
        )
        RecordingFailureConverter.received.clear()
        with pytest.raises(WorkflowUpdateFailedError) as rejected_info:
            await probe.get_workflow_handle(sid).execute_update(
                "add_turn", {"role": "user", "content": {rejected: 1}}
            )
        chain = _failure_chain(rejected_info.value.cause)
        assert any(rejected in err.message for err in chain)  # the codec client reads it ...
        assert len(RecordingFailureConverter.received) == len(chain)
        assert set(RecordingFailureConverter.received) == {"Encoded failure"}  # ... sent sealed

        # An accepted update that fails: its failure is recorded in history.
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update("restore", RestoreRequest(checkpoint_id=f"cp-{mark}"))

        await manager.close(sid)
        assert [t.content for t in await manager.history(sid)] == [*texts, signal_text]

    plaintexts = [*texts, turn_meta, session_meta, signal_text, f"cp-{mark}"]
    # Every run of the session, by a client WITHOUT the codec.
    history = await raw_histories(temporal_env.client, sid)
    blob = history.SerializeToString()
    for text in [*plaintexts, rejected, mark]:
        assert text.encode() not in blob, f"{text!r} is in history in plaintext"

    payloads, failures = payloads_and_failures(history)
    assert len(payloads) > 10
    assert all(p.metadata["encoding"] == ENCODING for p in payloads)
    assert {p.metadata[METADATA_KEY_ID] for p in payloads} == {f"session/{sid}".encode()}
    # The echoing failures (the local flush's, the fallback activity's last) and the failed
    # restore: all sealed.
    assert len(failures) >= 3
    for failure in failures:
        assert failure.message == "Encoded failure" and failure.stack_trace == ""
        assert failure.HasField("encoded_attributes")

    # With the codec (a fresh process: nothing cached) every payload opens, all text is there.
    codec = codec_of(encrypted_client(temporal_env, config, pg_keystore))
    assert codec is not None
    decoded = b"\n".join(p.data for p in await codec.decode(payloads))
    for text in [*plaintexts, f"could not store row ({texts[0]})"]:
        assert text.encode() in decoded, f"{text!r} not found in decoded history"


async def test_deleting_a_session_erases_its_history_only(
    temporal_env: WorkflowEnvironment,
    config: EncryptionConfig,
    pg_keystore: PostgresKeyStore,
    pg_store: SessionStore,
    task_queue: str,
) -> None:
    """(b)"""
    async with encrypted_stack(temporal_env, config, pg_keystore, task_queue, pg_store) as stack:
        manager = stack.manager
        a = (await manager.create("user-b")).session_id
        b = (await manager.create("user-b")).session_id
        for sid in (a, b):
            for i in range(3):
                await manager.add_turn(sid, SessionTurn(role="user", content=f"{sid} turn {i}"))
        await manager.checkpoint(b)

        await manager.delete(a)  # terminate, then EncryptedStore.delete_session destroys the key
        stored = await pg_keystore.get_wrapped(a)
        assert stored is not None and stored.destroyed

        # The process that deleted cannot read A any more, and cannot write to it either.
        with pytest.raises(SessionNotFoundError):
            await manager.add_turn(a, SessionTurn(role="user", content="after delete"))
        assert [t.content for t in await manager.history(b)] == [f"{b} turn {i}" for i in range(3)]

    fresh = codec_of(encrypted_client(temporal_env, config, pg_keystore))
    assert fresh is not None
    a_payloads, _ = payloads_and_failures(await raw_histories(temporal_env.client, a))
    b_payloads, _ = payloads_and_failures(await raw_histories(temporal_env.client, b))
    assert a_payloads and b_payloads
    for payload in a_payloads:
        with pytest.raises(SessionKeyDestroyedError):
            await fresh.decode([payload])
    decoded_b = b"".join(p.data for p in await fresh.decode(b_payloads))
    assert f"{b} turn 2".encode() in decoded_b


async def test_rotated_master_key_keeps_history_replayable(
    temporal_env: WorkflowEnvironment,
    pg_store: SessionStore,
    task_queue: str,
) -> None:
    """(c) Master keys only: payloads under k1 keep decoding (and replaying) once k2 is active."""
    k1 = EncryptionConfig(keys={"k1": new_key()}, active="k1")
    async with encrypted_stack(
        temporal_env, k1, None, task_queue, pg_store, max_cached_workflows=0
    ) as before:
        sid = (await before.manager.create("user-c", metadata={"m": "x"})).session_id
        await before.manager.add_turn(sid, SessionTurn(role="user", content="under k1"))

    rotated = k1.rotate("k2", new_key())
    async with encrypted_stack(temporal_env, rotated, None, task_queue, pg_store) as after:
        # The new worker replays the k1 history to run this update.
        await after.manager.add_turn(sid, SessionTurn(role="user", content="under k2"))

        async def both_stored() -> None:
            assert [t.content for t in await after.manager.history(sid)] == [
                "under k1",
                "under k2",
            ]

        await assert_eventually(both_stored)
        await after.manager.close(sid)

    payloads, _ = payloads_and_failures(await raw_histories(temporal_env.client, sid))
    key_ids = {p.metadata[METADATA_KEY_ID] for p in payloads}
    assert key_ids == {b"k1", b"k2"}
    everything = codec_of(encrypted_client(temporal_env, rotated, None))
    assert everything is not None
    assert b"under k1" in b"".join(p.data for p in await everything.decode(payloads))
    only_k2 = codec_of(encrypted_client(temporal_env, rotated.without("k1"), None))
    assert only_k2 is not None
    with pytest.raises(UnknownKeyError):
        await only_k2.decode([p for p in payloads if p.metadata[METADATA_KEY_ID] == b"k1"][:1])


async def test_rotation_with_session_keys_and_rewrap(
    temporal_env: WorkflowEnvironment,
    pg_keystore: PostgresKeyStore,
    pg_store: SessionStore,
    task_queue: str,
) -> None:
    """(c) Session keys wrapped by k1 still open after rotation; rewrap retires k1."""
    k1 = EncryptionConfig(keys={"k1": new_key()}, active="k1")
    async with encrypted_stack(
        temporal_env, k1, pg_keystore, task_queue, pg_store, max_cached_workflows=0
    ) as before:
        old = (await before.manager.create("user-d")).session_id
        await before.manager.add_turn(old, SessionTurn(role="user", content="old session"))

    rotated = k1.rotate("k2", new_key())
    async with encrypted_stack(temporal_env, rotated, pg_keystore, task_queue, pg_store) as after:
        await after.manager.add_turn(old, SessionTurn(role="user", content="old, continued"))
        new = (await after.manager.create("user-d")).session_id
        await after.manager.add_turn(new, SessionTurn(role="user", content="new session"))
        wrapped_by = {
            sid: key.key_id
            for sid in (old, new)
            if (key := await pg_keystore.get_wrapped(sid)) is not None
        }
        assert wrapped_by == {old: "k1", new: "k2"}

        assert await after.keyring.rewrap() == 1
        retired = rotated.without("k1")
        async with encrypted_stack(
            temporal_env, retired, pg_keystore, task_queue, pg_store, run_worker=False
        ) as k2_only:
            history = await k2_only.manager.history(old)
            assert [t.content for t in history] == ["old session", "old, continued"]
        for sid in (old, new):
            await after.manager.close(sid)

"""``SessionCipher`` and ``EncryptedStore``: the store's copy of the conversation, encrypted too.

Why it looks the way it does:

* **Same key as the session's history.** The store is the system of record and outlives
  Temporal's retention, so crypto-erasure must reach it as well: turn text and metadata are
  encrypted with the session's data key, and destroying that key erases both copies at once
  (and every backup of either).
* **A wrapper, not a backend.** Encryption is a property of the data, not of PostgreSQL or
  SQLite: ``EncryptedStore`` wraps any ``SessionStore`` and changes only values, so every
  backend keeps its schema, migrations and idempotent upserts (a retried flush encrypts anew,
  and the upsert overwrites the row with an equally valid ciphertext).
* **What is encrypted:** turn ``content`` and ``metadata``, session and checkpoint ``metadata``.
  Metadata is encrypted as a whole (``{"_encrypted": token}``), hiding its keys too. Ids,
  roles, agents, timestamps, counters, statuses and branch names stay plain: the store queries
  and aggregates them, and none carries conversation text.
* **Tokens are tagged:** ``dsenc:1:<key>:<base64url(nonce || ciphertext)>``, ``<key>`` being
  ``s`` (the session's data key) or a master key id (without a key store). Untagged values are
  read as plaintext, so a store that held data before encryption was enabled stays readable.
* **Recall scans in this process:** the database holds ciphertext, which it cannot index, so
  ``search_turns`` (``manager.recall``) decrypts the user's transcripts here, per query, and
  scores them with the in-memory BM25 of ``stores._search``; nothing is indexed at rest.
  Erased sessions are skipped. A user with more than ``recall_scan_limit`` stored turns gets
  ``RecallUnavailableError`` (narrow the search with ``sessions=``).
* **Erased sessions:** reading turns of an erased session raises ``SessionKeyDestroyedError``
  (a ``SessionNotFoundError``); headers and checkpoints still in the store (a delete that
  crashed between destroying the key and deleting the rows) come back with empty metadata, so
  listings never fail because of one half-deleted session.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from durable_sessions.core.compaction import Summary
from durable_sessions.encryption._codec import keyring_of
from durable_sessions.encryption._errors import DecryptionError, SessionKeyDestroyedError
from durable_sessions.encryption._keyring import Keyring, aad, open_sealed, seal
from durable_sessions.models import (
    Checkpoint,
    SessionState,
    SessionStats,
    SessionStatus,
    SessionTurn,
)
from durable_sessions.stores._search import TurnMatch, scan_search
from durable_sessions.stores._summaries import summaries_of
from durable_sessions.stores.base import PersistBatch, SessionStore

__all__ = ["METADATA_FIELD", "TOKEN_PREFIX", "EncryptedStore", "SessionCipher", "encrypt_store"]

TOKEN_PREFIX = "dsenc:1:"
SESSION_KEY_REF = "s"
METADATA_FIELD = "_encrypted"
_PURPOSE = "durable-sessions/text/v1"


class SessionCipher:
    """Encrypts text for one session with the session's data key (or the master key).

    Args:
        keyring: The same keyring as the client's codec (``keyring_of(client)``), so store
            rows and history share one key per session.
    """

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    @staticmethod
    def is_token(value: object) -> bool:
        """True for a value this cipher produced."""
        return isinstance(value, str) and value.startswith(TOKEN_PREFIX)

    async def _key(self, session_id: str, ref: str | None, *, create: bool) -> tuple[str, AESGCM]:
        if ref is None:
            ref = SESSION_KEY_REF if self.keyring.per_session else self.keyring.active_id
        if ref == SESSION_KEY_REF:
            return ref, await self.keyring.session_key(session_id, create=create)
        return ref, self.keyring.master(ref)

    async def encrypt_text(self, session_id: str, text: str) -> str:
        """``text`` as a token only this session's key opens."""
        ref, key = await self._key(session_id, None, create=True)
        sealed = seal(key, text.encode("utf-8"), aad(_PURPOSE, ref, session_id))
        return f"{TOKEN_PREFIX}{ref}:{base64.urlsafe_b64encode(sealed).decode('ascii')}"

    async def decrypt_text(self, session_id: str, token: str) -> str:
        """The text in ``token``; a value that is not a token is returned as is (plaintext).

        Raises:
            SessionKeyDestroyedError: If the session was erased.
            DecryptionError: If the token is malformed or belongs to another session.
        """
        if not self.is_token(token):
            return token
        ref, sep, body = token[len(TOKEN_PREFIX) :].partition(":")
        if not sep:
            raise DecryptionError(f"malformed encrypted value in session {session_id!r}")
        try:
            sealed = base64.urlsafe_b64decode(body.encode("ascii"))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise DecryptionError(f"malformed encrypted value in session {session_id!r}") from None
        _, key = await self._key(session_id, ref, create=False)
        plain = open_sealed(
            key, sealed, aad(_PURPOSE, ref, session_id), f"a stored value of session {session_id!r}"
        )
        return plain.decode("utf-8")

    async def encrypt_json(self, session_id: str, value: Any) -> str:
        """A JSON-serializable value as a token (NaN and infinities round-trip)."""
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return await self.encrypt_text(session_id, text)

    async def decrypt_json(self, session_id: str, token: str) -> Any:
        return json.loads(await self.decrypt_text(session_id, token))

    async def encrypt_metadata(self, session_id: str, metadata: dict[str, Any]) -> dict[str, Any]:
        """``{"_encrypted": token}``, or ``{}`` for empty metadata (stores keep it NULL)."""
        if not metadata:
            return {}
        return {METADATA_FIELD: await self.encrypt_json(session_id, metadata)}

    async def decrypt_metadata(self, session_id: str, metadata: dict[str, Any]) -> dict[str, Any]:
        token = metadata.get(METADATA_FIELD) if len(metadata) == 1 else None
        if not self.is_token(token):
            return metadata  # plaintext metadata from before encryption
        assert isinstance(token, str)
        value = await self.decrypt_json(session_id, token)
        if not isinstance(value, dict):
            raise DecryptionError(f"encrypted metadata of session {session_id!r} is not an object")
        return value


class EncryptedStore:
    """A ``SessionStore`` that encrypts conversation data on the way in, decrypts on the way out.

    Args:
        inner: Any ``SessionStore``; it only ever sees tokens in place of text and metadata.
        cipher: Usually ``SessionCipher(keyring_of(client))``.
        recall_scan_limit: Most stored turns one ``search_turns`` decrypts and scans.
    """

    def __init__(
        self, inner: SessionStore, cipher: SessionCipher, *, recall_scan_limit: int = 20_000
    ) -> None:
        self.inner = inner
        self.cipher = cipher
        self.recall_scan_limit = recall_scan_limit

    # ------------------------------------------------------------------ encryption helpers

    async def _seal_turn(self, session_id: str, turn: SessionTurn) -> SessionTurn:
        return turn.model_copy(
            update={
                "content": await self.cipher.encrypt_text(session_id, turn.content),
                "metadata": await self.cipher.encrypt_metadata(session_id, turn.metadata),
            }
        )

    async def _open_turn(self, session_id: str, turn: SessionTurn) -> SessionTurn:
        return turn.model_copy(
            update={
                "content": await self.cipher.decrypt_text(session_id, turn.content),
                "metadata": await self.cipher.decrypt_metadata(session_id, turn.metadata),
            }
        )

    async def _seal_state(self, state: SessionState) -> SessionState:
        sealed = await self.cipher.encrypt_metadata(state.session_id, state.metadata)
        return state.model_copy(update={"metadata": sealed})

    async def _open_metadata(self, session_id: str, metadata: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self.cipher.decrypt_metadata(session_id, metadata)
        except SessionKeyDestroyedError:
            return {}  # erased; the header itself goes with the rest of the delete

    async def _open_state(self, state: SessionState | None) -> SessionState | None:
        if state is None:
            return None
        return state.model_copy(
            update={"metadata": await self._open_metadata(state.session_id, state.metadata)}
        )

    async def _open_states(self, states: list[SessionState]) -> list[SessionState]:
        out: list[SessionState] = []
        for state in states:
            opened = await self._open_state(state)
            assert opened is not None
            out.append(opened)
        return out

    async def _open_checkpoint(self, cp: Checkpoint | None) -> Checkpoint | None:
        if cp is None:
            return None
        return cp.model_copy(
            update={"metadata": await self._open_metadata(cp.session_id, cp.metadata)}
        )

    # ------------------------------------------------------------------ SessionStore

    async def setup(self) -> None:
        await self.inner.setup()

    async def close(self) -> None:
        await self.inner.close()

    async def persist(self, batch: PersistBatch) -> bool:
        sid = batch.state.session_id
        sealed = PersistBatch(
            state=await self._seal_state(batch.state),
            turns=[await self._seal_turn(sid, t) for t in batch.turns],
            checkpoints=[
                c.model_copy(
                    update={
                        "metadata": await self.cipher.encrypt_metadata(c.session_id, c.metadata)
                    }
                )
                for c in batch.checkpoints
            ],
            fence=batch.fence,
            fence_tiebreak=batch.fence_tiebreak,
        )
        return await self.inner.persist(sealed) is not False

    async def upsert_session(self, state: SessionState) -> None:
        await self.inner.upsert_session(await self._seal_state(state))

    async def get_session(self, session_id: str) -> SessionState | None:
        return await self._open_state(await self.inner.get_session(session_id))

    async def list_sessions(
        self,
        user_id: str | None = None,
        status: SessionStatus | None = None,
        *,
        limit: int | None = None,
    ) -> list[SessionState]:
        return await self._open_states(await self.inner.list_sessions(user_id, status, limit=limit))

    async def count_live_sessions(self, user_id: str) -> int:
        return await self.inner.count_live_sessions(user_id)

    async def list_branches(self, parent_session_id: str) -> list[SessionState]:
        return await self._open_states(await self.inner.list_branches(parent_session_id))

    async def add_generation(
        self,
        session_id: str,
        generation: int,
        parent_generation: int,
        fork_seq: int,
        *,
        prior_head: int | None = None,
        fence: int | None = None,
    ) -> bool:
        written = await self.inner.add_generation(
            session_id, generation, parent_generation, fork_seq, prior_head=prior_head, fence=fence
        )
        return written is not False

    async def get_generation_parent(
        self, session_id: str, generation: int
    ) -> tuple[int, int] | None:
        return await self.inner.get_generation_parent(session_id, generation)

    async def get_own_turns(
        self, session_id: str, generation: int, lo: int, hi: int
    ) -> list[SessionTurn]:
        turns = await self.inner.get_own_turns(session_id, generation, lo, hi)
        return [await self._open_turn(session_id, t) for t in turns]

    async def get_checkpoint(self, checkpoint_id: str) -> Checkpoint | None:
        return await self._open_checkpoint(await self.inner.get_checkpoint(checkpoint_id))

    async def list_checkpoints(self, session_id: str) -> list[Checkpoint]:
        out: list[Checkpoint] = []
        for cp in await self.inner.list_checkpoints(session_id):
            opened = await self._open_checkpoint(cp)
            assert opened is not None
            out.append(opened)
        return out

    async def delete_session(self, session_id: str) -> bool:
        """Erase the session's key first (if sessions have keys), then delete its rows.

        Key first: should the row delete fail, what remains is already unreadable, and a
        retried delete finishes the job.
        """
        if self.cipher.keyring.per_session:
            await self.cipher.keyring.destroy(session_id)
        return await self.inner.delete_session(session_id)

    async def get_stats(self, user_id: str | None = None) -> SessionStats:
        return await self.inner.get_stats(user_id)

    async def search_turns(
        self,
        user_id: str,
        query: str,
        *,
        limit: int,
        session_ids: Sequence[str] | None = None,
    ) -> list[TurnMatch]:
        """Decrypt and scan the user's transcripts (see the module docstring)."""
        return await scan_search(
            self,
            user_id,
            query,
            limit=limit,
            session_ids=session_ids,
            skip_errors=(SessionKeyDestroyedError,),
            max_turns=self.recall_scan_limit,
        )

    async def put_summary(self, summary: Summary) -> bool:
        """Summaries are conversation text: sealed with the key of the session that owns them
        (so erasing that session erases them too)."""
        sealed = summary.model_copy(
            update={"content": await self.cipher.encrypt_text(summary.session_id, summary.content)}
        )
        return await summaries_of(self.inner).put_summary(sealed)

    async def list_summaries(
        self, session_id: str, generation: int, lo: int, hi: int
    ) -> list[Summary]:
        rows = await summaries_of(self.inner).list_summaries(session_id, generation, lo, hi)
        return [
            s.model_copy(update={"content": await self.cipher.decrypt_text(session_id, s.content)})
            for s in rows
        ]


def encrypt_store(client: object, store: SessionStore) -> SessionStore:
    """``store`` wrapped in an ``EncryptedStore`` when ``client`` encrypts, else ``store``.

    What ``create_worker`` and ``SessionManager`` call, so the store's copy of a conversation is
    encrypted exactly when its history is, with the same keyring (and cache). Idempotent.
    """
    ring = keyring_of(client)
    if ring is None or isinstance(store, EncryptedStore):
        return store
    return EncryptedStore(store, SessionCipher(ring))

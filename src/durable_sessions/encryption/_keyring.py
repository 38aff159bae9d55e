"""``Keyring``: master keys plus per-session data keys, with the AES-GCM primitives both use.

Why it looks the way it does:

* **Envelope encryption for crypto-erasure.** Temporal history cannot be edited: a deleted
  session's turns stay on the server until retention ends, and in its backups after that. So
  every session's payloads are encrypted with a data key of its own, stored only wrapped
  (encrypted by a master key) in a ``KeyStore``. Destroying that one row makes all of the
  session's history, everywhere, unreadable, while every other session stays readable.
* **One AES-GCM construction everywhere,** with a fresh random 96-bit nonce per message
  (``nonce || ciphertext+tag``) and associated data that binds each ciphertext to its purpose,
  key id and session: a payload or wrapped key copied into another session's row does not
  authenticate there. Random nonces are safe far beyond any session's volume (2^32 messages per
  key before the collision risk reaches 2^-32).
* **A bounded cache with a TTL.** Every workflow task decodes payloads, so unwrapped keys are
  cached per process (LRU). The TTL bounds how long another process that cached a key keeps
  decrypting after ``destroy``: the process that destroys evicts at once, the others within
  ``cache_ttl`` seconds (``EncryptionConfig.key_cache_ttl``, 60 s by default; ``0`` asks the key
  store on every use, so erasure is immediate everywhere). Tombstones are cached without
  expiry: erasure is permanent.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from durable_sessions.encryption._config import KEY_BYTES, EncryptionConfig
from durable_sessions.encryption._errors import (
    DecryptionError,
    EncryptionError,
    SessionKeyDestroyedError,
    SessionKeyMissingError,
    UnknownKeyError,
)
from durable_sessions.encryption._keystore import KeyStore, WrappedKey

__all__ = ["NONCE_BYTES", "Keyring", "aad", "open_sealed", "seal"]

NONCE_BYTES = 12
_WRAP_PURPOSE = "durable-sessions/session-key/v1"


def aad(*parts: str) -> bytes:
    """Associated data: length-prefixed parts, so ``("ab", "c")`` and ``("a", "bc")`` differ."""
    out = bytearray()
    for part in parts:
        raw = part.encode("utf-8")
        out += len(raw).to_bytes(4, "big") + raw
    return bytes(out)


def seal(key: AESGCM, plaintext: bytes, associated: bytes) -> bytes:
    """``nonce || AES-GCM(key, plaintext, associated)`` with a fresh random nonce."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + key.encrypt(nonce, plaintext, associated)


def open_sealed(key: AESGCM, sealed: bytes, associated: bytes, what: str) -> bytes:
    """Inverse of ``seal``; ``what`` names the data in the error (never its content).

    Raises:
        DecryptionError: If the data is truncated or does not authenticate.
    """
    if len(sealed) < NONCE_BYTES + 16:
        raise DecryptionError(f"{what} is truncated")
    try:
        return key.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated)
    except InvalidTag:
        raise DecryptionError(
            f"{what} does not authenticate: wrong key, or the data was altered"
        ) from None


_Entry = tuple[float, AESGCM | None]
"""(expiry on the monotonic clock, cipher or None for a destroyed key)."""


class Keyring:
    """The keys one process encrypts and decrypts with.

    Args:
        config: The master keys.
        keystore: Where wrapped per-session keys live. None: no per-session keys; everything
            is encrypted with the master key (no crypto-erasure of single sessions).
        cache_size: Most unwrapped session keys kept in memory.
        cache_ttl: Seconds an unwrapped key is used before the key store is asked again; the
            longest another process can still decrypt a session after its key was destroyed.
            ``config.key_cache_ttl`` when None; ``0`` never reuses a key without asking.
    """

    def __init__(
        self,
        config: EncryptionConfig,
        keystore: KeyStore | None = None,
        *,
        cache_size: int = 10_000,
        cache_ttl: float | None = None,
    ) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be >= 1")
        if cache_ttl is None:
            cache_ttl = config.key_cache_ttl
        self.config = config
        self.keystore = keystore
        self.cache_size = cache_size
        self.cache_ttl = cache_ttl
        self._masters = {key_id: AESGCM(key) for key_id, key in config.keys.items()}
        self._cache: OrderedDict[str, _Entry] = OrderedDict()

    @property
    def per_session(self) -> bool:
        """True when sessions get their own data keys (a key store is configured)."""
        return self.keystore is not None

    @property
    def active_id(self) -> str:
        return self.config.active

    def master(self, key_id: str) -> AESGCM:
        """The master key with this id.

        Raises:
            UnknownKeyError: If the config does not hold it.
        """
        key = self._masters.get(key_id)
        if key is None:
            raise UnknownKeyError(
                f"encryption key {key_id!r} is not configured (configured: "
                f"{', '.join(self.config.key_ids)}); keep retired keys until nothing needs them"
            )
        return key

    # ------------------------------------------------------------------ session keys

    def _require_keystore(self) -> KeyStore:
        if self.keystore is None:
            raise EncryptionError(
                "this data was encrypted with a per-session key, but no key store is configured"
            )
        return self.keystore

    def _cached(self, session_id: str) -> _Entry | None:
        entry = self._cache.get(session_id)
        if entry is None:
            return None
        expires, key = entry
        if key is not None and expires <= time.monotonic():
            del self._cache[session_id]
            return None
        self._cache.move_to_end(session_id)
        return entry

    def _remember(self, session_id: str, key: AESGCM | None) -> None:
        if key is not None and self.cache_ttl <= 0:
            return  # asked again on every use: erasure is immediate everywhere
        expires = float("inf") if key is None else time.monotonic() + self.cache_ttl
        self._cache[session_id] = (expires, key)
        self._cache.move_to_end(session_id)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def forget(self, session_id: str) -> None:
        """Drop a session's key from this process's cache (the next use asks the store)."""
        self._cache.pop(session_id, None)

    def wrap(self, session_id: str, data_key: bytes) -> WrappedKey:
        """``data_key`` wrapped by the active master key, bound to ``session_id``."""
        key_id = self.active_id
        sealed = seal(self.master(key_id), data_key, aad(_WRAP_PURPOSE, key_id, session_id))
        return WrappedKey(key_id=key_id, wrapped=sealed)

    def unwrap(self, session_id: str, stored: WrappedKey) -> bytes:
        """The data key in ``stored``.

        Raises:
            SessionKeyDestroyedError: If ``stored`` is a tombstone.
            UnknownKeyError: If its master key is not configured.
            DecryptionError: If it does not authenticate (e.g. copied from another session).
        """
        if stored.wrapped is None or stored.key_id is None:
            raise SessionKeyDestroyedError(session_id)
        data_key = open_sealed(
            self.master(stored.key_id),
            stored.wrapped,
            aad(_WRAP_PURPOSE, stored.key_id, session_id),
            f"the wrapped key of session {session_id!r}",
        )
        if len(data_key) != KEY_BYTES:
            raise DecryptionError(f"the key of session {session_id!r} has the wrong size")
        return data_key

    async def session_key(self, session_id: str, *, create: bool) -> AESGCM:
        """The data key of a session, minted (and stored) first if ``create`` and it has none.

        Raises:
            SessionKeyDestroyedError: If the key was destroyed (never re-minted).
            SessionKeyMissingError: If it has none and ``create`` is False.
        """
        entry = self._cached(session_id)
        if entry is not None:
            if entry[1] is None:
                raise SessionKeyDestroyedError(session_id)
            return entry[1]
        store = self._require_keystore()
        stored = await store.get_wrapped(session_id)
        if stored is None:
            if not create:
                raise SessionKeyMissingError(
                    f"session {session_id!r} has no data key in the key store (was the key "
                    "store reset, or is this process using a different one?)"
                )
            minted = self.wrap(session_id, secrets.token_bytes(KEY_BYTES))
            stored = await store.put_wrapped(session_id, minted)
        if stored.destroyed:
            self._remember(session_id, None)
            raise SessionKeyDestroyedError(session_id)
        key = AESGCM(self.unwrap(session_id, stored))
        self._remember(session_id, key)
        return key

    async def destroy(self, session_id: str) -> bool:
        """Crypto-erase a session: destroy its data key (tombstone) and evict it here.

        Everything encrypted with it (history payloads, stored turns) becomes unreadable;
        writing for the session id fails from now on. Other processes stop decrypting within
        their ``cache_ttl`` (at once with ``cache_ttl=0``). Idempotent; returns True when a
        live key was destroyed.
        """
        destroyed = await self._require_keystore().destroy(session_id)
        self._remember(session_id, None)
        return destroyed

    async def rewrap(self, *, batch: int = 500) -> int:
        """Re-wrap every live data key not wrapped by the active master key under it.

        Run after rotating the master key; once it returns, retired master keys are needed
        only for payloads encrypted with them directly (client-level payloads without a
        session). Safe to run concurrently with traffic and with itself. Returns the count.
        """
        store = self._require_keystore()
        done = 0
        skipped: set[str] = set()
        while True:
            rows = await store.list_wrapped_by_other(self.active_id, limit=batch + len(skipped))
            todo = [(sid, row) for sid, row in rows if sid not in skipped]
            if not todo:
                return done
            for session_id, row in todo:
                new = self.wrap(session_id, self.unwrap(session_id, row))
                if await store.replace_wrapped(session_id, row, new):
                    done += 1
                else:  # changed meanwhile (destroyed, or re-wrapped by someone else)
                    skipped.add(session_id)
                self.forget(session_id)

"""Errors of the encryption layer.

The whole tree::

    EncryptionError                   base of everything below
    ├── UnknownKeyError               a payload or wrapped key names a master key id the
    │                                 config does not hold (a retired key was removed too early)
    ├── DecryptionError               authentication failed: wrong key, tampered or truncated data
    ├── SessionKeyMissingError        decoding needs a session's data key that was never created
    └── SessionKeyDestroyedError      the session's data key was destroyed (crypto-erasure); also
                                      a ``SessionNotFoundError``: an erased session is gone

``SessionKeyDestroyedError`` is deliberately a ``SessionNotFoundError`` too: to every caller an
erased session is indistinguishable from a deleted one, so code that already handles "no such
session" handles erasure without knowing about encryption. Messages name session and key ids
only, never key material or plaintext.
"""

from __future__ import annotations

from durable_sessions.errors import SessionNotFoundError


class EncryptionError(Exception):
    """Base class of every encryption failure."""


class UnknownKeyError(EncryptionError):
    """A master key id that the ``EncryptionConfig`` does not hold."""


class DecryptionError(EncryptionError):
    """Ciphertext that does not authenticate under the key it names."""


class SessionKeyMissingError(EncryptionError):
    """A per-session payload whose data key is not in the key store (and never was)."""


class SessionKeyDestroyedError(SessionNotFoundError, EncryptionError):
    """The session's data key was destroyed: what it encrypted can never be read again."""

    code = "session_not_found"

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"the data key of session {session_id!r} was destroyed (the session was deleted); "
            "its payloads and stored turns can no longer be decrypted",
            session_id=session_id,
        )

"""API keys for the HTTP surface: ``Authorization: Bearer <key>``; the key decides the user.

Keys are configured as ``{key: user_id}``, where a key may also be given as ``sha256:<hex>``
(the hex SHA-256 of the key), so a deployment need not hold the keys themselves. In memory only
the SHA-256 digests are kept; a presented key is hashed and compared against every digest with
``hmac.compare_digest`` (no early exit, so timing does not tell which key nearly matched).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

__all__ = [
    "HASH_PREFIX",
    "ApiKeyAuth",
    "hash_api_key",
    "parse_api_keys",
]

HASH_PREFIX = "sha256:"
"""Prefix of a key given by its hash: ``sha256:<64 hex digits>``."""


def hash_api_key(key: str) -> str:
    """The ``sha256:<hex>`` form of ``key``, to configure a key without storing it."""
    return HASH_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()


def _digest(key: str) -> bytes:
    if key.startswith(HASH_PREFIX):
        hexdigest = key[len(HASH_PREFIX) :].strip().lower()
        if len(hexdigest) != 64:
            raise ValueError("a sha256: key needs 64 hex digits")
        try:
            return bytes.fromhex(hexdigest)
        except ValueError:
            raise ValueError("a sha256: key needs 64 hex digits") from None
    if not key:
        raise ValueError("an API key must not be empty")
    return hashlib.sha256(key.encode("utf-8")).digest()


def parse_api_keys(spec: str) -> dict[str, str]:
    """Parse the ``DURABLE_SESSIONS_HTTP_API_KEYS`` format into ``{key: user_id}``.

    ``spec`` is comma-separated ``<key>=<user_id>`` pairs; a key may be ``sha256:<hex>``. The
    last ``=`` of a pair separates key and user, so keys may end in base64 padding. Blank
    entries are skipped. Error messages give the entry's position, never the key.

    Raises:
        ValueError: an entry without ``=``, with an empty key or user, or a malformed hash.
    """
    keys: dict[str, str] = {}
    for position, raw in enumerate(spec.split(","), start=1):
        entry = raw.strip()
        if not entry:
            continue
        key, sep, user_id = entry.rpartition("=")
        key, user_id = key.strip(), user_id.strip()
        if not sep or not key or not user_id:
            raise ValueError(f"API key entry {position} is not <key>=<user_id>")
        try:
            _digest(key)
        except ValueError as exc:
            raise ValueError(f"API key entry {position}: {exc}") from None
        keys[key] = user_id
    return keys


class ApiKeyAuth:
    """Resolves a bearer key to its user; holds only digests of the keys.

    Args:
        api_keys: ``{key or "sha256:<hex>": user_id}``.

    Raises:
        ValueError: a malformed hash, an empty key or user, or one key (by hash) given for two
            different users.
    """

    def __init__(self, api_keys: Mapping[str, str]) -> None:
        entries: dict[bytes, str] = {}
        for key, user_id in api_keys.items():
            if not user_id:
                raise ValueError("an API key's user_id must not be empty")
            digest = _digest(key)
            if entries.get(digest, user_id) != user_id:
                raise ValueError("one API key is configured for two different users")
            entries[digest] = user_id
        self._entries: list[tuple[bytes, str]] = list(entries.items())

    def __len__(self) -> int:
        return len(self._entries)

    def user_for_key(self, key: str) -> str | None:
        """The user of ``key``, or None when it is not a configured key."""
        if not key:
            return None
        presented = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
        found: str | None = None
        for digest, user_id in self._entries:
            if hmac.compare_digest(presented, digest):
                found = user_id
        return found

    def user_for_header(self, authorization: str | None) -> str | None:
        """The user of an ``Authorization: Bearer <key>`` header value, or None."""
        if not authorization:
            return None
        scheme, _, key = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self.user_for_key(key.strip())

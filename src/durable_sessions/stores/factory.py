"""Build a ``SessionStore`` from a URL, so deployments pick a backend by configuration alone.

Accepted URLs::

    postgresql://user:password@host:5432/db   (also postgres://; ?schema=name picks a schema)
    sqlite:///relative/or/absolute/path.db    (sqlite:////abs/path.db, sqlite:///:memory:)
    memory://                                 (in-process, for tests and demos)

``?recall=true`` (or ``false``) on a PostgreSQL or SQLite URL sets the store's ``recall``:
whether ``setup()`` adds the full-text index ``manager.recall`` searches (PostgreSQL: off by
default, SQLite: on).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from durable_sessions.stores.base import SessionStore
from durable_sessions.stores.memory import InMemorySessionStore

__all__ = ["ACCEPTED_SCHEMES", "store_from_url"]

ACCEPTED_SCHEMES = ("postgresql://", "postgres://", "sqlite:///", "memory://")


def store_from_url(url: str) -> SessionStore:
    """The store a URL names; the store still needs ``await store.setup()``.

    For PostgreSQL a ``schema`` query parameter (``...?schema=sessions``) selects the schema
    and is removed from the DSN; every other parameter is passed to the driver as is.

    Raises:
        ValueError: If the URL's scheme is not one of ``ACCEPTED_SCHEMES``.
    """
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme in ("postgresql", "postgres"):
        from durable_sessions.stores.postgres import PostgresSessionStore

        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        options: dict[str, Any] = {}
        schema = next((v for k, v in query if k == "schema"), None)
        if schema is not None:
            options["schema"] = schema
        recall = next((v for k, v in query if k == "recall"), None)
        if recall is not None:
            options["recall"] = _flag(recall)
        if not options:
            return PostgresSessionStore(url)
        rest = urlencode([(k, v) for k, v in query if k not in ("schema", "recall")])
        return PostgresSessionStore(urlunsplit(parts._replace(query=rest)), **options)
    if scheme == "sqlite":
        from durable_sessions.stores.sqlite import SQLiteSessionStore

        prefix = "sqlite:///"
        path, _, params = url[len(prefix) :].partition("?")
        if not url.lower().startswith(prefix) or not path:
            raise ValueError(
                f"invalid SQLite URL {url!r}: expected sqlite:///path/to/file.db "
                "(relative), sqlite:////absolute/path.db or sqlite:///:memory:"
            )
        recall = dict(parse_qsl(params)).get("recall") if params else None
        if recall is None:
            return SQLiteSessionStore(path)
        return SQLiteSessionStore(path, recall=_flag(recall))
    if scheme == "memory":
        return InMemorySessionStore()
    # Only the scheme is echoed: the rest of a URL may hold a password.
    raise ValueError(
        f"unsupported session store URL scheme {scheme + ':' if scheme else url[:20]!r}; "
        "accepted: " + ", ".join(ACCEPTED_SCHEMES)
    )


def _flag(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"recall= in a store URL must be true or false, got {value[:10]!r}")

"""Session stores: one protocol, several backends, one contract test suite."""

from durable_sessions.stores._search import TurnMatch, TurnSearch
from durable_sessions.stores.base import PersistBatch, SessionStore, read_transcript
from durable_sessions.stores.memory import InMemorySessionStore
from durable_sessions.stores.postgres import PostgresSessionStore
from durable_sessions.stores.sqlite import SQLiteSessionStore

__all__ = [
    "InMemorySessionStore",
    "PersistBatch",
    "PostgresSessionStore",
    "SQLiteSessionStore",
    "SessionStore",
    "TurnMatch",
    "TurnSearch",
    "read_transcript",
]


def __getattr__(name: str) -> object:
    if name == "RedisSessionStore":  # optional: needs the ``redis`` extra
        from durable_sessions.stores.redis import RedisSessionStore

        return RedisSessionStore
    raise AttributeError(name)

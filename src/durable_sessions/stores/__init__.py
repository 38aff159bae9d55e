"""Session stores: one protocol, several backends, one contract test suite."""

from durable_sessions.stores.base import PersistBatch, SessionStore, read_transcript
from durable_sessions.stores.memory import InMemorySessionStore

__all__ = ["InMemorySessionStore", "PersistBatch", "SessionStore", "read_transcript"]

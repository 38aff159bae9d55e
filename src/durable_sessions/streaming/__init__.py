"""Streamed agent turns over a side channel, and the live event stream of a session.

See ``_broker`` for the channel (and why it is not workflow history), ``_publisher`` for the
activity side and ``_watch`` for the subscriber side (``SessionManager.stream``, SSE).
"""

from durable_sessions.streaming._broker import MemoryBroker, StreamBroker, broker_for_store
from durable_sessions.streaming._events import ChunkEvent, EventKind, SessionEvent
from durable_sessions.streaming._publisher import TurnPublisher

__all__ = [
    "ChunkEvent",
    "EventKind",
    "MemoryBroker",
    "SessionEvent",
    "StreamBroker",
    "TurnPublisher",
    "broker_for_store",
]

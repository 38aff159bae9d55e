"""durable-sessions: AI conversation sessions that never lose a turn, on Temporal."""

from durable_sessions.client import SessionManager, connect
from durable_sessions.config import Settings
from durable_sessions.errors import (
    BranchExistsError,
    CheckpointNotFoundError,
    InvalidTransitionError,
    InvalidTurnError,
    SessionCapacityError,
    SessionClosedError,
    SessionError,
    SessionNotFoundError,
    WorkerUnavailableError,
)
from durable_sessions.models import (
    Checkpoint,
    SessionConfig,
    SessionState,
    SessionStats,
    SessionStatus,
    SessionTurn,
)
from durable_sessions.stores import (
    InMemorySessionStore,
    PostgresSessionStore,
    SessionStore,
    SQLiteSessionStore,
)
from durable_sessions.worker import create_worker

__all__ = [
    "BranchExistsError",
    "Checkpoint",
    "CheckpointNotFoundError",
    "InMemorySessionStore",
    "InvalidTransitionError",
    "InvalidTurnError",
    "PostgresSessionStore",
    "SQLiteSessionStore",
    "SessionCapacityError",
    "SessionClosedError",
    "SessionConfig",
    "SessionError",
    "SessionManager",
    "SessionNotFoundError",
    "SessionState",
    "SessionStats",
    "SessionStatus",
    "SessionStore",
    "SessionTurn",
    "Settings",
    "WorkerUnavailableError",
    "connect",
    "create_worker",
]

"""durable-sessions: AI conversation sessions that never lose a turn, on Temporal."""

from durable_sessions.analytics import SessionAnalytics
from durable_sessions.branches import BranchManager
from durable_sessions.client import SessionManager, connect
from durable_sessions.config import Settings
from durable_sessions.context import SessionContext
from durable_sessions.encryption import EncryptionConfig
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
from durable_sessions.group import GroupSession
from durable_sessions.models import (
    Checkpoint,
    SessionConfig,
    SessionState,
    SessionStats,
    SessionStatus,
    SessionTurn,
)
from durable_sessions.plugin import DurableSessionsPlugin
from durable_sessions.stores import (
    InMemorySessionStore,
    PostgresSessionStore,
    SessionStore,
    SQLiteSessionStore,
)
from durable_sessions.worker import create_worker

__all__ = [
    "BranchExistsError",
    "BranchManager",
    "Checkpoint",
    "CheckpointNotFoundError",
    "DurableSessionsPlugin",
    "EncryptionConfig",
    "GroupSession",
    "InMemorySessionStore",
    "InvalidTransitionError",
    "InvalidTurnError",
    "PostgresSessionStore",
    "SQLiteSessionStore",
    "SessionAnalytics",
    "SessionCapacityError",
    "SessionClosedError",
    "SessionConfig",
    "SessionContext",
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

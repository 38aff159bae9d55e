"""durable-sessions: AI conversation sessions that never lose a turn, on Temporal."""

from typing import TYPE_CHECKING, Any

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


if TYPE_CHECKING:
    from durable_sessions.worker import create_worker


def __getattr__(name: str) -> Any:
    # Imported on first use, so ``python -m durable_sessions.worker`` does not find its own
    # module already imported by the package (runpy's RuntimeWarning).
    if name == "create_worker":
        from durable_sessions.worker import create_worker

        return create_worker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

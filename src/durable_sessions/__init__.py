"""durable-sessions: AI conversation sessions that never lose a turn, on Temporal.

``import durable_sessions`` is light: it loads the models and errors (what a workflow of your
own needs, e.g. ``SessionTurn``) and nothing else. Every other name below is imported on first
use, so the package imports inside a Temporal workflow sandbox, and the Temporal client,
encryption (``cryptography``), stores (``asyncpg``), relevance pruning (``numpy``/``bm25s``) and
the HTTP middleware (``starlette``) load only when you touch them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from durable_sessions.errors import (
    BranchExistsError,
    CheckpointNotFoundError,
    InvalidTransitionError,
    InvalidTurnError,
    RecallUnavailableError,
    SessionBusyError,
    SessionCapacityError,
    SessionClosedError,
    SessionError,
    SessionNotFoundError,
    StoreUnavailableError,
    TemporalUnavailableError,
    WorkerUnavailableError,
)
from durable_sessions.models import (
    Checkpoint,
    CompactionConfig,
    SessionConfig,
    SessionState,
    SessionStats,
    SessionStatus,
    SessionTurn,
)

if TYPE_CHECKING:
    from durable_sessions.analytics import SessionAnalytics
    from durable_sessions.branches import BranchManager
    from durable_sessions.client import SessionManager, connect
    from durable_sessions.config import Settings
    from durable_sessions.context import SessionContext
    from durable_sessions.core.merging import AppendMerge, SelectiveMerge
    from durable_sessions.core.pruning import (
        RelevanceContextPruner,
        SlidingWindowPruner,
        TokenBudgetPruner,
    )
    from durable_sessions.core.turn_managers import (
        PriorityTurnManager,
        RoundRobinTurnManager,
        TopicBasedTurnManager,
    )
    from durable_sessions.encryption import EncryptionConfig
    from durable_sessions.group import GroupSession
    from durable_sessions.http.middleware import SessionMiddleware
    from durable_sessions.plugin import DurableSessionsPlugin
    from durable_sessions.recall import RecallHit
    from durable_sessions.stores.base import SessionStore
    from durable_sessions.stores.memory import InMemorySessionStore
    from durable_sessions.stores.postgres import PostgresSessionStore
    from durable_sessions.stores.sqlite import SQLiteSessionStore
    from durable_sessions.worker import create_worker

__all__ = [
    "AppendMerge",
    "BranchExistsError",
    "BranchManager",
    "Checkpoint",
    "CheckpointNotFoundError",
    "CompactionConfig",
    "DurableSessionsPlugin",
    "EncryptionConfig",
    "GroupSession",
    "InMemorySessionStore",
    "InvalidTransitionError",
    "InvalidTurnError",
    "PostgresSessionStore",
    "PriorityTurnManager",
    "RecallHit",
    "RecallUnavailableError",
    "RelevanceContextPruner",
    "RoundRobinTurnManager",
    "SQLiteSessionStore",
    "SelectiveMerge",
    "SessionAnalytics",
    "SessionBusyError",
    "SessionCapacityError",
    "SessionClosedError",
    "SessionConfig",
    "SessionContext",
    "SessionError",
    "SessionManager",
    "SessionMiddleware",
    "SessionNotFoundError",
    "SessionState",
    "SessionStats",
    "SessionStatus",
    "SessionStore",
    "SessionTurn",
    "Settings",
    "SlidingWindowPruner",
    "StoreUnavailableError",
    "TemporalUnavailableError",
    "TokenBudgetPruner",
    "TopicBasedTurnManager",
    "WorkerUnavailableError",
    "connect",
    "create_worker",
]

_LAZY: dict[str, str] = {
    "AppendMerge": "durable_sessions.core.merging",
    "BranchManager": "durable_sessions.branches",
    "DurableSessionsPlugin": "durable_sessions.plugin",
    "EncryptionConfig": "durable_sessions.encryption",
    "GroupSession": "durable_sessions.group",
    "InMemorySessionStore": "durable_sessions.stores.memory",
    "PostgresSessionStore": "durable_sessions.stores.postgres",
    "PriorityTurnManager": "durable_sessions.core.turn_managers",
    "RecallHit": "durable_sessions.recall",
    "RelevanceContextPruner": "durable_sessions.core.pruning",
    "RoundRobinTurnManager": "durable_sessions.core.turn_managers",
    "SQLiteSessionStore": "durable_sessions.stores.sqlite",
    "SelectiveMerge": "durable_sessions.core.merging",
    "SessionAnalytics": "durable_sessions.analytics",
    "SessionContext": "durable_sessions.context",
    "SessionManager": "durable_sessions.client",
    "SessionMiddleware": "durable_sessions.http.middleware",
    "SessionStore": "durable_sessions.stores.base",
    "Settings": "durable_sessions.config",
    "SlidingWindowPruner": "durable_sessions.core.pruning",
    "TokenBudgetPruner": "durable_sessions.core.pruning",
    "TopicBasedTurnManager": "durable_sessions.core.turn_managers",
    "connect": "durable_sessions.client",
    # Also keeps ``python -m durable_sessions.worker`` from finding its own module already
    # imported by the package (runpy's RuntimeWarning).
    "create_worker": "durable_sessions.worker",
}
"""Names imported on first use, and the module each comes from."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

"""``SessionAnalytics``: aggregates over sessions, computed by the store.

The PostgreSQL store answers with one SQL statement (counts by status, average turns,
checkpoints per session, token and cost totals); nothing is loaded into Python to be counted.
"""

from __future__ import annotations

from durable_sessions.models import SessionStats
from durable_sessions.stores.base import SessionStore

__all__ = ["SessionAnalytics"]


class SessionAnalytics:
    """Statistics over the sessions of one store.

    Args:
        store: the store the workers persist to (headers are at most one flush interval
            behind the live sessions).
    """

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    async def get_session_stats(self, user_id: str | None = None) -> SessionStats:
        """``SessionStats`` over the sessions of ``user_id``, or of every user when None."""
        return await self.store.get_stats(user_id)

"""``GET /recall``: memory across the caller's sessions (``SessionManager.recall`` over HTTP).

The user is the API key's, so the search covers the caller's own sessions only; a ``session``
parameter naming another user's session narrows the search to nothing, exactly like an unknown
id. A store that cannot search answers 501 ``recall_unavailable``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from durable_sessions.client import SessionManager
from durable_sessions.errors import RecallUnavailableError
from durable_sessions.http._deps import UserId
from durable_sessions.http.errors import ApiError, ErrorBody
from durable_sessions.recall import MAX_QUERY_CHARS, MAX_RECALL_LIMIT, RecallHit

__all__ = ["MAX_SESSION_FILTER", "recall_routes"]

MAX_SESSION_FILTER = 1000
"""Most ``session`` parameters one request may give."""


def recall_routes(manager: SessionManager) -> APIRouter:
    """The router of ``GET /recall``."""
    api = APIRouter()

    @api.get(
        "/recall",
        response_model=list[RecallHit],
        tags=["recall"],
        responses={501: {"model": ErrorBody, "description": "The store cannot search"}},
    )
    async def recall(
        user_id: UserId,
        q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS)],
        limit: Annotated[int, Query(ge=1, le=MAX_RECALL_LIMIT)] = 20,
        session: Annotated[list[str] | None, Query(max_length=MAX_SESSION_FILTER)] = None,
    ) -> list[RecallHit]:
        """The turns of the caller's sessions most relevant to ``q``, best first.

        Each hit names its session and seq. ``session`` (repeatable) searches only those of
        the caller's sessions. Turns are searched once flushed to the store (at most one flush
        interval after they were added).
        """
        try:
            return await manager.recall(user_id, q, limit=limit, sessions=session)
        except RecallUnavailableError as exc:
            raise ApiError(501, "recall_unavailable", exc.message) from None

    return api

"""``create_app(manager)``: the HTTP API over a ``SessionManager`` (FastAPI).

Every route but ``/healthz``, the OpenAPI documents and the static ``/viewer`` page needs
``Authorization: Bearer <key>``; the key decides the user, so clients never send a
``user_id``. A user sees and touches only their own sessions: another user's session (or
checkpoint) answers 404, exactly like one that does not exist. Ownership is checked against the
stored header before every per-session operation. Errors are JSON
``{"error": {"code", "message"}}`` (see ``errors``). Branch, merge, edit and regenerate routes
are in ``_branch_routes``; the ASGI layers (authentication, body limit) in ``_asgi``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Body, FastAPI, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from durable_sessions.analytics import SessionAnalytics
from durable_sessions.client import SessionManager
from durable_sessions.config import Settings
from durable_sessions.context import SessionContext
from durable_sessions.errors import InvalidTurnError
from durable_sessions.http._asgi import AuthenticationMiddleware, BodyLimitMiddleware
from durable_sessions.http._branch_routes import branch_routes
from durable_sessions.http._deps import Ownership, UserId, check_content, check_metadata
from durable_sessions.http.auth import ApiKeyAuth, parse_api_keys
from durable_sessions.http.errors import (
    ERROR_RESPONSES,
    install_error_handlers,
    too_large,
    validation_response,
)
from durable_sessions.http.events import EventStreamOptions, session_events
from durable_sessions.http.middleware import SessionMiddleware
from durable_sessions.http.recall import recall_routes
from durable_sessions.http.schemas import AddTurnRequest, ContextRequest, CreateSessionRequest
from durable_sessions.http.viewer import install_viewer, is_viewer_path
from durable_sessions.models import (
    Checkpoint,
    SessionState,
    SessionStats,
    SessionStatus,
    SessionTurn,
)

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "MAX_SEQ",
    "PUBLIC_PATHS",
    "create_app",
]

log = logging.getLogger("durable_sessions.http")

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
"""Largest request body; bigger ones answer 413 before they are read."""
PUBLIC_PATHS = frozenset({"/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
MAX_SEQ = 2**31 - 1
_SEQ = re.compile(r"-?[0-9]{1,10}")


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or is_viewer_path(path)


def _parse_last_event_id(value: str | None) -> int:
    if value is None or not value.strip():
        return -1
    text = value.strip()
    if _SEQ.fullmatch(text) and -1 <= (seq := int(text)) <= MAX_SEQ:
        return seq
    raise _InvalidHeader("Last-Event-ID", "must be the seq of a turn (an integer >= -1)")


class _InvalidHeader(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


def create_app(
    manager: SessionManager,
    api_keys: Mapping[str, str] | None = None,
    *,
    events: EventStreamOptions | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    secure_cookie: bool | None = None,
) -> FastAPI:
    """The HTTP API over ``manager``.

    Args:
        manager: the manager every request goes through (the caller owns it: the app
            neither sets it up nor closes it).
        api_keys: ``{key: user_id}``; a key may be ``sha256:<hex>`` (see ``auth``). None
            reads ``DURABLE_SESSIONS_HTTP_API_KEYS``; with no key at all every request is 401.
        events: tuning of the server-sent event streams.
        max_body_bytes: largest request body.
        secure_cookie: passed to ``SessionMiddleware``.
    """
    if api_keys is None:
        spec = Settings().http_api_keys
        api_keys = parse_api_keys(spec) if spec else {}
    auth = ApiKeyAuth(api_keys)
    if not len(auth):
        log.warning("no HTTP API keys are configured: every request will be refused (401)")
    stream_options = events or EventStreamOptions()
    store = manager.store

    app = FastAPI(
        title="durable-sessions",
        summary="Durable AI conversation sessions on Temporal.",
        version="1",
    )
    app.state.manager = manager
    install_error_handlers(app)

    @app.exception_handler(_InvalidHeader)
    async def _on_invalid_header(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, _InvalidHeader)
        return validation_response([{"loc": ("header", exc.name), "msg": exc.message}])

    # Outermost first: authentication, body limit, session binding, then the routes.
    app.add_middleware(SessionMiddleware, manager=manager, secure_cookie=secure_cookie)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(AuthenticationMiddleware, auth=auth, is_public=_is_public)

    owner = Ownership(store)
    own_session, own_checkpoint = owner.session, owner.checkpoint

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    install_viewer(app)  # static, no data: public (see ``viewer``)

    api = APIRouter(responses=ERROR_RESPONSES)

    @api.post("/sessions", status_code=201, response_model=SessionState, tags=["sessions"])
    async def create_session(
        user_id: UserId,
        response: Response,
        body: Annotated[CreateSessionRequest | None, Body()] = None,
    ) -> SessionState:
        """Create a session for the caller; the response sets the session cookie."""
        request = body or CreateSessionRequest()
        check_metadata(request.metadata, "metadata")
        state = await manager.create(user_id, request.metadata, ttl=request.ttl)
        await SessionContext().bind(state.session_id)
        response.headers["Location"] = f"/sessions/{state.session_id}"
        return state

    @api.get("/sessions", response_model=list[SessionState], tags=["sessions"])
    async def list_sessions(
        user_id: UserId, status: Annotated[SessionStatus | None, Query()] = None
    ) -> list[SessionState]:
        """The caller's sessions, oldest first (optionally of one status).

        Read from the store: a session's status here is at most one flush interval behind.
        """
        return await manager.list_sessions(user_id, status)

    @api.get("/sessions/{session_id}", response_model=SessionState, tags=["sessions"])
    async def get_session(user_id: UserId, session_id: str) -> SessionState:
        await own_session(user_id, session_id)
        return await manager.get(session_id)

    @api.delete("/sessions/{session_id}", status_code=204, tags=["sessions"])
    async def delete_session(user_id: UserId, session_id: str) -> Response:
        """Delete the session and everything stored of it."""
        await own_session(user_id, session_id)
        await manager.delete(session_id)
        return Response(status_code=204)

    @api.post(
        "/sessions/{session_id}/turns",
        status_code=201,
        response_model=SessionTurn,
        tags=["turns"],
    )
    async def add_turn(user_id: UserId, session_id: str, body: AddTurnRequest) -> SessionTurn:
        """Add a turn and wait until the session stored it; returns it with its ``seq``.

        Retrying with the same ``turn_id`` is safe: the original is returned.
        """
        check_content(body.content)
        check_metadata(body.metadata, "metadata")
        await own_session(user_id, session_id)
        fields = body.model_dump(exclude_none=True)
        turn = SessionTurn(**fields)
        try:
            return await manager.add_turn(session_id, turn)
        except InvalidTurnError as exc:
            if exc.field == "content" and body.content:
                raise too_large(exc.message) from None
            raise

    @api.get("/sessions/{session_id}/turns", response_model=list[SessionTurn], tags=["turns"])
    async def list_turns(
        user_id: UserId,
        session_id: str,
        offset: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
        limit: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
    ) -> list[SessionTurn]:
        """A page of the transcript in seq order (all of it from ``offset`` without ``limit``)."""
        await own_session(user_id, session_id)
        return await manager.history(session_id, offset=offset, limit=limit)

    @api.post("/sessions/{session_id}/suspend", response_model=SessionState, tags=["lifecycle"])
    async def suspend(user_id: UserId, session_id: str) -> SessionState:
        await own_session(user_id, session_id)
        return await manager.suspend(session_id)

    @api.post("/sessions/{session_id}/resume", response_model=SessionState, tags=["lifecycle"])
    async def resume(user_id: UserId, session_id: str) -> SessionState:
        await own_session(user_id, session_id)
        return await manager.resume(session_id)

    @api.post("/sessions/{session_id}/close", response_model=SessionState, tags=["lifecycle"])
    async def close(user_id: UserId, session_id: str) -> SessionState:
        """Close the session: a final checkpoint is written and everything is flushed."""
        await own_session(user_id, session_id)
        return await manager.close(session_id)

    @api.post(
        "/sessions/{session_id}/checkpoints",
        status_code=201,
        response_model=Checkpoint,
        tags=["checkpoints"],
    )
    async def create_checkpoint(user_id: UserId, session_id: str) -> Checkpoint:
        await own_session(user_id, session_id)
        return await manager.checkpoint(session_id)

    @api.get(
        "/sessions/{session_id}/checkpoints",
        response_model=list[Checkpoint],
        tags=["checkpoints"],
    )
    async def list_checkpoints(user_id: UserId, session_id: str) -> list[Checkpoint]:
        """The session's checkpoints, oldest first."""
        await own_session(user_id, session_id)
        return await manager.list_checkpoints(session_id)

    @api.post(
        "/checkpoints/{checkpoint_id}/restore",
        response_model=SessionState,
        tags=["checkpoints"],
    )
    async def restore(user_id: UserId, checkpoint_id: str) -> SessionState:
        """Rewind the checkpoint's session to it (a closed session comes back ACTIVE)."""
        await own_checkpoint(user_id, checkpoint_id)
        return await manager.restore(checkpoint_id)

    @api.post("/sessions/{session_id}/context", response_model=list[SessionTurn], tags=["turns"])
    async def context(user_id: UserId, session_id: str, body: ContextRequest) -> list[SessionTurn]:
        """The session's context pruned for ``query``: chronological, system turns kept."""
        await own_session(user_id, session_id)
        return await manager.context(
            session_id,
            query=body.query,
            max_turns=body.max_turns,
            max_tokens=body.max_tokens,
            pruner=body.pruner,
        )

    @api.get(
        "/sessions/{session_id}/events",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}, "description": "SSE stream"}},
        tags=["events"],
    )
    async def session_events_stream(
        user_id: UserId,
        session_id: str,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> StreamingResponse:
        """Server-sent events: ``turn`` (id = seq), ``status``, ``rewind``, ``error``.

        ``Last-Event-ID: <seq>`` resumes after that turn. The stream ends after the status of
        a closed or expired session.
        """
        after = _parse_last_event_id(last_event_id)
        await own_session(user_id, session_id)
        return StreamingResponse(
            session_events(manager, session_id, after_seq=after, options=stream_options),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @api.get("/stats", response_model=SessionStats, tags=["analytics"])
    async def stats(user_id: UserId) -> SessionStats:
        """Aggregates over the caller's sessions."""
        return await SessionAnalytics(store).get_session_stats(user_id)

    app.include_router(api)
    app.include_router(branch_routes(manager, owner), responses=ERROR_RESPONSES)
    app.include_router(recall_routes(manager), responses=ERROR_RESPONSES)
    return app

"""Routes that fork or rewrite a session's transcript: branches, lineage, merge, edit and
regenerate (``BranchManager`` and ``SessionManager.edit``/``.regenerate`` over HTTP)."""

from __future__ import annotations

from fastapi import APIRouter

from durable_sessions.branches import BranchManager
from durable_sessions.client import SessionManager
from durable_sessions.core.merging import AppendMerge, MergeStrategy, SelectiveMerge
from durable_sessions.errors import CheckpointNotFoundError, SessionError
from durable_sessions.http._deps import Ownership, UserId, check_content
from durable_sessions.http.errors import ApiError
from durable_sessions.http.schemas import (
    AppendMergeRequest,
    BranchRequest,
    EditRequest,
    LineageResponse,
    MergeRequest,
    RegenerateRequest,
)
from durable_sessions.http.viewer import session_lineage
from durable_sessions.models import SessionState, SessionTurn

__all__ = ["branch_routes"]


def branch_routes(manager: SessionManager, owner: Ownership) -> APIRouter:
    """The router; every route checks that the caller owns the sessions it names."""
    api = APIRouter()
    branches = BranchManager(manager)

    @api.post(
        "/sessions/{session_id}/branches",
        status_code=201,
        response_model=SessionState,
        tags=["branches"],
    )
    async def create_branch(user_id: UserId, session_id: str, body: BranchRequest) -> SessionState:
        """Branch the session: at one of its checkpoints, after its first ``at_seq`` turns, or
        at its latest turn."""
        await owner.session(user_id, session_id)
        if body.from_checkpoint is not None:
            cp = await owner.checkpoint(user_id, body.from_checkpoint)
            if cp.session_id != session_id:
                raise CheckpointNotFoundError("no such checkpoint", field="from_checkpoint")
        return await branches.create_branch(
            session_id, name=body.name, from_checkpoint=body.from_checkpoint, at_seq=body.at_seq
        )

    @api.get(
        "/sessions/{session_id}/branches",
        response_model=list[SessionState],
        tags=["branches"],
    )
    async def list_branches(user_id: UserId, session_id: str) -> list[SessionState]:
        """Direct branches of the session, oldest first."""
        await owner.session(user_id, session_id)
        found = await branches.list_branches(session_id)
        return [b for b in found if b.user_id == user_id]

    @api.get(
        "/sessions/{session_id}/lineage",
        response_model=LineageResponse,
        tags=["branches"],
    )
    async def lineage(user_id: UserId, session_id: str) -> LineageResponse:
        """The branch tree the session belongs to, from its root (read from the store)."""
        await owner.session(user_id, session_id)
        return await session_lineage(manager, user_id, session_id)

    @api.post("/sessions/{session_id}/merge", response_model=SessionState, tags=["branches"])
    async def merge(user_id: UserId, session_id: str, body: MergeRequest) -> SessionState:
        """Merge ``source_session_id`` (usually a branch) into this session."""
        await owner.session(user_id, session_id)
        await owner.session(user_id, body.source_session_id)
        strategy: MergeStrategy = (
            AppendMerge()
            if isinstance(body, AppendMergeRequest)
            else SelectiveMerge(turn_ids=body.turn_ids)
        )
        try:
            return await branches.merge(body.source_session_id, session_id, strategy=strategy)
        except SessionError:
            raise
        except ValueError as exc:
            # A strategy that does not fit the source (e.g. unknown turn ids): ids only.
            raise ApiError(422, "invalid_merge", str(exc)) from None

    @api.post(
        "/sessions/{session_id}/edit",
        response_model=SessionState,
        tags=["branches"],
        responses={201: {"model": SessionState, "description": "The new branch (branch mode)"}},
    )
    async def edit(user_id: UserId, session_id: str, body: EditRequest) -> SessionState:
        """Edit turn ``seq``: as a new branch (``mode: "branch"``, the answer is the branch) or
        by rewinding the session to it (``mode: "rewind"``, the answer is the session)."""
        check_content(body.content)
        await owner.session(user_id, session_id)
        return await manager.edit(
            session_id, body.seq, body.content, mode=body.mode, name=body.name
        )

    @api.post(
        "/sessions/{session_id}/regenerate",
        response_model=SessionTurn,
        status_code=201,
        tags=["turns"],
    )
    async def regenerate(user_id: UserId, session_id: str, body: RegenerateRequest) -> SessionTurn:
        """Drop the last assistant turn and run ``agent`` again; answers the new turn (its
        text streams to ``GET /sessions/{id}/events`` while the agent writes it)."""
        await owner.session(user_id, session_id)
        return await manager.regenerate(session_id, agent=body.agent, role=body.role)

    return api

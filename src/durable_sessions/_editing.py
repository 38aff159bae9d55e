"""Edit and regenerate, client side (``SessionManager.edit`` and ``.regenerate`` delegate here).

* ``edit(..., mode="branch")`` forks a branch before turn ``seq`` (``BranchManager.create_branch``
  with ``at_seq``, copy-on-write) and adds the edited copy of the turn to it: the session itself
  is untouched, and the edit is one more branch of its tree.
* ``edit(..., mode="rewind")`` is the session's ``edit`` update: its head goes back to turn
  ``seq`` in a new generation and the edited copy is added there; the old turns stay in the log
  under the previous generation.
* ``regenerate`` is the session's ``regenerate`` update: the workflow drops the last assistant
  turn from the head, runs the agent's activity (streamed to subscribers when the agent
  streams) and stores its turn.

The edited copy keeps the turn's role, agent and metadata, gets a new ``turn_id`` and its
tokens counted again, and records ``edited_from`` (the original turn id) in its metadata.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Literal

from durable_sessions.core.tokens import count_tokens
from durable_sessions.errors import InvalidTurnError
from durable_sessions.models import SessionState, SessionTurn, new_id
from durable_sessions.workflows.messages import EditRequest, RegenerateRequest

if TYPE_CHECKING:
    from durable_sessions.client import SessionManager

__all__ = ["EditMode", "edit_turn", "edited_copy", "regenerate_turn"]

EditMode = Literal["branch", "rewind"]


def edited_copy(turn: SessionTurn, content: str) -> SessionTurn:
    """The edited turn: same role, agent and metadata; new id, content and token count."""
    return SessionTurn(
        role=turn.role,
        content=content,
        agent=turn.agent,
        cost=0.0,
        tokens=count_tokens(content),
        metadata={**turn.metadata, "edited_from": turn.turn_id},
    )


async def _turn_at(manager: SessionManager, session_id: str, seq: int) -> SessionTurn:
    found = await manager.history(session_id, offset=seq, limit=1)
    if not found:
        raise InvalidTurnError(f"the session has no turn {seq}", session_id=session_id, field="seq")
    return found[0]


async def edit_turn(
    manager: SessionManager,
    session_id: str,
    seq: int,
    content: str,
    *,
    mode: EditMode = "branch",
    name: str | None = None,
) -> SessionState:
    """See ``SessionManager.edit``."""
    if seq < 0:
        raise InvalidTurnError("seq must be >= 0", session_id=session_id, field="seq")
    if mode == "rewind":
        if name is not None:
            raise InvalidTurnError(
                "a rewind edit makes no branch: no name", session_id=session_id, field="name"
            )
        request = EditRequest(seq=seq, content=content, turn_id=new_id())
        return await manager._update(session_id, "edit", request, SessionState)
    if mode != "branch":
        raise InvalidTurnError("mode must be 'branch' or 'rewind'", field="mode")
    from durable_sessions.branches import BranchManager

    original = await _turn_at(manager, session_id, seq)
    branch = await BranchManager(manager).create_branch(
        session_id, name or f"edit-{seq}-{new_id()[:8]}", at_seq=seq
    )
    await manager.add_turn(branch.session_id, edited_copy(original, content))
    return await manager.get(branch.session_id)


async def regenerate_turn(
    manager: SessionManager,
    session_id: str,
    agent: str,
    role: str = "assistant",
    *,
    timeout: float = 60.0,
) -> SessionTurn:
    """See ``SessionManager.regenerate``."""
    request = RegenerateRequest(agent=agent, role=role, timeout=timeout)
    handle = manager.client.get_workflow_handle(session_id)
    # The update answers once the agent has spoken: wait for all its attempts, not one call.
    wait = max(manager.call_timeout, timedelta(seconds=timeout * request.max_attempts + 10))
    turn: SessionTurn = await manager._translate(
        session_id,
        lambda: handle.execute_update(
            "regenerate", request, result_type=SessionTurn, rpc_timeout=wait
        ),
    )
    return turn

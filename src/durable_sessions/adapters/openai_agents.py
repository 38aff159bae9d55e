"""OpenAI Agents SDK memory on a durable session: ``DurableAgentsSession``.

``Runner.run(agent, input, session=DurableAgentsSession(manager, session_id))`` keeps the
conversation in a durable session instead of the SDK's SQLite file: every item the SDK adds
becomes a stored turn (acknowledged by the session's workflow before ``add_items`` returns),
so a crash of the process, the worker or the database loses nothing the agent has seen, and
the next run (anywhere) continues with the whole history.

How items map to turns:

* ``metadata["agents_item"]`` holds the item exactly (as JSON, like the SDK's own
  ``SQLiteSession``); ``get_items`` returns these, so the SDK gets back what it stored.
* ``role`` is derived from the item: its ``role`` (``developer`` counts as ``system``), ``tool``
  for tool results (``*_output`` items, MCP approval responses), ``assistant`` for everything
  the model produced (messages, tool calls, reasoning).
* ``content`` is a readable rendering for everyone else: the message text, a tool result's
  output, or the item as JSON; ``(empty)`` when there is nothing (a turn's content may not be
  empty).
* Tool calls carry ``metadata["tool_calls"] = [call_id]`` and results
  ``metadata["tool_call_id"] = call_id``, so context pruning never separates a call from its
  result.
* Turns written by other clients (no ``agents_item``) come back as plain messages: tool turns
  naming a ``tool_call_id`` as ``function_call_output`` items, others as
  ``{"role": ..., "content": ...}`` (a tool turn without a call id as an assistant message).

``add_items`` sends all its items in one update (``SessionManager.add_turns``), all or none.
``pop_item`` takes the last turn off in one update (``SessionManager.pop_turn``) and
``clear_session`` moves the transcript's head (``SessionManager.truncate``); the removed turns
stay in the session's log, as every rewind does.

Requires the ``openai-agents`` extra: ``pip install 'durable-sessions[openai-agents]'``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

try:
    from agents.items import TResponseInputItem
    from agents.memory.session_settings import (
        SessionSettings,
        coerce_session_settings,
        resolve_session_limit,
    )
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "durable_sessions.adapters.openai_agents needs the OpenAI Agents SDK: "
        "pip install 'durable-sessions[openai-agents]'"
    ) from exc

from durable_sessions.adapters._loops import call_async
from durable_sessions.client import SessionManager
from durable_sessions.models import Role, SessionState, SessionTurn

__all__ = ["ITEM_KEY", "DurableAgentsSession", "item_to_turn", "turn_to_item"]

ITEM_KEY = "agents_item"
"""The turn-metadata key holding the SDK item."""

EMPTY = "(empty)"

_ROLES: Mapping[str, Role] = {
    "user": "user",
    "assistant": "assistant",
    "system": "system",
    "developer": "system",
}
_TOOL_RESULT_TYPES = frozenset({"mcp_approval_response", "tool_search_output"})


def _normalized(item: Any) -> dict[str, Any]:
    """The item as a JSON object: exactly what comes back out of the session.

    Why a JSON round trip: the item crosses Temporal and the store as JSON anyway; normalizing
    up front means ``get_items`` returns precisely what was stored (tuples become lists here,
    not somewhere later), and a non-JSON value fails in ``add_items``, not in a worker.
    """
    if not isinstance(item, Mapping) and hasattr(item, "model_dump"):
        item = item.model_dump(mode="json", exclude_unset=True)
    normalized = json.loads(json.dumps(item))
    if not isinstance(normalized, dict):
        raise TypeError(f"an OpenAI Agents item must be a JSON object, got {type(item).__name__}")
    return normalized


def _role(item: Mapping[str, Any]) -> Role:
    role = item.get("role")
    if isinstance(role, str) and role in _ROLES:
        return _ROLES[role]
    kind = str(item.get("type", ""))
    if kind.endswith("_output") or kind in _TOOL_RESULT_TYPES:
        return "tool"
    return "assistant"


def _text_of(content: Any) -> str:
    """Message text: a string, or the text parts of a content list joined by newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        ]
        if texts:
            return "\n".join(texts)
        return json.dumps(content, ensure_ascii=False) if content else ""
    return "" if content is None else json.dumps(content, ensure_ascii=False)


def _render(item: Mapping[str, Any], role: Role) -> str:
    if "role" in item and "content" in item:
        text = _text_of(item["content"])
    elif role == "tool" and isinstance(item.get("output"), str):
        text = item["output"]
    else:
        text = json.dumps(item, ensure_ascii=False)
    return text if text.strip() else EMPTY


def item_to_turn(item: Any) -> SessionTurn:
    """The turn that stores one SDK item (see the module docstring for the mapping)."""
    stored = _normalized(item)
    role = _role(stored)
    metadata: dict[str, Any] = {ITEM_KEY: stored}
    call_id = stored.get("call_id")
    if isinstance(call_id, str) and call_id:
        metadata["tool_call_id" if role == "tool" else "tool_calls"] = (
            call_id if role == "tool" else [call_id]
        )
    return SessionTurn(role=role, content=_render(stored, role), metadata=metadata)


def turn_to_item(turn: SessionTurn) -> TResponseInputItem:
    """The SDK item of a stored turn: the original, or a plain message for foreign turns."""
    item = turn.metadata.get(ITEM_KEY)
    if isinstance(item, dict):
        return cast(TResponseInputItem, item)
    call_id = turn.metadata.get("tool_call_id")
    if turn.role == "tool" and isinstance(call_id, str):
        return cast(
            TResponseInputItem,
            {"type": "function_call_output", "call_id": call_id, "output": turn.content},
        )
    role = "assistant" if turn.role == "tool" else turn.role
    return cast(TResponseInputItem, {"role": role, "content": turn.content})


class DurableAgentsSession:
    """The OpenAI Agents SDK ``Session`` protocol on a durable session.

    Implements the protocol structurally (``agents.memory.Session``) rather than subclassing
    ``SessionABC``: the SDK asks third-party libraries to do so.

    Usable from any event loop or thread (``Runner.run_sync`` in threads included): no lock is
    held, the session's workflow serializes every write (see ``adapters._loops``).

    Cancellation: a cancelled ``add_items`` (or ``asyncio.wait_for`` timing out) waits for the
    session's answer to the update in flight, then raises ``CancelledError`` (``TimeoutError``):
    the items are then either all stored or none (up to ``MAX_BATCH_TURNS`` items per update).

    Args:
        manager: The ``SessionManager`` of the session.
        session_id: An existing session (see ``create`` to make one).
        session_settings: The SDK's settings (a ``SessionSettings`` or a dict of its fields,
            checked); ``limit`` caps ``get_items`` by default.
    """

    session_settings: SessionSettings | None

    def __init__(
        self,
        manager: SessionManager,
        session_id: str,
        *,
        session_settings: SessionSettings | dict[str, Any] | None = None,
    ) -> None:
        self.manager = manager
        self.session_id = session_id
        self.session_settings = (
            SessionSettings()
            if session_settings is None
            else coerce_session_settings(session_settings)
        )

    @classmethod
    async def create(
        cls,
        manager: SessionManager,
        user_id: str,
        metadata: dict[str, Any] | None = None,
        *,
        session_settings: SessionSettings | dict[str, Any] | None = None,
        **create_kwargs: Any,
    ) -> DurableAgentsSession:
        """Create a new durable session and return an SDK session on it."""
        state = await manager.create(user_id, metadata, **create_kwargs)
        return cls(manager, state.session_id, session_settings=session_settings)

    async def state(self) -> SessionState:
        """The durable session's header (status, turn count, totals)."""
        return await call_async(self.manager, lambda: self.manager.get(self.session_id), store=True)

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The conversation, oldest first; with ``limit``, only the latest ``limit`` items.

        The latest items come from the workflow's recent window when it holds them (no store
        read: about a millisecond), else from the store.
        """
        effective = resolve_session_limit(limit, self.session_settings)
        if effective is not None and effective <= 0:
            return []
        if effective is None:
            turns = await call_async(
                self.manager, lambda: self.manager.history(self.session_id), store=True
            )
        else:
            turns = await call_async(
                self.manager, lambda: self.manager.tail(self.session_id, effective), store=True
            )
        return [turn_to_item(t) for t in turns]

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Store the items in order, in one round trip; returns once the session has
        acknowledged them (all or none per ``MAX_BATCH_TURNS`` items).

        Turns are built (and their ids fixed) before anything is sent, so a bad item fails
        the call before anything is stored, and the manager's retries never store one twice.
        """
        turns = [item_to_turn(item) for item in items]
        if not turns:
            return
        await call_async(
            self.manager, lambda: self.manager.add_turns(self.session_id, turns), store=False
        )

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove the latest item from the conversation and return it (None when empty).

        Atomic: one update takes the last turn off, so concurrent pops and appends never
        return the same item twice or drop another writer's item.
        """
        turn = await call_async(
            self.manager, lambda: self.manager.pop_turn(self.session_id), store=False
        )
        return None if turn is None else turn_to_item(turn)

    async def clear_session(self) -> None:
        """Empty the conversation (the turns stay in the session's log)."""
        await call_async(
            self.manager, lambda: self.manager.truncate(self.session_id, 0), store=False
        )

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

``pop_item`` and ``clear_session`` move the transcript's head (``SessionManager.truncate``); the
removed turns stay in the session's log, as every rewind does.

Requires the ``openai-agents`` extra: ``pip install 'durable-sessions[openai-agents]'``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any, cast

try:
    from agents.items import TResponseInputItem
    from agents.memory.session_settings import SessionSettings, resolve_session_limit
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "durable_sessions.adapters.openai_agents needs the OpenAI Agents SDK: "
        "pip install 'durable-sessions[openai-agents]'"
    ) from exc

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

    Args:
        manager: The ``SessionManager`` of the session.
        session_id: An existing session (see ``create`` to make one).
        session_settings: The SDK's settings; ``limit`` caps ``get_items`` by default.
    """

    def __init__(
        self,
        manager: SessionManager,
        session_id: str,
        *,
        session_settings: SessionSettings | None = None,
    ) -> None:
        self.manager = manager
        self.session_id = session_id
        self.session_settings: SessionSettings | None = session_settings or SessionSettings()
        # Serializes this object's read-modify-write calls (pop_item reads the head, then moves
        # it); the session's workflow serializes everything else.
        self._lock = asyncio.Lock()

    @classmethod
    async def create(
        cls,
        manager: SessionManager,
        user_id: str,
        metadata: dict[str, Any] | None = None,
        *,
        session_settings: SessionSettings | None = None,
        **create_kwargs: Any,
    ) -> DurableAgentsSession:
        """Create a new durable session and return an SDK session on it."""
        state = await manager.create(user_id, metadata, **create_kwargs)
        return cls(manager, state.session_id, session_settings=session_settings)

    async def state(self) -> SessionState:
        """The durable session's header (status, turn count, totals)."""
        return await self.manager.get(self.session_id)

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The conversation, oldest first; with ``limit``, only the latest ``limit`` items."""
        effective = resolve_session_limit(limit, self.session_settings)
        if effective is None:
            turns = await self.manager.history(self.session_id)
        elif effective <= 0:
            return []
        else:
            count = (await self.manager.get(self.session_id)).turn_count
            start = max(0, count - effective)
            turns = await self.manager.history(self.session_id, offset=start, limit=effective)
        return [turn_to_item(t) for t in turns]

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Store the items in order; returns once the session has acknowledged every one.

        Turns are built (and their ids fixed) before the first is sent, so a bad item fails
        the call before anything is stored.
        """
        turns = [item_to_turn(item) for item in items]
        async with self._lock:
            for turn in turns:
                await self.manager.add_turn(self.session_id, turn)

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove the latest item from the conversation and return it (None when empty)."""
        async with self._lock:
            count = (await self.manager.get(self.session_id)).turn_count
            if count == 0:
                return None
            last = await self.manager.history(self.session_id, offset=count - 1, limit=1)
            if not last:
                return None
            await self.manager.truncate(self.session_id, count - 1)
            return turn_to_item(last[0])

    async def clear_session(self) -> None:
        """Empty the conversation (the turns stay in the session's log)."""
        async with self._lock:
            await self.manager.truncate(self.session_id, 0)

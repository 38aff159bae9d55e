"""LangChain chat memory on a durable session: ``DurableChatMessageHistory``.

A ``langchain_core.chat_history.BaseChatMessageHistory`` whose messages are the turns of a
durable session: ``RunnableWithMessageHistory`` (or any code written against the base class)
keeps working, and the conversation survives crashes of the process, the worker or the
database.

Messages round-trip exactly: ``metadata["lc_message"]`` holds
``langchain_core.messages.message_to_dict(message)`` and reading uses ``messages_from_dict``.
The turn's ``role`` comes from the message class (human → user, AI → assistant, system →
system, tool/function → tool, ``ChatMessage`` by its role) and ``content`` is the message text
(an AI message's tool calls as JSON when it has no text; ``(empty)`` when there is nothing).
Tool calls and results carry ``metadata["tool_calls"]`` / ``metadata["tool_call_id"]`` so
context pruning keeps them together. ``clear`` moves the transcript's head to 0
(``SessionManager.truncate``): the turn log stays append-only.

Sync and async, from any loop or thread. The async methods (``aget_messages``,
``aadd_messages``, ``aclear``) are the native ones. The sync API (``messages``,
``add_messages``, ``clear``) works everywhere, inside a running event loop too, as LangChain's
in-memory and SQL histories do: writes run on a private event-loop thread (Temporal calls work
on any loop), and reads on the manager's loop when it runs in another thread, else on that
private thread (the PostgreSQL store opens a pool per loop; the in-memory and SQLite stores
work from any loop; a short conversation is read from the workflow's recent window alone).
``adapters._loops`` has the details. One exception: a sync call blocks the loop it is made
on, so a worker running in that same loop cannot answer it until ``call_timeout`` (tests with
an in-process worker): use the async API there. ``add_messages`` sends all its messages in one
update.

Requires the ``langchain`` extra: ``pip install 'durable-sessions[langchain]'``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

try:
    from langchain_core.chat_history import BaseChatMessageHistory
    from langchain_core.messages import (
        AIMessage,
        BaseMessage,
        ChatMessage,
        FunctionMessage,
        HumanMessage,
        SystemMessage,
        ToolMessage,
        message_to_dict,
        messages_from_dict,
    )
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "durable_sessions.adapters.langchain needs langchain-core: "
        "pip install 'durable-sessions[langchain]'"
    ) from exc

from durable_sessions.adapters._loops import call_async, call_sync
from durable_sessions.client import SessionManager
from durable_sessions.models import Role, SessionTurn

__all__ = ["MESSAGE_KEY", "DurableChatMessageHistory", "message_to_turn", "turn_to_message"]

MESSAGE_KEY = "lc_message"
"""The turn-metadata key holding ``message_to_dict(message)``."""

EMPTY = "(empty)"

_CHAT_ROLES: dict[str, Role] = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "system": "system",
    "developer": "system",
    "tool": "tool",
    "function": "tool",
}


def _role(message: BaseMessage) -> Role:
    if isinstance(message, HumanMessage):
        return "user"
    if isinstance(message, AIMessage):
        return "assistant"
    if isinstance(message, SystemMessage):
        return "system"
    if isinstance(message, ToolMessage | FunctionMessage):
        return "tool"
    if isinstance(message, ChatMessage):
        return _CHAT_ROLES.get(message.role.lower(), "user")
    return _CHAT_ROLES.get(message.type.lower(), "user")


def _render(message: BaseMessage) -> str:
    text = str(message.text)
    if not text.strip() and isinstance(message, AIMessage) and message.tool_calls:
        text = json.dumps(
            [{"name": c["name"], "args": c["args"]} for c in message.tool_calls],
            ensure_ascii=False,
        )
    return text if text.strip() else EMPTY


def message_to_turn(message: BaseMessage) -> SessionTurn:
    """The turn that stores one LangChain message (see the module docstring)."""
    # JSON round trip: what is stored is exactly what comes back, and a value that is not JSON
    # fails here rather than inside a worker.
    data = json.loads(json.dumps(message_to_dict(message)))
    metadata: dict[str, Any] = {MESSAGE_KEY: data}
    if isinstance(message, AIMessage) and message.tool_calls:
        ids = [c["id"] for c in message.tool_calls if c.get("id")]
        if ids:
            metadata["tool_calls"] = ids
    if isinstance(message, ToolMessage):
        metadata["tool_call_id"] = message.tool_call_id
    return SessionTurn(role=_role(message), content=_render(message), metadata=metadata)


def turn_to_message(turn: SessionTurn) -> BaseMessage:
    """The message of a stored turn: the original, or a plain one for foreign turns."""
    data = turn.metadata.get(MESSAGE_KEY)
    if isinstance(data, dict):
        return messages_from_dict([data])[0]
    if turn.role == "user":
        return HumanMessage(content=turn.content)
    if turn.role == "assistant":
        return AIMessage(content=turn.content)
    if turn.role == "system":
        return SystemMessage(content=turn.content)
    return ToolMessage(
        content=turn.content, tool_call_id=str(turn.metadata.get("tool_call_id", ""))
    )


class DurableChatMessageHistory(BaseChatMessageHistory):
    """LangChain's ``BaseChatMessageHistory`` on a durable session.

    Args:
        manager: The ``SessionManager`` of the session.
        session_id: An existing session.
    """

    def __init__(self, manager: SessionManager, session_id: str) -> None:
        super().__init__()
        self.manager = manager
        self.session_id = session_id

    # ------------------------------------------------------------------ async (native)

    async def _read(self) -> list[BaseMessage]:
        # The whole transcript: from the workflow's recent window when it holds all of it
        # (short conversations: no store read), else from the store.
        turns = await self.manager.tail(self.session_id, sys.maxsize)
        return [turn_to_message(t) for t in turns]

    async def aget_messages(self) -> list[BaseMessage]:
        """All messages, oldest first."""
        return await call_async(self.manager, self._read, store=True)

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Store the messages in order, in one round trip; returns once the session
        acknowledged them (all or none per ``MAX_BATCH_TURNS`` messages).

        Turns are built first, so a message that cannot be stored fails the call before
        anything is sent.
        """
        turns = [message_to_turn(m) for m in messages]
        if turns:
            await call_async(
                self.manager, lambda: self.manager.add_turns(self.session_id, turns), store=False
            )

    async def aclear(self) -> None:
        """Remove every message (the turns stay in the session's log)."""
        await call_async(
            self.manager, lambda: self.manager.truncate(self.session_id, 0), store=False
        )

    # ------------------------------------------------------------------ sync (bridged)

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """All messages, oldest first (sync; see the module docstring for where it runs)."""
        return call_sync(self.manager, self._read, store=True)

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Store the messages in order (sync; see the module docstring for where it runs)."""
        turns = [message_to_turn(m) for m in messages]
        if turns:
            call_sync(
                self.manager, lambda: self.manager.add_turns(self.session_id, turns), store=False
            )

    def clear(self) -> None:
        """Remove every message (sync; see the module docstring for where it runs)."""
        call_sync(self.manager, lambda: self.manager.truncate(self.session_id, 0), store=False)

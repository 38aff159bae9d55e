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

Sync and async. The async methods (``aget_messages``, ``aadd_messages``, ``aclear``) are the
native ones: use them (LangChain's ``ainvoke``/``astream`` do). The sync API (``messages``,
``add_messages``, ``clear``) cannot simply ``asyncio.run`` the async one: the manager's
Temporal client and database pool belong to the event loop that created them. So a sync call

* from a thread other than the manager's loop (LangChain runs sync callbacks in an executor
  thread; plain sync code) runs the coroutine *on the manager's loop* with
  ``asyncio.run_coroutine_threadsafe`` and waits for it;
* from inside the manager's own loop raises ``RuntimeError`` naming the async method: blocking
  that loop while waiting for it would deadlock;
* when no loop has used the history yet and none is running here (a purely synchronous
  program), runs on a private event-loop thread shared by all histories. The manager's
  resources must then be usable from that loop (a Temporal client is; an asyncpg pool created
  on another loop is not: use the async API in async programs).

The "manager's loop" is the loop the history was created on, or the last loop that called one
of its async methods.

Requires the ``langchain`` extra: ``pip install 'durable-sessions[langchain]'``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

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

from durable_sessions.client import SessionManager
from durable_sessions.models import Role, SessionTurn

__all__ = ["MESSAGE_KEY", "DurableChatMessageHistory", "message_to_turn", "turn_to_message"]

T = TypeVar("T")

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


class _LoopThread:
    """One daemon thread running an event loop, started on first use.

    Why shared and daemon: it serves sync calls of programs that have no event loop at all,
    usually for the life of the process; one thread for every history is enough (calls are
    I/O-bound), and a daemon never keeps the interpreter from exiting.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                threading.Thread(
                    target=run, name="durable-sessions-langchain-loop", daemon=True
                ).start()
                ready.wait()
                self._loop = loop
            return self._loop


_PRIVATE_LOOP = _LoopThread()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


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
        self._home: asyncio.AbstractEventLoop | None = _running_loop()

    # ------------------------------------------------------------------ async (native)

    async def aget_messages(self) -> list[BaseMessage]:
        """All messages, oldest first."""
        self._home = asyncio.get_running_loop()
        turns = await self.manager.history(self.session_id)
        return [turn_to_message(t) for t in turns]

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Store the messages in order; returns once the session acknowledged every one.

        Turns are built first, so a message that cannot be stored fails the call before
        anything is sent.
        """
        self._home = asyncio.get_running_loop()
        turns = [message_to_turn(m) for m in messages]
        for turn in turns:
            await self.manager.add_turn(self.session_id, turn)

    async def aclear(self) -> None:
        """Remove every message (the turns stay in the session's log)."""
        self._home = asyncio.get_running_loop()
        await self.manager.truncate(self.session_id, 0)

    # ------------------------------------------------------------------ sync (bridged)

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """All messages, oldest first (sync; see the module docstring for where it runs)."""
        return self._run_sync("messages", "aget_messages", self.aget_messages)

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Store the messages in order (sync; see the module docstring for where it runs)."""
        batch = list(messages)
        self._run_sync("add_messages", "aadd_messages", lambda: self.aadd_messages(batch))

    def clear(self) -> None:
        """Remove every message (sync; see the module docstring for where it runs)."""
        self._run_sync("clear", "aclear", self.aclear)

    def _run_sync(
        self, name: str, async_name: str, call: Callable[[], Coroutine[Any, Any, T]]
    ) -> T:
        running = _running_loop()
        home = self._home
        home_alive = home is not None and home.is_running() and not home.is_closed()
        if running is not None and (running is home or not home_alive):
            raise RuntimeError(
                f"DurableChatMessageHistory.{name} was called synchronously inside a running "
                f"event loop, which it would have to block to wait for the session: use "
                f"`await history.{async_name}(...)` (LangChain's async APIs such as ainvoke do)"
            )
        target = home if home is not None and home_alive else _PRIVATE_LOOP.loop()
        # The coroutine is created only now, on a path that will run it: an abandoned coroutine
        # would warn ("never awaited").
        return asyncio.run_coroutine_threadsafe(call(), target).result()

"""langchain-core's chat-history and ``RunnableWithMessageHistory`` tests, run against
``DurableChatMessageHistory``.

A faithful port: the ``langchain-core`` wheel ships no tests, so each test here repeats one of
langchain-ai/langchain's (named in its docstring, from
``libs/core/tests/unit_tests/chat_history/test_chat_history.py`` and
``libs/core/tests/unit_tests/runnables/test_history.py``) with a durable history where they use
their in-memory ``ChatMessageHistory``. Their sync ``invoke`` calls run in a thread with no event
loop (``asyncio.to_thread``), as sync LangChain code does; the async ones with ``ainvoke``.
Skipped: tests of the base class's own fallbacks and of input schemas, which involve no history
backend (reasons below).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.runnables.history import RunnableWithMessageHistory
from langchain_core.runnables.utils import ConfigurableFieldSpec
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from durable_sessions.adapters import DurableChatMessageHistory
from durable_sessions.client import SessionManager
from durable_sessions.models import SessionConfig
from durable_sessions.plugin import DurableSessionsPlugin
from durable_sessions.stores.base import SessionStore

pytestmark = pytest.mark.filterwarnings(
    "ignore:RunnableWithMessageHistory is deprecated"
    ":langchain_core._api.deprecation.LangChainDeprecationWarning"
)


@pytest_asyncio.fixture(loop_scope="session")
async def manager(
    temporal_env: WorkflowEnvironment, store: SessionStore, task_queue: str
) -> AsyncIterator[SessionManager]:
    async with Worker(
        temporal_env.client, task_queue=task_queue, plugins=[DurableSessionsPlugin(store)]
    ):
        yield SessionManager(
            temporal_env.client, store, SessionConfig(flush_interval=0.2), task_queue
        )


class Histories:
    """``_get_get_session_history`` of the source tests: one durable session per key."""

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager
        self.ids: dict[Any, str] = {}

    async def prepare(self, *keys: Any) -> None:
        for key in keys:
            self.ids[key] = (await self.manager.create("langchain-suite")).session_id

    def __call__(self, *key: Any, **_: Any) -> DurableChatMessageHistory:
        return DurableChatMessageHistory(self.manager, self.ids[key[0] if len(key) == 1 else key])


def _said(messages: list[BaseMessage], extra: list[str] | None = None) -> str:
    parts = [str(m.content) for m in messages if isinstance(m, HumanMessage)]
    return "you said: " + "\n".join(parts + (extra or []))


async def _invoke(chain: Any, value: Any, config: RunnableConfig) -> Any:
    """The source tests' sync ``invoke``, from a thread without an event loop."""
    return await asyncio.to_thread(chain.invoke, value, config)


# ------------------------------------------------------- chat_history/test_chat_history.py


@pytest.mark.skip(reason="the base class's add_message fallback on a toy subclass: no backend")
def test_add_message_implementation_only() -> None:
    """``test_add_message_implementation_only``."""


async def test_bulk_message_implementation_only(manager: SessionManager) -> None:
    """``test_bulk_message_implementation_only``: ``add_message`` goes through the bulk
    ``add_messages`` and keeps the order."""
    history = DurableChatMessageHistory(manager, (await manager.create("lc")).session_id)

    def sync_user() -> None:
        history.add_message(HumanMessage(content="Hello"))
        assert history.messages == [HumanMessage(content="Hello")]
        history.add_message(HumanMessage(content="World"))
        assert history.messages[1] == HumanMessage(content="World")
        history.add_messages([HumanMessage(content="Hello"), HumanMessage(content="World")])
        assert len(history.messages) == 4
        assert history.messages[2:] == [
            HumanMessage(content="Hello"),
            HumanMessage(content="World"),
        ]

    await asyncio.to_thread(sync_user)


async def test_async_interface(manager: SessionManager) -> None:
    """``test_async_interface``."""
    history = DurableChatMessageHistory(manager, (await manager.create("lc")).session_id)
    await history.aadd_messages([HumanMessage(content="Hello"), HumanMessage(content="World")])
    assert await history.aget_messages() == [
        HumanMessage(content="Hello"),
        HumanMessage(content="World"),
    ]
    await history.aadd_messages([HumanMessage(content="!")])
    assert await history.aget_messages() == [
        HumanMessage(content="Hello"),
        HumanMessage(content="World"),
        HumanMessage(content="!"),
    ]
    await history.aclear()
    assert await history.aget_messages() == []


# ------------------------------------------------------------------ runnables/test_history.py


async def test_interfaces(manager: SessionManager) -> None:
    """``test_interfaces``: the conveniences and ``str(history)``."""
    history = DurableChatMessageHistory(manager, (await manager.create("lc")).session_id)

    def sync_user() -> str:
        history.add_message(SystemMessage(content="system"))
        history.add_user_message("human 1")
        history.add_ai_message("ai")
        history.add_message(HumanMessage(content="human 2"))
        return str(history)

    assert await asyncio.to_thread(sync_user) == (
        "System: system\nHuman: human 1\nAI: ai\nHuman: human 2"
    )


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
async def test_input_messages(manager: SessionManager, mode: str) -> None:
    """``test_input_messages`` (and ``test_input_messages_async``)."""
    histories = Histories(manager)
    await histories.prepare("1")
    chain = RunnableWithMessageHistory(RunnableLambda(_said), histories)
    config: RunnableConfig = {"configurable": {"session_id": "1"}}
    call: Callable[..., Any] = _invoke if mode == "invoke" else _ainvoke
    assert await call(chain, [HumanMessage(content="hello")], config) == "you said: hello"
    assert (
        await call(chain, [HumanMessage(content="good bye")], config) == "you said: hello\ngood bye"
    )


async def _ainvoke(chain: Any, value: Any, config: RunnableConfig) -> Any:
    return await chain.ainvoke(value, config)


async def test_input_dict(manager: SessionManager) -> None:
    """``test_input_dict``."""
    histories = Histories(manager)
    await histories.prepare("2")
    chain = RunnableWithMessageHistory(
        RunnableLambda(lambda value: _said(value["messages"])),
        histories,
        input_messages_key="messages",
    )
    config: RunnableConfig = {"configurable": {"session_id": "2"}}
    assert await _invoke(chain, {"messages": [HumanMessage(content="hello")]}, config) == (
        "you said: hello"
    )
    assert await _invoke(chain, {"messages": [HumanMessage(content="good bye")]}, config) == (
        "you said: hello\ngood bye"
    )


async def test_input_dict_with_history_key(manager: SessionManager) -> None:
    """``test_input_dict_with_history_key``."""
    histories = Histories(manager)
    await histories.prepare("3")
    chain = RunnableWithMessageHistory(
        RunnableLambda(lambda value: _said(value["history"], [value["input"]])),
        histories,
        input_messages_key="input",
        history_messages_key="history",
    )
    config: RunnableConfig = {"configurable": {"session_id": "3"}}
    assert await _invoke(chain, {"input": "hello"}, config) == "you said: hello"
    assert await _invoke(chain, {"input": "good bye"}, config) == "you said: hello\ngood bye"


@pytest.mark.parametrize("shape", ["message", "messages", "dict"])
async def test_output_message_messages_and_dict(manager: SessionManager, shape: str) -> None:
    """``test_output_message``, ``test_output_messages`` and ``test_output_dict``."""
    histories = Histories(manager)
    await histories.prepare("4")

    def reply(value: dict[str, Any]) -> Any:
        message = AIMessage(content=_said(value["history"], [value["input"]]))
        return {"message": message, "messages": [message], "dict": {"output": [message]}}[shape]

    chain = RunnableWithMessageHistory(
        RunnableLambda(reply),
        histories,
        input_messages_key="input",
        history_messages_key="history",
        output_messages_key="output" if shape == "dict" else None,
    )
    config: RunnableConfig = {"configurable": {"session_id": "4"}}

    def wrap(text: str) -> Any:
        message = AIMessage(content=text)
        return {"message": message, "messages": [message], "dict": {"output": [message]}}[shape]

    assert await _invoke(chain, {"input": "hello"}, config) == wrap("you said: hello")
    assert await _invoke(chain, {"input": "good bye"}, config) == wrap("you said: hello\ngood bye")
    stored = await histories("4").aget_messages()
    assert [type(m).__name__ for m in stored] == ["HumanMessage", "AIMessage"] * 2


@pytest.mark.skip(reason="input schemas of RunnableWithMessageHistory: no history involved")
def test_get_input_schema_input_dict() -> None:
    """``test_get_input_schema_input_dict`` and ``test_get_input_schema_input_messages``."""


async def test_using_custom_config_specs(manager: SessionManager) -> None:
    """``test_using_custom_config_specs``: the factory keyed by (user_id, conversation_id)."""
    histories = Histories(manager)
    await histories.prepare(("user1", "1"), ("user2", "1"))

    def fake_llm(value: dict[str, Any]) -> list[BaseMessage]:
        return [AIMessage(content=_said(value["messages"]))]

    def get_session_history(user_id: str, conversation_id: str) -> DurableChatMessageHistory:
        return histories(user_id, conversation_id)

    chain = RunnableWithMessageHistory(
        RunnableLambda(fake_llm),
        get_session_history=get_session_history,
        input_messages_key="messages",
        history_messages_key="history",
        history_factory_config=[
            ConfigurableFieldSpec(id="user_id", annotation=str, default="", is_shared=True),
            ConfigurableFieldSpec(
                id="conversation_id", annotation=str, default=None, is_shared=True
            ),
        ],
    )

    def config(user: str) -> RunnableConfig:
        return {"configurable": {"user_id": user, "conversation_id": "1"}}

    hello = {"messages": [HumanMessage(content="hello")]}
    assert await _invoke(chain, hello, config("user1")) == [AIMessage(content="you said: hello")]
    goodbye = {"messages": [HumanMessage(content="goodbye")]}
    assert await _invoke(chain, goodbye, config("user1")) == [
        AIMessage(content="you said: goodbye")
    ]
    meow = {"messages": [HumanMessage(content="meow")]}
    assert await _invoke(chain, meow, config("user2")) == [AIMessage(content="you said: meow")]
    assert await histories("user1", "1").aget_messages() == [
        HumanMessage(content="hello"),
        AIMessage(content="you said: hello"),
        HumanMessage(content="goodbye"),
        AIMessage(content="you said: goodbye"),
    ]
    assert await histories("user2", "1").aget_messages() == [
        HumanMessage(content="meow"),
        AIMessage(content="you said: meow"),
    ]

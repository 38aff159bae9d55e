"""The LangChain adapter: ``BaseChatMessageHistory`` behaviour on the real stack, offline."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from durable_sessions.adapters import DurableChatMessageHistory
from durable_sessions.adapters.langchain import MESSAGE_KEY, message_to_turn, turn_to_message
from durable_sessions.client import SessionManager
from durable_sessions.models import SessionConfig, SessionTurn
from durable_sessions.plugin import DurableSessionsPlugin
from durable_sessions.stores.base import SessionStore
from durable_sessions.stores.memory import InMemorySessionStore
from tests.processes import PgWorker

CONVERSATION: list[BaseMessage] = [
    SystemMessage(content="You are terse."),
    HumanMessage(content="What is 6 x 7?", id="h1"),
    AIMessage(
        content="",
        tool_calls=[{"name": "multiply", "args": {"a": 6, "b": 7}, "id": "call_1"}],
        usage_metadata={"input_tokens": 5, "output_tokens": 3, "total_tokens": 8},
    ),
    ToolMessage(content="42", tool_call_id="call_1", name="multiply"),
    AIMessage(content=[{"type": "text", "text": "42."}], response_metadata={"model": "fake"}),
]


@pytest_asyncio.fixture(loop_scope="session")
async def manager(
    temporal_env: WorkflowEnvironment, store: SessionStore, task_queue: str
) -> AsyncIterator[SessionManager]:
    plugin = DurableSessionsPlugin(store)
    async with Worker(temporal_env.client, task_queue=task_queue, plugins=[plugin]):
        yield SessionManager(
            temporal_env.client, store, SessionConfig(flush_interval=0.2), task_queue
        )


async def new_history(manager: SessionManager) -> DurableChatMessageHistory:
    state = await manager.create("langchain-user")
    return DurableChatMessageHistory(manager, state.session_id)


async def test_add_read_in_order_and_clear(manager: SessionManager) -> None:
    history = await new_history(manager)
    assert await history.aget_messages() == []

    await history.aadd_messages(CONVERSATION[:2])
    await history.aadd_messages(CONVERSATION[2:])
    assert await history.aget_messages() == CONVERSATION

    turns = await manager.history(history.session_id)
    assert [t.role for t in turns] == ["system", "user", "assistant", "tool", "assistant"]
    assert [t.content for t in turns][1] == "What is 6 x 7?"
    assert turns[2].content == '[{"name": "multiply", "args": {"a": 6, "b": 7}}]'
    assert turns[2].metadata["tool_calls"] == ["call_1"]
    assert turns[3].metadata["tool_call_id"] == "call_1"
    assert turns[4].content == "42."

    await history.aclear()
    assert await history.aget_messages() == []
    await history.aadd_messages([HumanMessage(content="again")])
    assert await history.aget_messages() == [HumanMessage(content="again")]


async def test_sync_api_from_a_worker_thread_runs_on_the_managers_loop(
    manager: SessionManager,
) -> None:
    history = await new_history(manager)

    def sync_user() -> list[BaseMessage]:
        # What LangChain's sync code does; the base class's conveniences build on add_messages.
        history.add_user_message("hi")
        history.add_ai_message("hello")
        history.add_message(HumanMessage(content="bye"))
        before = history.messages
        history.clear()
        assert history.messages == []
        history.add_messages([AIMessage(content="after clear")])
        return before

    before = await asyncio.to_thread(sync_user)
    assert before == [
        HumanMessage(content="hi"),
        AIMessage(content="hello"),
        HumanMessage(content="bye"),
    ]
    assert await history.aget_messages() == [AIMessage(content="after clear")]


async def test_sync_api_inside_a_running_loop_works(
    temporal_env: WorkflowEnvironment, pg_worker: PgWorker, task_queue: str
) -> None:
    """Issue 17 (5): ``history.messages`` (sync) inside a running event loop returns the
    messages, as LangChain's in-memory, SQL and Redis histories do. The worker runs in its own
    process (an in-process worker on this very loop could not answer while the loop blocks).
    A long conversation is read from PostgreSQL on the private loop thread's own pool."""
    manager = SessionManager(
        temporal_env.client, pg_worker.store, SessionConfig(flush_interval=0.2), task_queue
    )
    history = DurableChatMessageHistory(manager, (await manager.create("sync-in-loop")).session_id)
    history.add_messages([HumanMessage(content="one"), AIMessage(content="two")])  # sync
    assert history.messages == [HumanMessage(content="one"), AIMessage(content="two")]
    many = [HumanMessage(content=f"m{i}") for i in range(40)]  # past the recent window
    history.add_messages(many)
    assert history.messages[2:] == many
    history.clear()
    assert history.messages == []
    assert await history.aget_messages() == []


async def test_sync_program_without_an_event_loop(
    temporal_env: WorkflowEnvironment, task_queue: str
) -> None:
    """A history created outside any loop runs its calls on the private loop thread."""
    store = InMemorySessionStore()  # usable from any loop
    manager = SessionManager(temporal_env.client, store, SessionConfig(), task_queue)
    async with Worker(
        temporal_env.client, task_queue=task_queue, plugins=[DurableSessionsPlugin(store)]
    ):
        session_id = (await manager.create("sync-user")).session_id

        def sync_program() -> list[BaseMessage]:
            history = DurableChatMessageHistory(manager, session_id)
            history.add_messages([HumanMessage(content="one"), AIMessage(content="two")])
            return history.messages

        result = await asyncio.to_thread(sync_program)
        assert result == [HumanMessage(content="one"), AIMessage(content="two")]
        assert "durable-sessions-loop" in {t.name for t in threading.enumerate()}


@pytest.mark.filterwarnings(
    "ignore:RunnableWithMessageHistory is deprecated"
    ":langchain_core._api.deprecation.LangChainDeprecationWarning"
)
async def test_runnable_with_message_history_remembers_the_conversation(
    manager: SessionManager,
) -> None:
    """The classic LangChain memory wrapper (deprecated in langchain-core 1.6.4, still used)."""
    from langchain_core.runnables import RunnableLambda
    from langchain_core.runnables.history import RunnableWithMessageHistory

    def fake_llm(messages: list[BaseMessage]) -> AIMessage:
        return AIMessage(content=f"I have seen {len(messages)} message(s)")

    chain = RunnableWithMessageHistory(
        RunnableLambda(fake_llm),
        lambda session_id: DurableChatMessageHistory(manager, session_id),
    )
    session_id = (await manager.create("runnable-user")).session_id
    config: Any = {"configurable": {"session_id": session_id}}
    first = await chain.ainvoke("hi", config)
    second = await chain.ainvoke("again", config)
    assert (first.content, second.content) == (
        "I have seen 1 message(s)",
        "I have seen 3 message(s)",
    )
    history = await DurableChatMessageHistory(manager, session_id).aget_messages()
    assert [m.content for m in history] == ["hi", first.content, "again", second.content]


@pytest.mark.parametrize("message", [*CONVERSATION, ChatMessage(role="critic", content="meh")])
def test_messages_round_trip_exactly(message: BaseMessage) -> None:
    turn = message_to_turn(message)
    assert MESSAGE_KEY in turn.metadata
    again = SessionTurn.model_validate_json(turn.model_dump_json())
    assert turn_to_message(again) == message


def test_roles_and_placeholders() -> None:
    assert message_to_turn(ChatMessage(role="assistant", content="x")).role == "assistant"
    assert message_to_turn(ChatMessage(role="critic", content="x")).role == "user"
    assert message_to_turn(FunctionMessage(name="f", content="r")).role == "tool"
    assert message_to_turn(HumanMessage(content="")).content == "(empty)"


def test_turns_from_other_clients_read_as_plain_messages() -> None:
    assert turn_to_message(SessionTurn(role="user", content="u")) == HumanMessage(content="u")
    assert turn_to_message(SessionTurn(role="assistant", content="a")) == AIMessage(content="a")
    assert turn_to_message(SessionTurn(role="system", content="s")) == SystemMessage(content="s")
    tool = SessionTurn(role="tool", content="t", metadata={"tool_call_id": "c9"})
    assert turn_to_message(tool) == ToolMessage(content="t", tool_call_id="c9")

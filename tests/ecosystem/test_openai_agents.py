"""The OpenAI Agents SDK adapter: ``Runner.run(..., session=DurableAgentsSession(...))``, offline.

The model is a fake (the SDK's ``Model`` interface returning canned responses): no network.
The worker is a real ``python -m durable_sessions.worker`` process on PostgreSQL, killed with
SIGKILL and restarted between two runs: the second run must see the whole first conversation.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from agents import Agent, ModelSettings, RunConfig, Runner, function_tool
from agents.agent_output import AgentOutputSchemaBase
from agents.handoffs import Handoff
from agents.items import ModelResponse, TResponseInputItem, TResponseStreamEvent
from agents.memory import Session, SessionSettings
from agents.models.interface import Model, ModelTracing
from agents.tool import Tool
from agents.usage import Usage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)
from openai.types.responses.response_prompt_param import ResponsePromptParam
from temporalio.testing import WorkflowEnvironment

from durable_sessions.adapters import DurableAgentsSession
from durable_sessions.adapters.openai_agents import ITEM_KEY, item_to_turn, turn_to_item
from durable_sessions.client import SessionManager
from durable_sessions.models import SessionConfig
from durable_sessions.stores.base import read_transcript
from tests.helpers import assert_eventually
from tests.processes import PgWorker

RUN_CONFIG = RunConfig(tracing_disabled=True)


def _message(text: str, n: int) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id=f"msg_{n}",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )


class FakeModel(Model):
    """Canned responses, in order; records the input of every call."""

    def __init__(self, outputs: list[list[Any]]) -> None:
        self.outputs = outputs
        self.inputs: list[list[TResponseInputItem]] = []

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> ModelResponse:
        self.inputs.append(
            [{"role": "user", "content": input}] if isinstance(input, str) else list(input)
        )
        return ModelResponse(output=self.outputs.pop(0), usage=Usage(), response_id=None)

    async def stream_response(  # type: ignore[override]
        self, *args: Any, **kwargs: Any
    ) -> AsyncIterator[TResponseStreamEvent]:
        raise NotImplementedError("the fake model does not stream")
        yield


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


async def test_runner_keeps_its_history_across_a_worker_crash(
    temporal_env: WorkflowEnvironment, pg_worker: PgWorker, task_queue: str
) -> None:
    store, worker = pg_worker.store, pg_worker.worker
    # A generous call timeout: the first read after a kill -9 waits for the dead worker's sticky
    # queue to time out (3 s with create_worker's setting) on a machine that may be loaded.
    manager = SessionManager(
        temporal_env.client, store, SessionConfig(flush_interval=0.2), task_queue, call_timeout=30
    )
    model = FakeModel(
        [
            [
                ResponseFunctionToolCall(
                    id="fc_1",
                    type="function_call",
                    call_id="call_1",
                    name="get_weather",
                    arguments=json.dumps({"city": "Paris"}),
                    status="completed",
                )
            ],
            [_message("It is sunny in Paris.", 1)],
            [_message("Still sunny tomorrow, in Paris.", 2)],
        ]
    )
    agent = Agent(name="weather", instructions="Answer briefly.", model=model, tools=[get_weather])
    session = await DurableAgentsSession.create(manager, "agents-user", {"app": "weather"})
    assert isinstance(session, Session)  # the SDK's runtime-checkable protocol

    first = await Runner.run(agent, "Weather in Paris?", session=session, run_config=RUN_CONFIG)
    assert first.final_output == "It is sunny in Paris."
    items = await session.get_items()
    kinds = [(i.get("role"), i.get("type")) for i in items]
    assert kinds == [
        ("user", None),
        (None, "function_call"),
        (None, "function_call_output"),
        ("assistant", "message"),
    ]

    turns = await manager.history(session.session_id)
    assert [t.role for t in turns] == ["user", "assistant", "tool", "assistant"]
    assert [t.metadata[ITEM_KEY] for t in turns] == items
    assert turns[0].content == "Weather in Paris?"
    assert turns[1].metadata["tool_calls"] == ["call_1"]
    assert turns[2].metadata["tool_call_id"] == "call_1"
    assert turns[2].content == "sunny in Paris"
    assert turns[3].content == "It is sunny in Paris."

    worker.kill9()
    worker.start()

    second = await Runner.run(agent, "And tomorrow?", session=session, run_config=RUN_CONFIG)
    assert second.final_output == "Still sunny tomorrow, in Paris."
    seen = model.inputs[-1]
    assert len(seen) == len(items) + 1
    assert seen[0].get("content") == "Weather in Paris?"
    assert seen[2].get("type") == "function_call_output"
    assert seen[-1].get("content") == "And tomorrow?"

    everything = await session.get_items()
    assert everything[:4] == items
    assert len(everything) == 6
    assert await session.get_items(limit=2) == everything[-2:]
    assert await session.get_items(limit=0) == []

    # pop_item / clear_session move the head; the log stays append-only.
    popped = await session.pop_item()
    assert popped == everything[-1]
    assert await session.get_items() == everything[:-1]
    await session.clear_session()
    assert await session.get_items() == []
    assert await session.pop_item() is None
    assert (await session.state()).turn_count == 0

    await Runner.run(
        Agent(name="again", model=FakeModel([[_message("fresh start", 3)]])),
        "hello again",
        session=session,
        run_config=RUN_CONFIG,
    )
    assert (await session.get_items())[0].get("content") == "hello again"

    async def log_kept() -> None:
        assert len(await read_transcript(store, session.session_id)) == 2
        # The first six turns are still in the log, under the first generation.
        old = await read_transcript(store, session.session_id, generation=0, turn_count=6)
        assert [t.metadata[ITEM_KEY] for t in old] == everything

    await assert_eventually(log_kept)


async def test_session_settings_limit_caps_reads(
    temporal_env: WorkflowEnvironment, store: Any, task_queue: str
) -> None:
    from temporalio.worker import Worker

    from durable_sessions.plugin import DurableSessionsPlugin

    manager = SessionManager(temporal_env.client, store, SessionConfig(), task_queue)
    async with Worker(
        temporal_env.client, task_queue=task_queue, plugins=[DurableSessionsPlugin(store)]
    ):
        session = await DurableAgentsSession.create(
            manager, "limit-user", session_settings=SessionSettings(limit=1)
        )
        await session.add_items(
            [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
        )
        assert await session.get_items() == [{"role": "assistant", "content": "b"}]
        assert len(await session.get_items(limit=5)) == 2


@pytest.mark.parametrize(
    ("item", "role", "content"),
    [
        ({"role": "user", "content": "hi"}, "user", "hi"),
        ({"role": "user", "content": ""}, "user", "(empty)"),
        ({"role": "developer", "content": "be brief"}, "system", "be brief"),
        (
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "look"},
                    {"type": "input_image", "image_url": "data:,x", "detail": "auto"},
                ],
            },
            "user",
            "look",
        ),
        (
            {"type": "function_call_output", "call_id": "c", "output": "42 °C ✓"},
            "tool",
            "42 °C ✓",
        ),
        (
            {"type": "reasoning", "id": "rs_1", "summary": []},
            "assistant",
            '{"type": "reasoning", "id": "rs_1", "summary": []}',
        ),
    ],
)
def test_items_map_to_turns_and_back_exactly(item: Any, role: str, content: str) -> None:
    turn = item_to_turn(item)
    assert (turn.role, turn.content) == (role, content)
    assert turn_to_item(turn) == item
    # Through the wire format and back, too.
    again = type(turn).model_validate_json(turn.model_dump_json())
    assert turn_to_item(again) == item


def test_non_json_items_are_refused_before_anything_is_sent() -> None:
    with pytest.raises(TypeError):
        item_to_turn({"role": "user", "content": object()})

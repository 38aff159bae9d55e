"""The shared pydantic payload converter: the same payloads as temporalio's, built once."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
import temporalio.bridge.worker as bridge_worker
from temporalio.api.common.v1 import Payload
from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.contrib.pydantic import PydanticPayloadConverter, pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec
from temporalio.worker._command_aware_visitor import CommandAwarePayloadVisitor

from durable_sessions.converter import SharedPydanticPayloadConverter, session_data_converter
from durable_sessions.models import SessionTurn
from durable_sessions.plugin import skip_idle_payload_visits, with_pydantic_payloads
from durable_sessions.workflows.messages import SessionWorkflowInput, TurnReceipt


def _values() -> list[object]:
    turn = SessionTurn(
        turn_id="fixed", role="user", content="héllo", timestamp=datetime(2026, 1, 2, tzinfo=UTC)
    )
    return [
        turn,
        TurnReceipt(turn_id="t", seq=3, tokens=2, timestamp=datetime(2026, 1, 2, tzinfo=UTC)),
        {"a": [1, 2.5, None]},
        "text",
        None,
        b"\x00\x01",
    ]


def test_payloads_are_those_of_the_stock_pydantic_converter() -> None:
    values = _values()
    ours = session_data_converter.payload_converter.to_payloads(values)
    stock = pydantic_data_converter.payload_converter.to_payloads(values)
    assert ours == stock
    back = session_data_converter.payload_converter.from_payloads(
        stock, [SessionTurn, TurnReceipt, dict, str, type(None), bytes]
    )
    assert back == values


def test_instances_share_one_set_of_converters() -> None:
    a, b = SharedPydanticPayloadConverter(), SharedPydanticPayloadConverter()
    assert a.converters is b.converters
    # What the SDK does per workflow activation: build a DataConverter, so a payload converter.
    c = DataConverter(payload_converter_class=SharedPydanticPayloadConverter)
    inner = c.payload_converter.to_payloads([SessionWorkflowInput.model_construct()])
    assert inner and inner[0].metadata["encoding"] == b"json/plain"


def test_the_plugin_shares_the_stock_converter_and_keeps_a_users_own() -> None:
    assert with_pydantic_payloads(None) is session_data_converter
    shared = with_pydantic_payloads(pydantic_data_converter)
    assert shared.payload_converter_class is SharedPydanticPayloadConverter

    class Mine(PydanticPayloadConverter):
        def __init__(self) -> None:
            super().__init__(max_cached_type_adapters=8)

    mine = DataConverter(payload_converter_class=Mine)
    assert with_pydantic_payloads(mine) is mine
    plain = with_pydantic_payloads(DataConverter.default)
    assert plain.payload_converter_class is SharedPydanticPayloadConverter


class _ReversingCodec(PayloadCodec):
    """Reverses payload bytes: a codec whose work shows in the payload."""

    def __init__(self) -> None:
        self.calls = 0

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        self.calls += 1
        return [Payload(metadata=dict(p.metadata), data=p.data[::-1]) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return await self.encode(payloads)


def _activation() -> WorkflowActivation:
    act = WorkflowActivation(run_id="run")
    job = act.jobs.add()
    job.signal_workflow.signal_name = "s"
    job.signal_workflow.input.add(metadata={"encoding": b"json/plain"}, data=b'"abc"')
    return act


def _completion() -> WorkflowActivationCompletion:
    completion = WorkflowActivationCompletion(run_id="run")
    command = completion.successful.commands.add()
    command.complete_workflow_execution.result.metadata["encoding"] = b"json/plain"
    command.complete_workflow_execution.result.data = b'"abc"'
    return completion


async def test_idle_payload_visits_are_skipped_and_a_codec_still_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a codec or external storage the SDK's payload walks are skipped (they would hand
    every payload back unchanged); with a codec they run as before, on both directions."""
    assert skip_idle_payload_visits()
    assert skip_idle_payload_visits()  # installing twice is harmless
    walks = 0
    visit = CommandAwarePayloadVisitor.visit

    async def counting(self: CommandAwarePayloadVisitor, fs: Any, root: Any) -> None:
        nonlocal walks
        walks += 1
        await visit(self, fs, root)

    monkeypatch.setattr(CommandAwarePayloadVisitor, "visit", counting)

    plain = session_data_converter
    act, completion = _activation(), _completion()
    await bridge_worker.decode_activation(
        act, plain, decode_headers=False, storage_concurrency_limit=1
    )
    await bridge_worker.encode_completion(
        completion, plain, encode_headers=False, storage_concurrency_limit=1
    )
    assert walks == 0
    assert act == _activation() and completion == _completion()

    codec = _ReversingCodec()
    coded = dataclasses.replace(plain, payload_codec=codec)
    await bridge_worker.decode_activation(
        act, coded, decode_headers=False, storage_concurrency_limit=1
    )
    await bridge_worker.encode_completion(
        completion, coded, encode_headers=False, storage_concurrency_limit=1
    )
    assert walks == 6
    assert codec.calls == 2
    assert act.jobs[0].signal_workflow.input[0].data == b'"cba"'
    assert completion.successful.commands[0].complete_workflow_execution.result.data == b'"cba"'

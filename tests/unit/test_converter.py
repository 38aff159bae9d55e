"""The shared pydantic payload converter: the same payloads as temporalio's, built once."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio.contrib.pydantic import PydanticPayloadConverter, pydantic_data_converter
from temporalio.converter import DataConverter

from durable_sessions.converter import SharedPydanticPayloadConverter, session_data_converter
from durable_sessions.models import SessionTurn
from durable_sessions.plugin import with_pydantic_payloads
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

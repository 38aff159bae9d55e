"""The pydantic payload converter our clients and workers use, built once per process.

Payloads are exactly those of ``temporalio.contrib.pydantic.pydantic_data_converter``; only the
cost differs. temporalio (1.35) constructs the data converter's payload converter for every
workflow activation, twice (``_CommandAwareDataConverter.create``), and once per workflow
instance. A stock ``PydanticPayloadConverter`` builds its encoding converters and a fresh
``TypeAdapter`` cache each time, so every workflow task paid for that, and every new run or
cold replay rebuilt the adapters of the types it decodes. Instances of
``SharedPydanticPayloadConverter`` share one set of encoding converters (and so one adapter
cache) per process: stateless apart from that thread-safe cache.
"""

from __future__ import annotations

from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import DataConverter

__all__ = ["SharedPydanticPayloadConverter", "session_data_converter"]

_SHARED = PydanticPayloadConverter()
"""The one set of encoding converters (and adapter cache) every instance below uses."""


class SharedPydanticPayloadConverter(PydanticPayloadConverter):
    """``PydanticPayloadConverter`` whose instances share one set of encoding converters."""

    def __init__(self) -> None:
        # ``with_context`` would build a new instance and set its converters; none of these
        # converters takes a serialization context, so it never does.
        self.converters = _SHARED.converters


session_data_converter = DataConverter(payload_converter_class=SharedPydanticPayloadConverter)
"""``pydantic_data_converter`` with the shared payload converter."""

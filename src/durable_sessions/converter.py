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

import threading
from typing import ClassVar

from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import DataConverter

__all__ = ["SharedPydanticPayloadConverter", "session_data_converter"]


class SharedPydanticPayloadConverter(PydanticPayloadConverter):
    """``PydanticPayloadConverter`` whose instances share one set of encoding converters."""

    _prototype: ClassVar[PydanticPayloadConverter | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        proto = SharedPydanticPayloadConverter._prototype
        if proto is None:
            with SharedPydanticPayloadConverter._lock:
                proto = SharedPydanticPayloadConverter._prototype
                if proto is None:
                    proto = PydanticPayloadConverter()
                    SharedPydanticPayloadConverter._prototype = proto
        # ``with_context`` would build a new instance and set its converters; none of these
        # converters takes a serialization context, so it never does.
        self.converters = proto.converters


session_data_converter = DataConverter(payload_converter_class=SharedPydanticPayloadConverter)
"""``pydantic_data_converter`` with the shared payload converter."""

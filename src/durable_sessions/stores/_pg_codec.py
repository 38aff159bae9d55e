"""Value conversions of the PostgreSQL store: faithful text, the jsonb codec, the row codec.

PostgreSQL ``text`` and ``jsonb`` refuse NUL characters, which Python strings may hold, and
``jsonb`` has no NaN or infinity. Such values (rare) are stored in a reversible escaped form
marked by the private-use character U+E000 (see the ``postgres`` module docstring).
"""

from __future__ import annotations

import json
import math
from typing import Any

import asyncpg

from durable_sessions.stores._rows import RowCodec

__all__ = ["ROWS", "TURN_COLS", "init_connection"]

_ESC = "\ue000"
"""Marks a value stored in escaped form (it held a NUL, or itself started with the marker)."""


def _encode_text(value: str) -> str:
    if "\x00" in value or value.startswith(_ESC):
        return _ESC + json.dumps(value, ensure_ascii=False)
    return value


def _decode_text(value: str) -> str:
    if value.startswith(_ESC):
        decoded: str = json.loads(value[1:])
        return decoded
    return value


def _jsonb_unsafe(obj: Any) -> bool:
    """True when jsonb would refuse (NUL in a string) or alter (NaN, infinities) the value."""
    if isinstance(obj, str):
        return "\x00" in obj
    if isinstance(obj, float):
        return not math.isfinite(obj)
    if isinstance(obj, dict):
        return any(_jsonb_unsafe(k) or _jsonb_unsafe(v) for k, v in obj.items())
    if isinstance(obj, list | tuple):
        return any(_jsonb_unsafe(v) for v in obj)
    return False


def _encode_json(obj: Any) -> str:
    """jsonb codec encoder. A document jsonb cannot hold as is travels as a JSON string inside
    a one-key object marked with ``_ESC`` (so do documents that merely look like that)."""
    if _jsonb_unsafe(obj) or (isinstance(obj, dict) and len(obj) == 1 and _ESC in obj):
        obj = {_ESC: json.dumps(obj, ensure_ascii=False)}
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _decode_json(text: str) -> Any:
    obj = json.loads(text)
    if isinstance(obj, dict) and len(obj) == 1 and isinstance(obj.get(_ESC), str):
        return json.loads(obj[_ESC])
    return obj


def _meta_in(metadata: dict[str, Any]) -> dict[str, Any] | None:
    return metadata or None


def _meta_out(value: Any) -> dict[str, Any]:
    return dict(value) if value else {}


async def init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=_encode_json, decoder=_decode_json, schema="pg_catalog", format="text"
    )


# --- row mapping ------------------------------------------------------------------------------

# Datetimes travel as timestamptz, metadata through the jsonb codec above (empty is NULL).
ROWS = RowCodec(meta_in=_meta_in, meta_out=_meta_out, text_in=_encode_text, text_out=_decode_text)
TURN_COLS = 'seq, turn_id, role, content, "timestamp", tokens, cost, agent, metadata'

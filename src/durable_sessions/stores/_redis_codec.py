"""Key names and JSON serialisation of the Redis cache store's values."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import pydantic_core
from pydantic import BaseModel, ValidationError

from durable_sessions.models import SessionState

__all__ = ["RedisKeys", "dump", "load_all", "sort_key", "text"]

log = logging.getLogger("durable_sessions.stores.redis")

M = TypeVar("M", bound=BaseModel)


def _utc(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def dump(model: BaseModel) -> bytes:
    """JSON that round-trips every field, NaN and infinities included, datetimes in UTC."""
    data = {key: _utc(value) for key, value in model.model_dump(mode="python").items()}
    return pydantic_core.to_json(data, inf_nan_mode="constants")


def load_all(cls: type[M], raws: Sequence[bytes | str]) -> list[M] | None:
    """Parse cached values; None when one does not fit the model (written by another version
    of the code during a rolling upgrade, say): the caller then reads the store instead."""
    try:
        return [cls.model_validate_json(raw) for raw in raws]
    except ValidationError as exc:
        log.warning("ignoring a cached %s that does not parse: %s", cls.__name__, exc)
        return None


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def sort_key(state: SessionState) -> tuple[datetime, str]:
    return (state.created_at, state.session_id)


class RedisKeys:
    """The names of the cache's keys, all under ``prefix``."""

    prefix: str

    def _k_header(self, session_id: str) -> str:
        return f"{self.prefix}session:{session_id}"

    def _k_version(self, session_id: str) -> str:
        return f"{self.prefix}version:{session_id}"

    def _k_turns(self, session_id: str, generation: int) -> str:
        return f"{self.prefix}turns:{session_id}:{generation}"

    def _k_generations(self, session_id: str) -> str:
        return f"{self.prefix}generations:{session_id}"

    def _k_gen_parents(self, session_id: str) -> str:
        return f"{self.prefix}generation-parents:{session_id}"

    def _k_user(self, user_id: str) -> str:
        return f"{self.prefix}user:{user_id}"

    def _k_user_version(self, user_id: str) -> str:
        return f"{self.prefix}user-version:{user_id}"

    def _k_branches(self, parent_session_id: str) -> str:
        return f"{self.prefix}branches:{parent_session_id}"

    def _k_branches_version(self, parent_session_id: str) -> str:
        return f"{self.prefix}branches-version:{parent_session_id}"

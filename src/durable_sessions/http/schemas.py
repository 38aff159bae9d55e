"""Request bodies of the HTTP API, with bounds that keep bad input a 4xx (and the few response
models that are not models of the package).

Every string is checked for lone surrogates (JSON ``"\\ud800"`` decodes to a Python string that
cannot be encoded as UTF-8, so no store or Temporal payload could hold it), and every JSON
object a client sends (metadata) must be plain JSON: finite numbers, integers within 64 bits
and at most ``MAX_JSON_DEPTH`` levels deep. Byte-size limits answer 413 and are checked by the
endpoints (see ``app``).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from durable_sessions.models import Role, SessionState

__all__ = [
    "MAX_CONTENT_BYTES",
    "MAX_COST_PER_TURN",
    "MAX_JSON_DEPTH",
    "MAX_METADATA_BYTES",
    "MAX_SEQ",
    "MAX_TOKENS_PER_TURN",
    "MAX_TTL_SECONDS",
    "MAX_TURN_IDS",
    "AddTurnRequest",
    "AppendMergeRequest",
    "BranchRequest",
    "BranchTreeNode",
    "ContextRequest",
    "CreateSessionRequest",
    "EditRequest",
    "Identifier",
    "LineageResponse",
    "MergeRequest",
    "RegenerateRequest",
    "SelectiveMergeRequest",
    "TurnIds",
    "check_json",
]

MAX_TTL_SECONDS = 10 * 366 * 86_400
"""Longest idle TTL a client may ask for (ten years)."""
MAX_METADATA_BYTES = 64 * 1024
"""Largest metadata object (session or turn), as compact JSON."""
MAX_CONTENT_BYTES = 1_000_000
"""Hard cap of a turn's content in UTF-8 bytes: the largest ``max_turn_bytes`` a session can
have. Bigger content is refused before anything is sent to Temporal."""
MAX_JSON_DEPTH = 32
MAX_TOKENS_PER_TURN = 2**31 - 1
"""A turn's token count is stored as a 32-bit integer."""
MAX_COST_PER_TURN = 1e9
MAX_TURN_IDS = 10_000
MAX_SEQ = 2**31 - 1

_INT64 = 2**63


def _check_text(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from None


def check_json(value: Any) -> None:
    """Raise ValueError unless ``value`` is plain JSON we can store and send (iteratively, so
    a deep document cannot exhaust the stack)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not -_INT64 <= item < _INT64:
                raise ValueError("integers must fit in 64 bits")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError("numbers must be finite")
        elif isinstance(item, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise ValueError(f"JSON may nest at most {MAX_JSON_DEPTH} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise ValueError("object keys must be strings")
                    _check_text(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        else:
            raise ValueError(f"unsupported JSON value of type {type(item).__name__}")


Identifier = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _plain_values(cls, value: Any) -> Any:
        if isinstance(value, dict | list | str):
            check_json(value)
        return value


class CreateSessionRequest(_Request):
    """``POST /sessions``. The user comes from the API key, never from the body."""

    metadata: dict[str, Any] | None = None
    ttl: float | None = Field(default=None, gt=0, le=MAX_TTL_SECONDS)
    """Idle TTL in seconds; the server's default when omitted."""


class AddTurnRequest(_Request):
    """``POST /sessions/{id}/turns``. The session assigns ``seq`` and ``timestamp``."""

    role: Role
    content: str = Field(min_length=1)
    turn_id: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$"
    )
    """Idempotency key: retrying with the same ``turn_id`` stores the turn once."""
    tokens: int | None = Field(default=None, ge=0, le=MAX_TOKENS_PER_TURN)
    """Counted by the server when omitted."""
    cost: float = Field(default=0.0, ge=0.0, le=MAX_COST_PER_TURN)
    agent: str | None = Field(default=None, min_length=1, max_length=200)
    metadata: dict[str, Any] | None = None


class BranchRequest(_Request):
    """``POST /sessions/{id}/branches``."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
    from_checkpoint: Identifier | None = None
    """Fork at this checkpoint of the session."""
    at_seq: int | None = Field(default=None, ge=0, le=MAX_SEQ)
    """Fork after the first ``at_seq`` turns (at any turn). At most one of ``from_checkpoint``
    and ``at_seq``; at the latest turn when both are omitted."""

    @model_validator(mode="after")
    def _one_fork_point(self) -> BranchRequest:
        if self.from_checkpoint is not None and self.at_seq is not None:
            raise ValueError("give from_checkpoint or at_seq, not both")
        return self


class EditRequest(_Request):
    """``POST /sessions/{id}/edit``: replace turn ``seq`` with ``content``.

    ``mode: "branch"`` (the default) leaves the session as it is and answers a new branch
    forked before turn ``seq`` with the edited turn added; ``"rewind"`` rewinds the session's
    transcript to turn ``seq`` and adds the edited turn there. Either way the old turns stay
    readable (in the session, or in its log under the previous generation).
    """

    seq: int = Field(ge=0, le=MAX_SEQ)
    content: str = Field(min_length=1)
    mode: Literal["branch", "rewind"] = "branch"
    name: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$"
    )
    """The branch's name (``mode: "branch"`` only); ``edit-<seq>-<random>`` when omitted."""


class RegenerateRequest(_Request):
    """``POST /sessions/{id}/regenerate``: drop the last assistant turn and run ``agent``
    again (an agent registered on the workers)."""

    agent: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
    role: str = Field(default="assistant", min_length=1, max_length=200)


TurnIds = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=128)]],
    Field(max_length=MAX_TURN_IDS),
]


class AppendMergeRequest(_Request):
    """``POST /sessions/{id}/merge`` with ``strategy: "append"`` (the default): every turn of
    the source that the target does not share, in order. Takes no ``turn_ids``."""

    source_session_id: Identifier
    strategy: Literal["append"] = "append"


class SelectiveMergeRequest(_Request):
    """``POST /sessions/{id}/merge`` with ``strategy: "selective"``: only the source turns
    named in ``turn_ids``."""

    source_session_id: Identifier
    strategy: Literal["selective"]
    turn_ids: TurnIds
    """Source turn ids to copy."""


def _merge_strategy(value: Any) -> str | None:
    if isinstance(value, dict):
        strategy = value.get("strategy", "append")
        return strategy if isinstance(strategy, str) else None
    return getattr(value, "strategy", None)


MergeRequest = Annotated[
    Annotated[AppendMergeRequest, Tag("append")]
    | Annotated[SelectiveMergeRequest, Tag("selective")],
    Discriminator(
        _merge_strategy,
        custom_error_type="invalid_strategy",
        custom_error_message="strategy must be 'append' or 'selective'",
    ),
]
"""``POST /sessions/{id}/merge``: merge ``source_session_id`` into ``{id}``. A union on
``strategy`` (``append`` when omitted), so the schema itself says that ``selective`` needs
``turn_ids`` and ``append`` takes none."""


class ContextRequest(_Request):
    """``POST /sessions/{id}/context``: the session's context pruned for ``query``."""

    query: str = Field(default="", max_length=10_000)
    max_turns: int = Field(default=20, ge=1, le=10_000)
    max_tokens: int | None = Field(default=None, ge=1, le=100_000_000)
    """Token budget; none when omitted."""
    pruner: Literal["relevance", "sliding_window", "token_budget"] = "relevance"


class BranchTreeNode(BaseModel):
    """A session of a branch tree and its own branches, oldest first."""

    session: SessionState
    children: list[BranchTreeNode] = Field(default_factory=list)


class LineageResponse(BaseModel):
    """``GET /sessions/{id}/lineage``: the branch tree a session belongs to."""

    session_id: str
    ancestors: list[str]
    """Ids of the session's ancestors, root first (empty for a root session)."""
    root: BranchTreeNode
    """The whole tree from the root: the session, its ancestors and every branch."""

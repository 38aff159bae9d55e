"""Replay checks that go past the commands: does every update answer on replay what it answered
live?

The SDK's replay compares the commands a workflow sends with the history's events: an
activity's type, a timer, a marker. It does not compare an activity's or a local activity's
input, nor an update's answer, so a replay can take a different path through the workflow's
state and still "pass": e.g. two turns queued for the lock in the other order get each other's
``seq`` (the receipts differ, the commands do not). A worker that takes the session over after a
cache miss would then hold a state that the store and the callers never saw.

``AnswerCapture`` (a worker interceptor, given to the ``Replayer``) records each update's
outcome as the replayed workflow computed it; ``answer_mismatches`` compares those with the
``WorkflowExecutionUpdateCompleted`` events of the history.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.worker import (
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

__all__ = ["AnswerCapture", "answer_mismatches"]

_REPLAYED: dict[str, tuple[bool, Any]] = {}
"""Update id → (answered, (the answer's payloads, its type) or the error's type name), as the
replay computed it.
Update ids are unique per update (the client draws them), so concurrent replays do not mix."""


class _CaptureInbound(WorkflowInboundInterceptor):
    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        try:
            result = await super().handle_update_handler(input)
        except Exception as exc:
            _REPLAYED[input.id] = (False, type(exc).__name__)
            raise
        # Converted now: a handler may answer with live state (``self._state``) that later
        # tasks change, and the SDK converts it when the update completes.
        payloads = workflow.payload_converter().to_payloads([result])
        _REPLAYED[input.id] = (True, (payloads, type(result)))
        return result


class AnswerCapture(Interceptor):
    """Record what each update handler answers (for ``answer_mismatches``)."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _CaptureInbound


def answer_mismatches(history: WorkflowHistory) -> list[str]:
    """Updates of ``history`` whose replayed answer differs from the recorded one (call after
    replaying ``history`` with ``AnswerCapture``). Updates the replay did not reach are left to
    the replay's own check."""
    out: list[str] = []
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            continue
        attrs = event.workflow_execution_update_completed_event_attributes
        update_id = attrs.meta.update_id
        replayed = _REPLAYED.pop(update_id, None)
        if replayed is None:
            continue
        answered, value = replayed
        if attrs.outcome.HasField("failure"):
            if answered:
                out.append(
                    f"update {update_id[:12]} (event {event.event_id}): failed live, "
                    "answered on replay"
                )
            continue
        if not answered:
            out.append(
                f"update {update_id[:12]} (event {event.event_id}): answered live, failed on "
                f"replay ({value})"
            )
            continue
        live = attrs.outcome.success.payloads
        again, answer_type = value
        if not _same_answer(live, again, answer_type):
            out.append(
                f"update {update_id[:12]} (event {event.event_id}): answered differently on "
                f"replay: {_differences(live[0].data if live else b'null', again[0].data)}"
            )
    return out


def _differences(live: bytes, replayed: bytes) -> str:
    """Top-level fields that differ (live → replayed), or the raw sizes if not JSON objects."""
    try:
        a, b = json.loads(live), json.loads(replayed)
    except ValueError:
        return f"{len(live)} vs {len(replayed)} bytes"
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return f"{a!r} → {b!r}"[:300]
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    return "; ".join(f"{k}: {a.get(k)!r} → {b.get(k)!r}"[:120] for k in keys)


def _same_answer(live: Sequence[Payload], again: Sequence[Payload], answer_type: type) -> bool:
    """Byte for byte, or (a history recorded before a field was added) equal once both are read
    back as today's answer type, so a new field's default is not a difference."""
    if [p.data for p in live] == [p.data for p in again]:
        return True
    if len(live) != 1 or len(again) != 1:
        return False
    adapter: TypeAdapter[Any] = TypeAdapter(answer_type)
    try:
        return bool(adapter.validate_json(live[0].data) == adapter.validate_json(again[0].data))
    except ValidationError:
        return False

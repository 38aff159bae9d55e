"""Reading raw workflow history: every payload and failure in every event, undecoded."""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload, SearchAttributes, WorkflowExecution
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import History, MarkerRecordedEventAttributes
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest
from temporalio.client import Client


async def raw_history(client: Client, workflow_id: str, run_id: str = "") -> History:
    """The history as the server stores it, over the raw gRPC API (no data converter)."""
    history = History()
    token = b""
    while True:
        resp = await client.workflow_service.get_workflow_execution_history(
            GetWorkflowExecutionHistoryRequest(
                namespace=client.namespace,
                execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
                next_page_token=token,
            )
        )
        history.events.extend(resp.history.events)
        token = resp.next_page_token
        if not token:
            return history


async def raw_histories(client: Client, workflow_id: str) -> History:
    """Every run's history of ``workflow_id``, oldest first: from the latest run back along
    ``continued_execution_run_id`` (a session continues as new: each run holds its part)."""
    runs: list[History] = []
    run_id = ""
    while True:
        history = await raw_history(client, workflow_id, run_id)
        runs.append(history)
        started = history.events[0].workflow_execution_started_event_attributes
        run_id = started.continued_execution_run_id
        if not run_id:
            break
    merged = History()
    for history in reversed(runs):
        merged.events.extend(history.events)
    return merged


def _children(msg: Message) -> Iterator[Message]:
    for field, value in msg.ListFields():
        entry = field.message_type
        if field.type != FieldDescriptor.TYPE_MESSAGE or entry is None:
            continue
        if entry.GetOptions().map_entry:
            entry_value = entry.fields_by_name["value"]
            if entry_value.type == FieldDescriptor.TYPE_MESSAGE:
                yield from value.values()
        elif field.is_repeated:
            yield from value
        else:
            yield value


def walk(msg: Message) -> Iterator[Message]:
    """Every message nested in ``msg`` (itself included), depth first.

    Search attributes are skipped: Temporal needs them in plaintext to index them (user id and
    status; never conversation text). Summaries (user metadata) are payloads like any other.
    """
    if isinstance(msg, SearchAttributes):
        return
    yield msg
    for child in _children(msg):
        yield from walk(child)


def payloads_and_failures(history: History) -> tuple[list[Payload], list[Failure]]:
    """Every payload and failure in a history, except what the SDK core writes itself, outside
    the data converter: patch markers (only the patch id) and the ``data`` detail of a local
    activity's marker (its sequence number, attempt, activity type and times). A local
    activity's ``result`` and failure in that marker do go through the data converter."""
    payloads: list[Payload] = []
    failures: list[Failure] = []
    for event in history.events:
        target: Message = event
        if event.HasField("marker_recorded_event_attributes"):
            marker = event.marker_recorded_event_attributes
            if marker.marker_name == "core_patch":
                continue
            if marker.marker_name == "core_local_activity":
                target = MarkerRecordedEventAttributes()
                target.CopyFrom(marker)
                del target.details["data"]
        for msg in walk(target):
            if isinstance(msg, Payload):
                payloads.append(msg)
            elif isinstance(msg, Failure):
                failures.append(msg)
    return payloads, failures

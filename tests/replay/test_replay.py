"""Replay recorded histories against today's workflow code: the gate for workflow changes.

A failure here means a change to ``workflows/`` would break sessions already running. Fix the
change (``workflow.patched``) rather than re-recording; see ``scripts/record_histories.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from durable_sessions.worker import WORKFLOWS, workflow_runner
from durable_sessions.workflows.messages import SessionWorkflowInput

HISTORIES = sorted((Path(__file__).parents[1] / "histories").glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def test_histories_are_recorded() -> None:
    names = {p.stem for p in HISTORIES}
    assert {
        "lifecycle",
        "ttl_expiry",
        "restore_in_place",
        "continue_as_new",
        "branch_and_merge_parent",
        "branch_and_merge_child",
        "group_and_context",
        "drain_with_signals",
    } <= names


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_replay(path: Path) -> None:
    replayer = Replayer(
        workflows=WORKFLOWS,
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    await replayer.replay_workflow(load(path))


@workflow.defn(name="Session")
class ChangedSession:
    """A careless change: the first thing the workflow does is no longer a flush."""

    @workflow.run
    async def run(self, input: SessionWorkflowInput) -> None:
        await workflow.sleep(1)


async def test_an_incompatible_change_is_caught() -> None:
    replayer = Replayer(
        workflows=[ChangedSession],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(load(HISTORIES[0]))

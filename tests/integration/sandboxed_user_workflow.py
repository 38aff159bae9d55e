"""A user's own workflow module that imports durable-sessions the ordinary way.

It is loaded by the Temporal workflow sandbox (re-imported per validation and per run, nothing
passed through but the SDK's defaults), which is why it lives in a module of its own: the
sandbox imports the whole module a workflow is defined in.
"""

from __future__ import annotations

from temporalio import workflow

import durable_sessions
from durable_sessions import SessionStatus, SessionTurn


@workflow.defn
class UsesSessionTurn:
    """Builds and validates ``SessionTurn`` models inside the sandbox."""

    @workflow.run
    async def run(self, contents: list[str]) -> list[str]:
        turns = [
            SessionTurn(
                turn_id=f"t{i}",
                role="user",
                content=content,
                timestamp=workflow.now(),
                seq=i,
            )
            for i, content in enumerate(contents)
        ]
        assert SessionStatus.CLOSED.is_terminal
        return [f"{durable_sessions.__name__}:{t.seq}:{t.content}" for t in turns]

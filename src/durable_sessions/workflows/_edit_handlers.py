"""Handlers that rewrite the end of a session's transcript: edit and regenerate.

Both move the head (``HeadHandlers._cut_head``) under the operation lock, as the handlers of
``_head`` do; see ``session.py`` for the whole model.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from durable_sessions.workflows._head import HeadHandlers

with workflow.unsafe.imports_passed_through():
    from durable_sessions.activities.agents import AgentTurnRequest
    from durable_sessions.errors import AgentFailedError
    from durable_sessions.models import SessionState, SessionTurn
    from durable_sessions.workflows import _calls as calls
    from durable_sessions.workflows._errors import invalid, to_application_error
    from durable_sessions.workflows.messages import (
        EditRequest,
        RegenerateRequest,
        TurnInput,
    )

__all__ = ["EditHandlers"]


class EditHandlers(HeadHandlers):
    """Edit a turn (the head goes back to it), regenerate the last answer."""

    @workflow.update(name="edit")
    async def edit(self, request: EditRequest) -> SessionState:
        """Rewind the head to turn ``seq`` and add an edited copy of it there; the turns from
        ``seq`` on stay in the log under the previous generation."""
        self._count_message()
        async with self._operation():
            self._check_live()
            if request.seq >= self._state.turn_count:
                raise invalid(self._state.session_id, "seq is past the transcript", "seq")
            await self._flush()
            original = await self._turn_at(request.seq)
            if original is None:
                raise invalid(self._state.session_id, "no turn at seq", "seq")
            edited = TurnInput(
                turn_id=request.turn_id or workflow.uuid4().hex,
                role=original.role,
                content=request.content,
                agent=original.agent,
                metadata={**original.metadata, "edited_from": original.turn_id},
            )
            self._check_turn_rules(edited, extra=request.seq - self._state.turn_count)
            await self._cut_head(request.seq, f"edit:{request.seq}")
            self._apply_turn(edited)
            await self._flush()
        return self._state

    @edit.validator
    def _validate_edit(self, request: EditRequest) -> None:
        self._check_open()

    @workflow.update(name="regenerate")
    async def regenerate(self, request: RegenerateRequest) -> SessionTurn:
        """Drop the head's last turn if it is a ``request.role`` turn, ask the agent again and
        store its answer. The dropped turn stays in the log (previous generation)."""
        self._count_message()
        async with self._operation():
            self._check_live()
            await self._flush()
            dropped: SessionTurn | None = None
            if self._state.turn_count:
                last = await self._turn_at(self._state.turn_count - 1)
                if last is not None and last.role == request.role:
                    dropped = last
                    await self._cut_head(self._state.turn_count - 1, "regenerate")
            # The answer's id is fixed before the agent speaks: its streamed chunks carry it.
            answer_id = workflow.uuid4().hex
            ask = AgentTurnRequest(
                session_id=self._state.session_id,
                generation=self._state.generation,
                turn_count=self._state.turn_count,
                agent=request.agent,
                role=request.role,
                max_turns=request.max_turns,
                turn_id=answer_id,
            )
        # The agent may take long: turns and operations go on meanwhile (as in a group tick).
        try:
            reply = await calls.run_agent_turn(
                ask, timeout=request.timeout, max_attempts=request.max_attempts
            )
        except ActivityError as exc:
            cause = exc.cause
            kind = cause.type if isinstance(cause, ApplicationError) else type(cause).__name__
            raise to_application_error(
                AgentFailedError(
                    f"agent failed ({kind})", session_id=self._state.session_id, field="agent"
                )
            ) from None
        metadata = dict(reply.metadata)
        if dropped is not None:
            metadata["regenerated_from"] = dropped.turn_id
        answer = TurnInput(
            turn_id=answer_id,
            role=request.role,
            content=reply.content,
            agent=request.agent,
            metadata=metadata,
        )
        async with self._operation(internal=True):  # woken by the agent's answer
            self._check_live()
            self._check_turn_rules(answer)
            return self._apply_turn(answer)

    @regenerate.validator
    def _validate_regenerate(self, request: RegenerateRequest) -> None:
        self._check_open()
        if request.role not in ("assistant", "tool", "system", "user"):
            raise invalid(self._state.session_id, "role is not a turn role", "role")

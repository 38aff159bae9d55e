"""The session's watches: the idle TTL, the idle continue-as-new and the end of a cold visit.

Each is a lazy timer or a check the main loop makes; none does I/O. What they decide, the main
loop acts on (``session.py``): expiry under the operation lock, continue-as-new after draining.
"""

from __future__ import annotations

from temporalio import workflow

from durable_sessions.workflows.group import GroupHandlers

with workflow.unsafe.imports_passed_through():
    from durable_sessions.core.flushing import (
        COLD_VISIT_MIN_EVENTS,
        cold_visit_over,
        idle_continue_due,
    )

__all__ = ["Watches"]


class Watches(GroupHandlers):
    """Timers and checks on the session's quiet; the main loop acts on what they flag."""

    async def _ttl_watch(self) -> None:
        """Sleep until the idle deadline; turns move the deadline, so re-arm when woken early."""
        while not self._state.status.is_terminal:
            deadline = self._state.expires_at
            if deadline is None:
                return
            remaining = (deadline - workflow.now()).total_seconds()
            if remaining <= 0:
                self._expire_due = True
                # The main loop expires the session, or clears this if the deadline moved.
                await workflow.wait_condition(
                    lambda: not self._expire_due or self._state.status.is_terminal
                )
                continue
            await workflow.sleep(remaining, summary="idle ttl")

    async def _idle_watch(self, after: float) -> None:
        """Continue as new once the run has grown and the session has gone quiet, so a cache
        miss (a call after a deploy or an eviction) replays a minimal run. One lazy timer per
        quiet period; messages only move the time it looks at."""
        while not self._state.status.is_terminal:
            await workflow.wait_condition(
                lambda: workflow.info().get_current_history_length() >= self._idle_min_events
            )
            events = workflow.info().get_current_history_length()
            quiet = self._quiet()
            if idle_continue_due(events, quiet, after, self._busy(), self._idle_min_events):
                self._idle_due = True
                return
            await workflow.sleep(after - quiet if quiet < after else after, summary="idle")

    def _quiet(self) -> float:
        """Seconds since the latest message of this run (0 before the first)."""
        since = self._last_message
        return 0.0 if since is None else (workflow.now() - since).total_seconds()

    def _busy(self) -> bool:
        """Something is in progress: unflushed turns, an agent turn, an operation, a handler."""
        return (
            self._flusher.has_unflushed()
            or self._ticking
            or self._ticks_wanted()
            or self._op_lock.locked()
            or not workflow.all_handlers_finished()
        )

    def _cold_visit_over(self) -> bool:
        """A cold visit's turns are stored and it has gone quiet: continue as new in this task
        (runs of features 7; ``core.flushing.cold_visit_over``)."""
        if not self._cold_visits or self._state.status.is_terminal:
            return False
        return cold_visit_over(
            workflow.info().get_current_history_length(),
            self._quiet(),
            self._config.flush_interval,
            cold=self._cold_visit,
            busy=self._busy(),
            min_events=COLD_VISIT_MIN_EVENTS if self._came_back else self._idle_min_events,
        )

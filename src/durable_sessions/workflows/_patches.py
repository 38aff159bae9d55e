"""Every ``workflow.patched`` id of the ``Session`` workflow, and what each guards.

A change to workflow code that alters the commands a running session produces must sit behind a
new patch listed here, with its recorded history in ``tests/histories`` (``tests/replay``
replays them all). Never remove an entry while histories without it may still be running.
"""

from __future__ import annotations

__all__ = ["LOCAL_FLUSH", "PATCHES", "SERIALIZED_OPERATIONS", "SIGNALS_WHILE_DRAINING"]

LOCAL_FLUSH = "local-flush-in-flow"
"""Flushes run as local activities, in flow with a turn's workflow task, and never take turns
that arrived in the current task. Before it: every flush was an ordinary activity after a timer.
Checked once at the start of each run."""

SIGNALS_WHILE_DRAINING = "signals-accepted-while-draining"
"""``add_turn`` signals that arrive while a run drains before continue-as-new are accepted and
carried over. Before it: they were turned away (dropped). Checked when such a signal arrives."""

SERIALIZED_OPERATIONS = "serialized-operations"
"""Operations that move or read-then-write the head (restore, truncate, pop, edit, merge, branch,
regenerate, close, expiry, the drain before continue-as-new) hold the operation lock, and turns
wait for it. Before it: turns were applied while such an operation awaited an activity (the
restore race). Checked once at the start of each run."""

PATCHES = {
    LOCAL_FLUSH: "local flushes in flow",
    SIGNALS_WHILE_DRAINING: "signals carried over while draining",
    SERIALIZED_OPERATIONS: "head operations exclusive of turn acceptance",
}
"""Id → one line on what it guards (the constants' docstrings say more)."""

"""Every ``workflow.patched`` id of the ``Session`` workflow, and what each guards.

A change to workflow code that alters the commands a running session produces must sit behind a
new patch listed here, with its recorded history in ``tests/histories`` (``tests/replay``
replays them all). Never remove an entry while histories without it may still be running.
"""

from __future__ import annotations

__all__ = [
    "IDLE_CONTINUE",
    "LOCAL_FLUSH",
    "PATCHES",
    "RUN_FEATURES",
    "SERIALIZED_OPERATIONS",
    "SIGNALS_WHILE_DRAINING",
]

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

IDLE_CONTINUE = "idle-continue-as-new"
"""A run idle for ``idle_continue_after`` seconds whose history has grown continues as new into a
minimal run; runs start without patch markers or a status upsert. Not a ``workflow.patched``
id: only runs whose input says ``features >= RUN_FEATURES`` do it (see below)."""

RUN_FEATURES = 2
"""What ``SessionWorkflowInput.features`` says for runs started by this code (by a client, a
branch or a continue-as-new). A run with ``features >= RUN_FEATURES`` has every patch above on
without calling ``workflow.patched`` (no marker, no ``TemporalChangeVersion`` upsert: two history
events fewer per run, which a cold replay pays for) and does ``IDLE_CONTINUE``. Inputs recorded
before the field have ``features == 0`` and keep deciding by ``workflow.patched``. Deploy workers
before clients: a run whose input says 2 must not be started on a worker that predates it."""

PATCHES = {
    LOCAL_FLUSH: "local flushes in flow",
    SIGNALS_WHILE_DRAINING: "signals carried over while draining",
    SERIALIZED_OPERATIONS: "head operations exclusive of turn acceptance",
    IDLE_CONTINUE: "idle runs continue as new (by input features, not a marker)",
}
"""Id → one line on what it guards (the constants' docstrings say more)."""

"""Every ``workflow.patched`` id of the ``Session`` workflow, and what each guards.

A change to workflow code that alters the commands a running session produces must sit behind a
new patch listed here, with its recorded history in ``tests/histories`` (``tests/replay``
replays them all). Never remove an entry while histories without it may still be running.
"""

from __future__ import annotations

__all__ = [
    "ARRIVAL_ORDER",
    "ARRIVAL_ORDER_FEATURES",
    "CARRY_OVER",
    "COLD_VISITS",
    "FULL_RUN_IDLE",
    "IDLE_CONTINUE",
    "IDLE_CONTINUE_PAYS",
    "LOCAL_FLUSH",
    "MODERN_FEATURES",
    "NO_CHECKPOINT_PAST_HEAD",
    "PATCHES",
    "RETIRED_FEATURES",
    "RUN_FEATURES",
    "SERIALIZED_OPERATIONS",
    "SIGNALS_WHILE_DRAINING",
    "SMALL_IDLE_RUNS",
    "UPDATE_TURNS_WAIT",
    "UPDATE_TURNS_WAIT_FEATURES",
    "VISIT_ANSWERS",
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

SMALL_IDLE_RUNS = "small-idle-runs"
"""Runs of ``features >= 3`` continue an idle run as new from 18 history events instead of 40
(``core.flushing.idle_min_events``), so a session created and given a turn or two replays one
workflow task, not several, on a cold call. By input features, not a marker."""

MODERN_FEATURES = 2
"""A run with ``features >= MODERN_FEATURES`` has every patch above on without calling
``workflow.patched`` (no marker, no ``TemporalChangeVersion`` upsert: two history events fewer
per run, which a cold replay pays for) and does ``IDLE_CONTINUE``. Inputs recorded before the
field have ``features == 0`` and keep deciding by ``workflow.patched``."""

RETIRED_FEATURES = (4, 5, 7, 8)
"""Feature numbers given out once and never to be given another meaning: 4 flushed in flow
through an ordinary activity (backed out in ``ed1b353``: the nondeterminism that
``plugin.single_batch_activations`` now prevents), 5 stored a turn that came after a quiet
flush interval in its own workflow task (tried in session 6, not kept: it cost
``bench_turns`` its p99 for a CPU saving ``bench_scale`` could not tell from noise), 7 ended a
cold visit with a continue-as-new in its flush's task (session 12, backed out in ``0e9856b``:
bench/RESULTS.md, "Scale"), 8 stored a cold visit's turns (the first message of a new run, or
one after ``idle_continue_after`` of quiet, with nothing pending) in the task that brought them
(session 13, ``5fb4790``, backed out after a CI run's replay check failed on it; the same
failure then showed up on features 6, an SDK replay bug the operation lock's order exposes:
tests/faults/RESULTS.md, session 13. It may come back, under a new number, once that is fixed)."""

CARRY_OVER = "carry-over-at-continue-as-new"
"""Runs of ``features >= 6`` do not flush before a size continue-as-new: the turns and
checkpoints still pending (up to ``core.flushing.CARRIED_BYTES`` and
``MAX_CARRIED_CHECKPOINTS``) go to the next run in its input with the time they began to wait
(``pending_since``), so the update that fills a run answers in one workflow task with no local
activity in it, and the next run flushes them on their schedule. It carries them only if the
run was full before the current workflow task's messages (a due flush timer may reach the
workflow before or after them, live vs replay; both orders must flush alike: ``b09f93d``, found
by the model test in CI; runs of ``8420f80`` that filled up by message count may not replay on
later code, and none ran outside this repository's tests). Such runs also flush in flow
once their pending turns reach ``CARRIED_BYTES``, and otherwise from three quarters of the
flush interval on, not half (``core.flushing.in_flow_after``). An idle continue-as-new still
flushes first (its point is a minimal next run). By input features, not a marker."""

NO_CHECKPOINT_PAST_HEAD = "no-checkpoint-past-the-head"
"""A checkpoint of the current generation past the head is refused as not found, wherever a
run is asked to restore or branch from one: only a flush of a workflow task that then timed
out can have stored it (model run 15), and moving the head to it would fork past turns that
do not exist. A ``workflow.patched`` call made only when such a checkpoint turns up, so a marker
appears in those histories alone, and a history that moved its head there replays as it ran."""

ARRIVAL_ORDER = "operation-lock-in-arrival-order"
"""Runs of ``features >= 9`` order the operation lock so that a replay gives it out as the live
run did, whatever the SDK merges. The SDK's core merges, on replay, a workflow task that sent no
command with the task scheduled right after it (temporalio/sdk-rust#1606), and hands the later
task's signals and updates over before the earlier one's activity results and timers. Under
features 6 a ``branch`` read its branch names before it queued for the lock; when that read came
back in a task that sent no command (the lock was held) and a signal came in the next task, the
replay queued the signal's turn first and failed (tests/faults/RESULTS.md, session 13; pinned in
tests/replay/sdk_bugs). So:

* message handlers take the lock when the message arrives, before any await (``branch`` reads
  its names and ``merge`` its source under it): their order is the order of messages;
* work woken by an activity result or a timer (the main loop's expiry and drain, a group tick's
  turn, a regenerated answer) queues ahead of every message (``_lock.OperationLock``): their
  order among themselves is the order of those events, which a merge keeps;
* whoever had to wait for the lock expires the session first if the TTL watch has found the
  deadline reached (and nothing touched the session since), so expiry does not depend on
  whether the TTL timer's wake-up queued before a message;
* the TTL watch and the idle watch decide by counts, not by the clock: the deadline has come if
  nothing touched the session while the TTL timer ran, the run is idle if no message arrived
  while the idle timer ran. A message in a task the SDK merges with the next on replay reads
  the later task's time, which moved a clock comparison (model run 20: an idle continue-as-new
  that did not replay);
* a group tick stores its agent's turn in flow, so the task that applies it always sends a
  command (a turn applied in a task with none could swap places with a message's turn);
* in activations that apply every job before workflow code runs (single-batch, which the
  plugin turns on), a flush takes the current task's turns too and a size continue-as-new
  counts every message: the "current task" those rules read (its history length) is another
  one on a replay that merges tasks, and the timer/message order they guarded against cannot
  show in such an activation (``SessionBase._whole_task``).

By input features, not a marker. Runs of features 6 keep the old order (their histories replay
as they ran, including the rare one that cannot: the SDK bug)."""

ARRIVAL_ORDER_FEATURES = 9
"""The first input features with ``ARRIVAL_ORDER``."""

IDLE_CONTINUE_PAYS = "idle-continue-pays"
"""Runs of ``features >= 10`` continue an idle run as new from 40 history events again, not 18
(``core.flushing.IDLE_CONTINUE_PAYS_FEATURES``): below that, the continue-as-new cost the worker
a replay of the run and a new run's first task on each visit, more than it saved the next cold
call. By input features, not a marker."""

UPDATE_TURNS_WAIT = "update-turns-wait-for-their-task"
"""Runs of ``features >= 11`` leave out of a flush, and out of a size continue-as-new's count
"before this task", only what *updates* brought in the current workflow task; turns from
signals and from woken work go with the flush whatever task they came in (features 9 and 10
let a flush take every turn of the current task).

Why: a worker that has no live task for a run can be handed a query task (a read while the
session's task waits on the sticky queue of a worker that died), and temporalio 1.35's core
then hands the workflow the history's new events (a fired flush timer, a signal, an activity's
result) in an activation of their own, at the history length of the pending task, before that
task brings its updates (tests/faults/test_cold_update_replay.py, which failed 4 of 4 with
features 10 on a fast machine: the flush took one turn live, two on replay). Updates never
come with those events, and a replay hands them over together, so leaving the current task's
updates out gives both the same batch; and a task with an update always sends a command (the
update's answer), so a replay that merges a task without commands into the next
(temporalio/sdk-rust#1606, why features 9 counted the whole task) never moves an update's
turn to another task. By input features, not a marker."""

UPDATE_TURNS_WAIT_FEATURES = 11
"""The first input features with ``UPDATE_TURNS_WAIT``."""

COLD_VISITS = "cold-visits-stored-in-their-task"
"""Runs of features >= 12 store a cold visit's turns in the workflow task that brings them, by
a local activity the updates' answers wait for, instead of arming the flush timer: when
nothing was pending before the task, every pending turn is one that an update brought in it,
and no update came in the ``idle_continue_after`` (else 10 s) before it, or none yet in this
run (``core.flushing.cold_visit``). A cold call then adds one workflow task to the run, not
two (the turn's, then the flush timer's 2 s later, which also replays the run when the session
was evicted meanwhile), and a read of the store right after the answer sees the turns. Turns of
a busy session keep the batched flush.

Why this is replay-stable where features 8 (retired) was not: the decision reads what is
pending when the main loop wakes, not when a message arrives, and needs every pending turn to
be an update's of the current task: live and on replay such a task holds the same updates
(an update's task always sends a command, so the SDK never merges it into the next,
temporalio/sdk-rust#1606), and a task that brings a signal's turn, a timer's or an activity's
result along goes the old way whichever order the SDK hands them over in (the query-task
activation of ``UPDATE_TURNS_WAIT`` included). The quiet is measured between updates'
tasks only, whose times are the same live and on replay (a signal's task that sent no command
is not: it reads the next task's time on replay). By input features, not a marker
(``core.flushing.COLD_VISIT_FEATURES``)."""

VISIT_ANSWERS = "visit-answers-stored-in-their-task"
"""Runs of features >= 13 also store the update task that follows a cold visit's in its own
task (the visit's answer: the assistant's turn a few seconds after the user's), when nothing
was pending before it and every pending turn is an update's of that task; a visit's third
update task, or any task that finds a batch waiting, batches as before and ends the visit
(``core.flushing.visit_goes_on``, ``VISIT_TASKS``). A chat visit then adds two workflow tasks
to the run, not three (the turn's, the answer's, then the flush timer's 2 s later, which also
replays the run when the session was evicted meanwhile). Replay-stable on the same basis as
``COLD_VISITS``: the count of a visit's stored tasks moves only at the main loop's decisions,
which read what that basis reads. By input features, not a marker
(``core.flushing.VISIT_ANSWER_FEATURES``)."""

FULL_RUN_IDLE = "idle-continue-after-a-full-run"
"""Runs of features >= 14 that a size continue-as-new started (``continued_full`` in their
input, which runs of this code set) continue as new once idle from 16 history events, not 40
(``core.flushing.IDLE_CONTINUE_MIN_EVENTS_AFTER_FULL``): a session that took a burst of turns
and went quiet is otherwise left with whatever came after its last size continue-as-new, up to
~40 events, which a cold call replays (up to ~1.3x a fresh session's cold turn). The minimal
run an idle continue-as-new starts goes back to 40, so a size continue-as-new adds at most one.
Replay-stable on the idle watch's own basis (``ARRIVAL_ORDER``): only the floor moves. By input
features, not a marker (``core.flushing.FULL_RUN_IDLE_FEATURES``)."""

RUN_FEATURES = 14
"""What ``SessionWorkflowInput.features`` says for runs started by this code (by a client, a
branch or a continue-as-new): 2 is ``MODERN_FEATURES``, 3 adds ``SMALL_IDLE_RUNS``, 6 adds
``CARRY_OVER``, 9 adds ``ARRIVAL_ORDER``, 10 ``IDLE_CONTINUE_PAYS``, 11 ``UPDATE_TURNS_WAIT``,
12 ``COLD_VISITS``, 13 ``VISIT_ANSWERS``, 14 ``FULL_RUN_IDLE`` (4, 5, 7 and 8 are retired: the
next is 15). A run keeps the features it was started with for its whole life, so its replay
never changes. Deploy workers before clients: a worker that predates 3 runs a run of 3 as a run
of 2 (it continues idle runs later), which is safe; a run of 3 replayed by such a worker after
it idled into a continue-as-new between 18 and 40 events is not, a run of 6 replayed by a worker
that predates 6 after it continued as new for size is not either (that worker flushes first),
and a run of 9 that branched, merged, regenerated or ran a group tick is not replayed alike by a
worker that predates 9, and a run of 10 that idled between 18 and 40 events is not replayed
alike by a worker that predates 10 (it would have continued it as new), and a run of 11 whose
flush timer fired with an update in the same task is not replayed alike by a worker that
predates 11, and a run of 12 that stored a cold visit in its task is not replayed alike by a
worker that predates 12, and a run of 13 that stored a visit's answer in its task is not
replayed alike by a worker that predates 13, and a run of 14 that a size continue-as-new started
and that idled between 16 and 40 events is not replayed alike by a worker that predates 14 (it
would not have continued it as new), so do not roll workers back past this."""

PATCHES = {
    LOCAL_FLUSH: "local flushes in flow",
    SIGNALS_WHILE_DRAINING: "signals carried over while draining",
    SERIALIZED_OPERATIONS: "head operations exclusive of turn acceptance",
    IDLE_CONTINUE: "idle runs continue as new (by input features, not a marker)",
    SMALL_IDLE_RUNS: "idle runs continue as new from 18 events (input features 3)",
    CARRY_OVER: "a size continue-as-new carries pending turns over (input features 6)",
    NO_CHECKPOINT_PAST_HEAD: "a checkpoint past the head is not found (marker only then)",
    ARRIVAL_ORDER: "the operation lock in message order, woken work first (input features 9)",
    IDLE_CONTINUE_PAYS: "idle runs continue as new from 40 events again (input features 10)",
    UPDATE_TURNS_WAIT: "a flush leaves out only the current task's update turns (features 11)",
    COLD_VISITS: "a cold visit's turns are stored in their own task (input features 12)",
    VISIT_ANSWERS: "a visit's answer is stored in its own task too (input features 13)",
    FULL_RUN_IDLE: "a run after a size continue-as-new idles on from 16 events (features 14)",
}
"""Id → one line on what it guards (the constants' docstrings say more)."""

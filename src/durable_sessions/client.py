"""The client side: ``connect()`` and ``SessionManager``.

Writes go to the session's workflow (updates and signals); live reads are queries; persisted
reads (history, listings, checkpoints, sessions long closed) go to the store directly
(``_reads``). How one Temporal call is made (typed errors, retries while the session is busy,
the per-session limiter for bursts, cancellation that never hides a write's outcome) is in
``_calls``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from durable_sessions._calls import (
    MAX_IN_FLIGHT,
    WriteProgress,
    shared_limiter,
    shielded_write,
    split_batch,
    turn_bytes,
)
from durable_sessions._connect import connect
from durable_sessions._delete import delete_session
from durable_sessions._reads import SessionReads
from durable_sessions.core.clock import utcnow
from durable_sessions.core.tokens import count_tokens
from durable_sessions.encryption import encrypt_store
from durable_sessions.errors import (
    CheckpointNotFoundError,
    SessionBusyError,
    SessionCapacityError,
    SessionClosedError,
    SessionError,
    SessionNotFoundError,
)
from durable_sessions.models import (
    Checkpoint,
    SessionConfig,
    SessionState,
    SessionStatus,
    SessionTurn,
    new_id,
)
from durable_sessions.stores.base import PersistBatch, SessionStore
from durable_sessions.workflows._patches import RUN_FEATURES
from durable_sessions.workflows.messages import (
    DEFAULT_TASK_QUEUE,
    MAX_BATCH_BYTES,
    WORKFLOW_TYPE,
    PopResult,
    RestoreRequest,
    SessionWorkflowInput,
    TurnBatchReceipt,
    TurnReceipt,
)
from durable_sessions.workflows.session import SESSION_STATUS, SESSION_USER_ID

if TYPE_CHECKING:
    from durable_sessions.streaming import SessionEvent

__all__ = ["SessionManager", "connect"]

log = logging.getLogger("durable_sessions.client")

T = TypeVar("T")

WORKFLOW_TASK_TIMEOUT = timedelta(seconds=2)
"""Short workflow task timeout: after a worker crash, a new worker takes over in ~2 s, not 10."""


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


RESTORE_ATTEMPTS = 5
"""Restores of a closed session racing each other: the losers rewind the run the winner started."""


class SessionManager(SessionReads):
    """Create, talk to and manage durable sessions.

    Args:
        client: a Temporal client from ``durable_sessions.connect``.
        store: the store the workers persist to; persisted reads go to it directly.
        config: defaults for new sessions.
        task_queue: where the workers poll.
        call_timeout: seconds a call waits for a worker before ``WorkerUnavailableError``.
        max_in_flight: updates the managers of this client send to one session at once;
            more wait their turn in order. Temporal admits at most 10 in flight per session:
            processes that write to one session at once should split them (4 processes: 2
            each); past the server's limit calls are backed off and retried, more slowly.

    Cancellation and timeouts mean what they mean in asyncio: a cancelled caller gets
    ``CancelledError`` and ``asyncio.wait_for`` a ``TimeoutError``. A write (an update) that
    was sent is never reported as failed while its outcome is unknown: a cancelled caller
    first waits, at most ``call_timeout``, for the session's answer. ``WorkerUnavailableError``
    means that no worker answered within ``call_timeout``. Every call may be retried with the
    same turn ids.
    """

    def __init__(
        self,
        client: Client,
        store: SessionStore,
        config: SessionConfig | None = None,
        task_queue: str = DEFAULT_TASK_QUEUE,
        *,
        call_timeout: float = 10.0,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self.client = client
        # Encrypted exactly when the client encrypts, with the same per-session keys.
        self.store = encrypt_store(client, store)
        self.config = config or SessionConfig()
        self.task_queue = task_queue
        self.call_timeout = timedelta(seconds=call_timeout)
        self._limiter = shared_limiter(client, max_in_flight)
        self.loop: asyncio.AbstractEventLoop | None = _running_loop()
        """The loop the manager was created on (or None): its store's connections usually
        belong to it. Adapters called from other loops or threads run store reads there."""

    @classmethod
    async def connect(
        cls,
        target: str = "localhost:7233",
        *,
        namespace: str = "default",
        task_queue: str = DEFAULT_TASK_QUEUE,
        store: SessionStore,
        config: SessionConfig | None = None,
        call_timeout: float = 10.0,
        **connect_kwargs: Any,
    ) -> SessionManager:
        client = await connect(target, namespace=namespace, **connect_kwargs)
        await store.setup()
        return cls(client, store, config, task_queue, call_timeout=call_timeout)

    async def aclose(self) -> None:
        await self.store.close()

    async def __aenter__(self) -> SessionManager:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ lifecycle

    async def create(
        self,
        user_id: str,
        metadata: dict[str, Any] | None = None,
        *,
        session_id: str | None = None,
        ttl: float | None = None,
        config: SessionConfig | None = None,
    ) -> SessionState:
        """Start a session; returns once its workflow is started and its header is stored.

        The header is written to the store here, and the workflow is started without waiting
        for its first workflow task (the first turn's update runs it): about half the work of
        waiting for the run to store the header itself.
        """
        if not user_id:
            raise SessionError("user_id must not be empty", field="user_id")
        cfg = (config or self.config).model_copy()
        if ttl is not None:
            cfg = SessionConfig.model_validate({**cfg.model_dump(), "session_ttl": ttl})
        if cfg.max_sessions_per_user is not None:
            live = await self.store.count_live_sessions(user_id)
            if live >= cfg.max_sessions_per_user:
                raise SessionCapacityError(
                    f"user has {live} live sessions; the limit is {cfg.max_sessions_per_user}",
                    field="max_sessions_per_user",
                )
        now = utcnow()
        state = SessionState(
            session_id=session_id or new_id(),
            user_id=user_id,
            metadata=metadata or {},
            created_at=now,
            updated_at=now,
            expires_at=now + timedelta(seconds=cfg.session_ttl),
        )
        return await self._start(SessionWorkflowInput(state=state, config=cfg, header_stored=True))

    async def _start(
        self,
        input: SessionWorkflowInput,
        *,
        reuse: WorkflowIDReusePolicy = WorkflowIDReusePolicy.REJECT_DUPLICATE,
    ) -> SessionState:
        state = input.state
        # Runs of this version start with every workflow patch on (no markers in history).
        input = input.model_copy(update={"features": RUN_FEATURES})
        options: dict[str, Any] = {
            "id": state.session_id,
            "task_queue": self.task_queue,
            "id_conflict_policy": WorkflowIDConflictPolicy.FAIL,
            "id_reuse_policy": reuse,
            "task_timeout": WORKFLOW_TASK_TIMEOUT,
            "search_attributes": TypedSearchAttributes(
                [
                    SearchAttributePair(SESSION_USER_ID, state.user_id),
                    SearchAttributePair(SESSION_STATUS, SessionStatus.ACTIVE.value),
                ]
            ),
        }

        async def start(progress: WriteProgress) -> SessionState:
            async with progress.sending():
                if input.header_stored:
                    await self._translate(
                        state.session_id,
                        lambda: self.client.start_workflow(
                            WORKFLOW_TYPE, input, rpc_timeout=self.call_timeout, **options
                        ),
                    )
                    await self._store_header(state)
                    return state
                op: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
                    WORKFLOW_TYPE, input, **options
                )
                try:
                    return await self._translate(
                        state.session_id,
                        lambda: self.client.execute_update_with_start_workflow(
                            "ready",
                            start_workflow_operation=op,
                            result_type=SessionState,
                            rpc_timeout=self.call_timeout,
                        ),
                    )
                except WorkflowAlreadyStartedError:
                    # The operation's handle future holds the same error: read it, or asyncio
                    # logs "Future exception was never retrieved" when it is collected.
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(op.workflow_handle(), timeout=0.01)
                    raise

        try:
            return await shielded_write(start, settle_timeout=self.call_timeout.total_seconds())
        except WorkflowAlreadyStartedError:
            raise SessionError(
                "a session with this id already exists", session_id=state.session_id
            ) from None

    async def _store_header(self, state: SessionState) -> None:
        """The header of a session just started, written by the client. Should the store fail,
        the run is asked to write it (its flushes retry until the store is back).

        Fenced at 0, below every fence a workflow writes with (``SessionStore.persist``): when
        this write is slow enough that the run has flushed first, it must not put the header
        back to no turns."""
        try:
            await self.store.persist(PersistBatch(state=state, fence=0))
        except Exception:  # any store failure: the workflow's own flush is the fallback
            log.warning("storing the header failed; the session's run stores it", exc_info=True)
            await self._update(state.session_id, "annotate", {}, SessionState)

    @staticmethod
    def _prepare(turn: SessionTurn) -> SessionTurn:
        if turn.tokens is None:
            return turn.model_copy(update={"tokens": count_tokens(turn.content)})
        return turn

    @staticmethod
    def _stored(turn: SessionTurn, receipt: TurnReceipt) -> SessionTurn:
        return turn.model_copy(
            update={"turn_id": receipt.turn_id, "seq": receipt.seq, "timestamp": receipt.timestamp}
        )

    async def add_turn(self, session_id: str, turn: SessionTurn) -> SessionTurn:
        """Add a turn and wait for it to be stored; returns it with its ``seq``.

        Retrying with the same ``turn_id`` is safe: the original is returned, nothing is added.
        Cancelled while the update is in flight, the call waits for the session's answer (at
        most ``call_timeout``) and then raises ``CancelledError``: the turn may be stored.
        """
        prepared = self._prepare(turn)
        receipt = await self._update(session_id, "add_turn", prepared, TurnReceipt)
        return self._stored(prepared, receipt)

    async def add_turns(self, session_id: str, turns: Sequence[SessionTurn]) -> list[SessionTurn]:
        """Add turns in order, in one update (one round trip) per ``MAX_BATCH_TURNS`` turns or
        ``MAX_BATCH_BYTES`` of text; returns them stored, with their ``seq``.

        Each update is all-or-nothing. Turn ids are fixed before anything is sent, so retrying
        the call with the same turns is safe: turns already stored are answered, not added
        again. A batch split into several updates is sent one update after the other; once one
        is sent, a cancelled caller waits (at most ``call_timeout``) for the rest to be stored
        too, then gets ``CancelledError``.
        """
        prepared = [self._prepare(t) for t in turns]
        if not prepared:
            return []

        async def send(progress: WriteProgress) -> list[SessionTurn]:
            stored: list[SessionTurn] = []
            for batch in split_batch(prepared):
                if len(batch) == 1 and turn_bytes(batch[0]) > MAX_BATCH_BYTES:
                    # Too large for a batch: the single-turn update applies the turn size rule.
                    receipt = await self._send_update(
                        session_id, "add_turn", batch[0], TurnReceipt, progress
                    )
                    stored.append(self._stored(batch[0], receipt))
                    continue
                # The wire shape of ``TurnBatch``, serialized straight from the turns (the
                # workflow validates it as ``TurnBatch``; ``seq`` is ignored there).
                receipts = await self._send_update(
                    session_id, "add_turns", {"turns": batch}, TurnBatchReceipt, progress
                )
                stored.extend(
                    self._stored(t, r) for t, r in zip(batch, receipts.receipts, strict=True)
                )
            return stored

        return await shielded_write(send, settle_timeout=self.call_timeout.total_seconds())

    async def pop_turn(self, session_id: str) -> SessionTurn | None:
        """Take the transcript's last turn off (atomically, in the session's workflow) and
        return it; None when the transcript is empty. The turn stays in the session's log."""
        result = await self._update(session_id, "pop_turn", None, PopResult)
        return result.turn

    async def send_turn(self, session_id: str, turn: SessionTurn) -> None:
        """Fire-and-forget ``add_turn`` (a signal); same dedup by ``turn_id``."""
        await self._signal(session_id, "add_turn", self._prepare(turn))

    async def suspend(self, session_id: str) -> SessionState:
        return await self._update(session_id, "suspend", None, SessionState)

    async def resume(self, session_id: str) -> SessionState:
        return await self._update(session_id, "resume", None, SessionState)

    async def close(self, session_id: str) -> SessionState:
        """Close the session; a final checkpoint is written and everything is flushed."""
        return await self._update(session_id, "close", None, SessionState)

    async def checkpoint(self, session_id: str) -> Checkpoint:
        return await self._update(session_id, "checkpoint", None, Checkpoint)

    async def restore(self, checkpoint_id: str) -> SessionState:
        """Rewind a session to a checkpoint.

        A running session is rewound in place: turns after the checkpoint stay in the store's
        log but leave the transcript, and a ``restore`` checkpoint records the rewind. A closed
        or expired session is brought back as ACTIVE (a new run of its workflow) with the
        transcript as of the checkpoint.
        """
        cp = await self.store.get_checkpoint(checkpoint_id)
        if cp is None:
            raise CheckpointNotFoundError("no such checkpoint", field="checkpoint_id")
        request = RestoreRequest(checkpoint_id=checkpoint_id)
        for _ in range(RESTORE_ATTEMPTS):
            try:
                return await self._update(cp.session_id, "restore", request, SessionState)
            except SessionClosedError:
                pass
            header = await self.store.get_session(cp.session_id)
            if header is None:
                raise SessionNotFoundError("no such session", session_id=cp.session_id)
            try:
                return await self._start(
                    SessionWorkflowInput(
                        state=header,
                        config=self.config,
                        restore_checkpoint_id=checkpoint_id,
                        continued=True,
                    ),
                    reuse=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                )
            except SessionError as exc:
                if type(exc) is not SessionError:
                    raise
                # Another caller brought the session back first: rewind the run it started
                # (the next attempt's update), or, if that run has already ended again (a
                # close that raced both), start one of our own.
        raise SessionBusyError("the session kept changing; retry", session_id=cp.session_id)

    async def truncate(self, session_id: str, turn_count: int) -> SessionState:
        """Keep the first ``turn_count`` turns in the transcript; later ones stay in the log
        (like a restore to an unnamed checkpoint)."""
        return await self._update(session_id, "truncate", turn_count, SessionState)

    async def delete(self, session_id: str) -> None:
        """Terminate the session's workflow and remove everything of it from the store."""
        await delete_session(self, session_id)

    # ------------------------------------------------------------------ edit, regenerate, stream
    # (the logic lives in ``_editing`` and ``streaming``; these only delegate)

    async def edit(
        self,
        session_id: str,
        seq: int,
        new_content: str,
        *,
        mode: Literal["branch", "rewind"] = "branch",
        name: str | None = None,
    ) -> SessionState:
        """Edit turn ``seq``. ``mode="branch"``: a new branch forked before it, with the edited
        turn added (the session is untouched; returns the branch). ``mode="rewind"``: the
        session's head goes back to ``seq`` and the edited turn is added there (the old turns
        stay in the log under the previous generation; returns the session)."""
        from durable_sessions._editing import edit_turn

        return await edit_turn(self, session_id, seq, new_content, mode=mode, name=name)

    async def regenerate(
        self, session_id: str, *, agent: str, role: str = "assistant", timeout: float = 60.0
    ) -> SessionTurn:
        """Drop the session's last assistant turn and run ``agent`` (registered on the
        workers) again; returns the new stored turn. A streaming agent's chunks reach
        ``stream()`` subscribers while it writes."""
        from durable_sessions._editing import regenerate_turn

        return await regenerate_turn(self, session_id, agent, role, timeout=timeout)

    def stream(
        self, session_id: str, *, after_seq: int = -1, poll_interval: float = 0.25
    ) -> AsyncIterator[SessionEvent]:
        """The session's live events: stored turns, status changes, rewinds, new branches and
        the chunks of agent turns as they are written (``durable_sessions.streaming``)."""
        from durable_sessions.streaming._watch import watch

        return watch(self, session_id, after_seq=after_seq, poll_interval=poll_interval)

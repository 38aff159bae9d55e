"""The client side: ``connect()`` and ``SessionManager``.

Writes go to the session's workflow (updates and signals); live reads are queries; persisted
reads (history, listings, checkpoints, sessions long closed) go to the store directly. Temporal
failures are mapped to our typed errors in one place, ``_translate``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from durable_sessions.activities.context import ContextActivities, ContextResult
from durable_sessions.core.clock import utcnow
from durable_sessions.core.tokens import count_tokens
from durable_sessions.encryption import (
    EncryptionConfig,
    KeyStore,
    data_converter,
    destroy_session_key,
    encrypt_store,
)
from durable_sessions.errors import (
    CheckpointNotFoundError,
    SessionBusyError,
    SessionCapacityError,
    SessionClosedError,
    SessionError,
    SessionNotFoundError,
    WorkerUnavailableError,
    error_from_type,
)
from durable_sessions.models import (
    Checkpoint,
    SessionConfig,
    SessionState,
    SessionStatus,
    SessionTurn,
    new_id,
)
from durable_sessions.stores.base import SessionStore, read_transcript
from durable_sessions.workflows.messages import (
    DEFAULT_TASK_QUEUE,
    WORKFLOW_TYPE,
    ContextQuery,
    RestoreRequest,
    SessionSnapshot,
    SessionWorkflowInput,
    TurnReceipt,
)
from durable_sessions.workflows.session import SESSION_STATUS, SESSION_USER_ID

T = TypeVar("T")

WORKFLOW_TASK_TIMEOUT = timedelta(seconds=2)
"""Short workflow task timeout: after a worker crash, a new worker takes over in ~2 s, not 10."""


async def connect(
    target: str = "localhost:7233",
    *,
    namespace: str = "default",
    tls: TLSConfig | bool = False,
    api_key: str | None = None,
    encryption: EncryptionConfig | None = None,
    keystore: KeyStore | None = None,
    **kwargs: Any,
) -> Client:
    """A Temporal client with our data converter; ``SessionManager`` and workers take it.

    With ``encryption`` every payload is AES-256-GCM encrypted before it leaves the process
    (``durable_sessions.encryption``), failure messages included; workers built from the client
    and stores used with it encrypt too. With a ``keystore`` as well (shared by every client and
    worker), each session gets its own data key, and ``SessionManager.delete`` crypto-erases it.
    """
    if keystore is not None and encryption is None:
        raise ValueError("keystore= needs encryption=EncryptionConfig(...)")
    converter = pydantic_data_converter
    if encryption is not None:
        if keystore is not None:
            await keystore.setup()
        converter = data_converter(encryption, keystore)
    return await Client.connect(
        target,
        namespace=namespace,
        data_converter=converter,
        tls=tls if api_key is None else (tls or True),
        api_key=api_key,
        **kwargs,
    )


class SessionManager:
    """Create, talk to and manage durable sessions.

    Args:
        client: a Temporal client from ``durable_sessions.connect``.
        store: the store the workers persist to; persisted reads go to it directly.
        config: defaults for new sessions.
        task_queue: where the workers poll.
        call_timeout: seconds a call waits for a worker before ``WorkerUnavailableError``.
    """

    def __init__(
        self,
        client: Client,
        store: SessionStore,
        config: SessionConfig | None = None,
        task_queue: str = DEFAULT_TASK_QUEUE,
        *,
        call_timeout: float = 10.0,
    ) -> None:
        self.client = client
        # Encrypted exactly when the client encrypts, with the same per-session keys.
        self.store = encrypt_store(client, store)
        self.config = config or SessionConfig()
        self.task_queue = task_queue
        self.call_timeout = timedelta(seconds=call_timeout)

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

    # ------------------------------------------------------------------ error mapping

    async def _translate(self, session_id: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run a Temporal call; map its failures to our typed errors."""
        try:
            return await call()
        except WorkflowUpdateFailedError as exc:
            raise self._from_failure(session_id, exc.cause) from None
        except WorkflowQueryFailedError as exc:
            raise SessionError(f"query failed: {exc.message}", session_id=session_id) from None
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            raise self._unavailable(session_id) from None
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND and "aborted by closing" in exc.message:
                # The update reached the run's last workflow task (continue-as-new, or a close)
                # and was not applied: retried, it reaches the next run or reads as closed.
                raise SessionBusyError(
                    "the session's run was ending; retry in a moment", session_id=session_id
                ) from None
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise await self._missing(session_id, exc.message) from None
            if exc.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
                raise self._unavailable(session_id) from None
            if exc.status == RPCStatusCode.FAILED_PRECONDITION and "workflow task" in exc.message:
                # The server could not hand the update to the run (e.g. its last task before
                # continue-as-new failed or was aborted): nothing was applied; retry shortly.
                raise SessionBusyError(
                    "the session's run was not ready; retry in a moment", session_id=session_id
                ) from None
            raise

    def _from_failure(self, session_id: str, cause: BaseException | None) -> SessionError:
        while cause is not None:
            if isinstance(cause, ApplicationError):
                details = cause.details[0] if cause.details else None
                err = error_from_type(
                    cause.type, cause.message, details if isinstance(details, dict) else None
                )
                if err is not None:
                    return err
            cause = cause.__cause__
        return SessionError("the session rejected the call", session_id=session_id)

    def _unavailable(self, session_id: str) -> WorkerUnavailableError:
        return WorkerUnavailableError(
            f"no worker answered within {self.call_timeout.total_seconds():g} s on task queue "
            f"'{self.task_queue}'; start one with `durable-sessions worker` (or `durable-sessions "
            "dev`) and check the task queue and namespace match. If workers run, the call may "
            "wait on the session store (checkpoint, restore, branch, context): check the "
            "database; the call is not lost and completes when the store is back",
            session_id=session_id,
        )

    async def _missing(self, session_id: str, message: str) -> SessionError:
        # A call aimed at a run that has just continued as new reads "already completed": the
        # session's latest run is what counts, and Temporal answers that even while the store is
        # down.
        try:
            latest = await self.client.get_workflow_handle(session_id).describe(
                rpc_timeout=self.call_timeout
            )
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
        else:
            if latest.status == WorkflowExecutionStatus.RUNNING:
                return SessionBusyError(
                    "the session's run was ending; retry in a moment", session_id=session_id
                )
        # Every session's header is stored before ``create`` returns, so no header means no
        # session (never created, or deleted), whatever Temporal still remembers.
        header = await self.store.get_session(session_id)
        if header is None:
            return SessionNotFoundError("no such session", session_id=session_id)
        if "completed" in message or header.status.is_terminal:
            return SessionClosedError(
                f"session is {header.status.value}", session_id=session_id, field="status"
            )
        return SessionNotFoundError("no such session", session_id=session_id)

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
        """Start a session; returns once its workflow runs and its header is stored."""
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
        return await self._start(SessionWorkflowInput(state=state, config=cfg))

    async def _start(
        self,
        input: SessionWorkflowInput,
        *,
        reuse: WorkflowIDReusePolicy = WorkflowIDReusePolicy.REJECT_DUPLICATE,
    ) -> SessionState:
        state = input.state
        op: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            WORKFLOW_TYPE,
            input,
            id=state.session_id,
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=reuse,
            task_timeout=WORKFLOW_TASK_TIMEOUT,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(SESSION_USER_ID, state.user_id),
                    SearchAttributePair(SESSION_STATUS, SessionStatus.ACTIVE.value),
                ]
            ),
        )
        try:
            result: SessionState = await self._translate(
                state.session_id,
                lambda: self.client.execute_update_with_start_workflow(
                    "ready",
                    start_workflow_operation=op,
                    result_type=SessionState,
                    rpc_timeout=self.call_timeout,
                ),
            )
        except WorkflowAlreadyStartedError:
            raise SessionError(
                "a session with this id already exists", session_id=state.session_id
            ) from None
        return result

    async def _update(
        self, session_id: str, name: str, arg: Any = None, result_type: type[T] | None = None
    ) -> T:
        handle = self.client.get_workflow_handle(session_id)
        args = [] if arg is None else [arg]
        deadline = asyncio.get_running_loop().time() + self.call_timeout.total_seconds()
        delay = 0.02
        while True:
            try:
                result: T = await self._translate(
                    session_id,
                    lambda: handle.execute_update(
                        name, args=args, result_type=result_type, rpc_timeout=self.call_timeout
                    ),
                )
                return result
            except SessionBusyError:
                # The session is between two runs (continue-as-new): a moment's wait.
                if asyncio.get_running_loop().time() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)

    async def _signal(self, session_id: str, name: str, arg: Any = None) -> None:
        handle = self.client.get_workflow_handle(session_id)
        args = [] if arg is None else [arg]
        await self._translate(
            session_id, lambda: handle.signal(name, args=args, rpc_timeout=self.call_timeout)
        )

    async def _query(self, session_id: str, name: str, result_type: type[T]) -> T:
        handle = self.client.get_workflow_handle(session_id)
        result: T = await self._translate(
            session_id,
            lambda: handle.query(name, result_type=result_type, rpc_timeout=self.call_timeout),
        )
        return result

    @staticmethod
    def _prepare(turn: SessionTurn) -> SessionTurn:
        if turn.tokens is None:
            return turn.model_copy(update={"tokens": count_tokens(turn.content)})
        return turn

    async def add_turn(self, session_id: str, turn: SessionTurn) -> SessionTurn:
        """Add a turn and wait for it to be stored; returns it with its ``seq``.

        Retrying with the same ``turn_id`` is safe: the original is returned, nothing is added.
        """
        prepared = self._prepare(turn)
        receipt = await self._update(session_id, "add_turn", prepared, TurnReceipt)
        return prepared.model_copy(
            update={"turn_id": receipt.turn_id, "seq": receipt.seq, "timestamp": receipt.timestamp}
        )

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
        try:
            return await self._update(
                cp.session_id, "restore", RestoreRequest(checkpoint_id=checkpoint_id), SessionState
            )
        except SessionClosedError:
            pass
        header = await self.store.get_session(cp.session_id)
        if header is None:
            raise SessionNotFoundError("no such session", session_id=cp.session_id)
        config = self.config
        return await self._start(
            SessionWorkflowInput(
                state=header, config=config, restore_checkpoint_id=checkpoint_id, continued=True
            ),
            reuse=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )

    async def truncate(self, session_id: str, turn_count: int) -> SessionState:
        """Keep the first ``turn_count`` turns in the transcript; later ones stay in the log
        (like a restore to an unnamed checkpoint)."""
        return await self._update(session_id, "truncate", turn_count, SessionState)

    async def delete(self, session_id: str) -> None:
        """Terminate the session's workflow and remove everything of it from the store."""
        handle = self.client.get_workflow_handle(session_id)
        terminated = True
        try:
            await handle.terminate(reason="deleted", rpc_timeout=self.call_timeout)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            terminated = False
        # Crypto-erase before removing rows: the session's history (kept by Temporal until
        # retention ends) and any row a failed delete leaves behind are unreadable from here
        # on, and a retried delete finishes the job. A no-op without per-session keys.
        await destroy_session_key(self.client, session_id)
        deleted = await self.store.delete_session(session_id)
        if not (terminated or deleted):
            raise SessionNotFoundError("no such session", session_id=session_id)

    # ------------------------------------------------------------------ reads

    async def _live_snapshot(self, session_id: str) -> SessionSnapshot | None:
        """The workflow's snapshot if the session is running, else None (read the store)."""
        header = await self.store.get_session(session_id)
        if header is None:
            raise SessionNotFoundError("no such session", session_id=session_id)
        if header.status.is_terminal:
            return None
        try:
            return await self._query(session_id, "snapshot", SessionSnapshot)
        except (SessionClosedError, SessionNotFoundError):
            return None

    async def get(self, session_id: str) -> SessionState:
        """The session's header: live from its workflow, or from the store once it has ended."""
        snap = await self._live_snapshot(session_id)
        if snap is not None:
            return snap.state
        header = await self.store.get_session(session_id)
        if header is None:
            raise SessionNotFoundError("no such session", session_id=session_id)
        return header

    async def history(
        self, session_id: str, offset: int = 0, limit: int | None = None
    ) -> list[SessionTurn]:
        """The whole transcript in order (a page of it with offset/limit), flushed or not."""
        if offset < 0 or (limit is not None and limit < 0):
            raise SessionError("offset and limit must be >= 0", field="offset")
        snap = await self._live_snapshot(session_id)
        if snap is None:
            header = await self.store.get_session(session_id)
            if header is None:
                raise SessionNotFoundError("no such session", session_id=session_id)
            return await read_transcript(self.store, session_id, offset=offset, limit=limit)
        state = snap.state
        first_pending = snap.pending[0].seq if snap.pending else state.turn_count
        assert first_pending is not None
        end = state.turn_count if limit is None else min(state.turn_count, offset + limit)
        turns = await read_transcript(
            self.store,
            session_id,
            generation=state.generation,
            turn_count=first_pending,
            offset=offset,
            limit=None if limit is None else max(0, min(end, first_pending) - offset),
        )
        turns.extend(t for t in snap.pending if t.seq is not None and offset <= t.seq < end)
        return turns

    async def recent_turns(self, session_id: str) -> list[SessionTurn]:
        """The workflow's bounded window of latest turns (a query)."""
        return await self._query(session_id, "recent_turns", list[SessionTurn])

    async def list_sessions(
        self, user_id: str, status: SessionStatus | None = None
    ) -> list[SessionState]:
        """A user's sessions from the store (headers are at most one flush interval behind)."""
        return await self.store.list_sessions(user_id, status)

    async def context(
        self,
        session_id: str,
        query: str = "",
        max_turns: int | None = 20,
        max_tokens: int | None = None,
        *,
        pruner: str = "relevance",
    ) -> list[SessionTurn]:
        """The turns an agent should see for ``query``, in order, within the budgets.

        Computed by the ``compute_context`` activity on a worker (which caches the transcript
        and its relevance index); only the chosen turn numbers cross Temporal. A session that
        has ended is pruned here, from the store.
        """
        header = await self.store.get_session(session_id)
        if header is None:
            raise SessionNotFoundError("no such session", session_id=session_id)
        if not header.status.is_terminal:
            try:
                result = await self._update(
                    session_id,
                    "context",
                    ContextQuery(
                        query=query, max_turns=max_turns, max_tokens=max_tokens, pruner=pruner
                    ),
                    ContextResult,
                )
                return await self._turns_by_seq(
                    session_id, result.generation, result.turn_count, result.seqs
                )
            except SessionClosedError:
                header = await self.store.get_session(session_id) or header
        history = await read_transcript(self.store, session_id)
        local = ContextActivities(self.store).pruner(pruner)
        return await local.prune(history, query, max_turns=max_turns, max_tokens=max_tokens)

    async def _turns_by_seq(
        self, session_id: str, generation: int, turn_count: int, seqs: list[int]
    ) -> list[SessionTurn]:
        """Read the given turns, one store range per run of consecutive seqs."""
        out: list[SessionTurn] = []
        i = 0
        while i < len(seqs):
            j = i
            while j + 1 < len(seqs) and seqs[j + 1] == seqs[j] + 1:
                j += 1
            out.extend(
                await read_transcript(
                    self.store,
                    session_id,
                    generation=generation,
                    turn_count=turn_count,
                    offset=seqs[i],
                    limit=seqs[j] - seqs[i] + 1,
                )
            )
            i = j + 1
        return out

    async def list_checkpoints(self, session_id: str) -> list[Checkpoint]:
        return await self.store.list_checkpoints(session_id)

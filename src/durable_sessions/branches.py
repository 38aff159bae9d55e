"""Branches and merges, client side: ``BranchManager``.

A branch is a child ``Session`` workflow started by its parent's ``branch`` update, abandoned on
parent close so it outlives the parent. Its transcript is the parent's prefix up to the fork point
plus its own turns; the store keeps only its own turns and a pointer ``(parent, generation,
fork_seq)`` (copy-on-write). A merge runs inside the target's workflow (one writer): the client
only works out which part of the source to merge and, for a predicate, which ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from durable_sessions.client import SessionManager
from durable_sessions.core.merging import AppendMerge, MergeSpec, MergeStrategy, SelectiveMerge
from durable_sessions.errors import InvalidTurnError, SessionError, SessionNotFoundError
from durable_sessions.models import SessionState
from durable_sessions.stores.base import read_transcript
from durable_sessions.workflows.messages import BranchRequest, BranchResult, MergeRequest

__all__ = ["BranchManager", "BranchNode", "Lineage"]


@dataclass
class BranchNode:
    """A session and its branches, recursively."""

    state: SessionState
    children: list[BranchNode] = field(default_factory=list)

    def render(self, indent: str = "") -> list[str]:
        """The tree as text lines (``durable-sessions session branches``)."""
        s = self.state
        label = s.branch_name or "(root)"
        fork = f" @{s.fork_seq}" if s.fork_seq is not None else ""
        lines = [f"{indent}{label}{fork}  {s.session_id}  {s.status.value}  turns={s.turn_count}"]
        for i, child in enumerate(self.children):
            last = i == len(self.children) - 1
            lines.extend(child.render(indent + ("└─ " if last else "├─ ")))
        return [line.replace("└─ ├─", "   ├─").replace("├─ ├─", "│  ├─") for line in lines]


@dataclass
class Lineage:
    """Where a session sits: its ancestors (root first) and the tree of its descendants."""

    ancestors: list[SessionState]
    tree: BranchNode


class BranchManager:
    """Create, list and merge branches of sessions."""

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager
        self.store = manager.store

    async def _header(self, session_id: str) -> SessionState:
        header = await self.store.get_session(session_id)
        if header is None:
            raise SessionNotFoundError("no such session", session_id=session_id)
        return header

    async def create_branch(
        self,
        session_id: str,
        name: str,
        from_checkpoint: str | None = None,
        *,
        at_seq: int | None = None,
    ) -> SessionState:
        """Fork a branch of ``session_id`` from now, from one of its checkpoints, or after its
        first ``at_seq`` turns (any turn: the branch shares turns ``0 .. at_seq - 1``).

        Raises:
            BranchExistsError: the session already has a branch called ``name``.
            CheckpointNotFoundError: ``from_checkpoint`` is not a checkpoint of this session.
            InvalidTurnError: ``at_seq`` is past the end of the transcript, or given together
                with ``from_checkpoint``.
        """
        if at_seq is not None and (at_seq < 0 or from_checkpoint is not None):
            raise InvalidTurnError(
                "at_seq must be >= 0 and not given with from_checkpoint",
                session_id=session_id,
                field="at_seq",
            )
        result = await self.manager._update(
            session_id,
            "branch",
            BranchRequest(name=name, from_checkpoint_id=from_checkpoint, at_seq=at_seq),
            BranchResult,
        )
        return await self.manager._update(result.session_id, "ready", None, SessionState)

    async def list_branches(self, session_id: str) -> list[SessionState]:
        """Direct branches of a session, oldest first."""
        await self._header(session_id)
        return await self.store.list_branches(session_id)

    async def lineage(self, session_id: str) -> Lineage:
        header = await self._header(session_id)
        ancestors: list[SessionState] = []
        parent_id = header.parent_session_id
        while parent_id is not None:
            parent = await self.store.get_session(parent_id)
            if parent is None:
                break
            ancestors.append(parent)
            parent_id = parent.parent_session_id
        ancestors.reverse()
        return Lineage(ancestors=ancestors, tree=await self._tree(header))

    async def _tree(self, state: SessionState) -> BranchNode:
        children = [await self._tree(c) for c in await self.store.list_branches(state.session_id)]
        return BranchNode(state, children)

    async def _current(self, session_id: str) -> SessionState:
        """The header with everything flushed: a running session flushes first."""
        header = await self._header(session_id)
        if await self.manager._ended(header):
            return header
        try:
            return await self.manager._update(session_id, "flush", None, SessionState)
        except SessionError:
            return await self._header(session_id)

    async def _merge_range(self, source: SessionState, target_id: str) -> tuple[int, int]:
        """The part of the source's transcript that is not shared with the target."""
        lo = source.fork_seq or 0 if source.parent_session_id else 0
        node = source
        while node.parent_session_id is not None:  # is the target an ancestor of the source?
            if node.parent_session_id == target_id:
                lo = node.fork_seq or 0
                break
            parent = await self.store.get_session(node.parent_session_id)
            if parent is None:
                break
            node = parent
        return lo, source.turn_count

    async def merge(
        self,
        source_session_id: str,
        target_session_id: str,
        strategy: MergeStrategy | None = None,
    ) -> SessionState:
        """Merge the source's own turns into the target; returns the target's state.

        Idempotent: merging the same turns again adds nothing. Recorded in both sessions'
        metadata (``merges`` on the target, ``merged_into`` on the source).
        """
        strategy = strategy or AppendMerge()
        await self._header(target_session_id)
        source = await self._current(source_session_id)
        lo, hi = await self._merge_range(source, target_session_id)
        if isinstance(strategy, AppendMerge) or (
            isinstance(strategy, SelectiveMerge) and strategy.turn_ids is not None
        ):
            spec = strategy.to_spec()  # ids are checked by the target's workflow
        else:  # client code (a predicate) chooses here; only the chosen ids travel
            turns = await read_transcript(
                self.store,
                source.session_id,
                generation=source.generation,
                turn_count=hi,
                offset=lo,
            )
            spec = strategy.resolve(turns)
        state = await self._send_merge(source, target_session_id, lo, hi, spec)
        await self._record_on_source(source, target_session_id, spec)
        return state

    async def _send_merge(
        self, source: SessionState, target_id: str, lo: int, hi: int, spec: MergeSpec
    ) -> SessionState:
        request = MergeRequest(
            source_session_id=source.session_id,
            source_generation=source.generation,
            lo=lo,
            hi=hi,
            spec=spec,
        )
        return await self.manager._update(target_id, "merge", request, SessionState)

    async def _record_on_source(
        self, source: SessionState, target_id: str, spec: MergeSpec
    ) -> None:
        entry = {"target_session_id": target_id, "strategy": spec.strategy}
        merged_into = [*source.metadata.get("merged_into", []), entry]
        if not await self.manager._ended(source):
            try:
                await self.manager._update(
                    source.session_id, "annotate", {"merged_into": merged_into}, SessionState
                )
                return
            except SessionError:
                pass
        # The source has ended: its workflow no longer writes, so the store is updated directly.
        header = await self._header(source.session_id)
        header.metadata = {**header.metadata, "merged_into": merged_into}
        await self.store.upsert_session(header)

"""Branches as child workflows, copy-on-write, and merges (real dev server, PostgreSQL)."""

from __future__ import annotations

import pytest

from durable_sessions.branches import BranchManager
from durable_sessions.core.merging import MERGED_FROM_KEY, AppendMerge, SelectiveMerge
from durable_sessions.errors import BranchExistsError, CheckpointNotFoundError, InvalidTurnError
from durable_sessions.models import SessionStatus, SessionTurn
from tests.helpers import assert_eventually
from tests.integration.conftest import Stack


def turn(text: str, role: str = "user") -> SessionTurn:
    return SessionTurn(role=role, content=text)  # type: ignore[arg-type]


async def contents(stack: Stack, session_id: str) -> list[str]:
    return [t.content for t in await stack.manager.history(session_id)]


async def test_branch_from_now_and_from_checkpoint(stack: Stack) -> None:
    m, b = stack.manager, BranchManager(stack.manager)
    root = await m.create("brancher", {"topic": "plans"})
    for i in range(4):
        await m.add_turn(root.session_id, turn(f"root {i}"))
    cp = await m.checkpoint(root.session_id)
    await m.add_turn(root.session_id, turn("root 4"))

    now = await b.create_branch(root.session_id, name="from-now")
    assert now.parent_session_id == root.session_id
    assert now.fork_seq == 5
    assert now.branch_name == "from-now"
    assert now.status is SessionStatus.ACTIVE
    stored = await m.add_turn(now.session_id, turn("branch turn"))
    assert stored.seq == 5
    assert await contents(stack, now.session_id) == [
        *(f"root {i}" for i in range(5)),
        "branch turn",
    ]

    early = await b.create_branch(root.session_id, name="from-cp", from_checkpoint=cp.checkpoint_id)
    assert early.fork_seq == 4
    await m.add_turn(early.session_id, turn("alternative"))
    assert await contents(stack, early.session_id) == [
        *(f"root {i}" for i in range(4)),
        "alternative",
    ]
    # The parent is untouched.
    assert await contents(stack, root.session_id) == [f"root {i}" for i in range(5)]

    names = [x.branch_name for x in await b.list_branches(root.session_id)]
    assert names == ["from-now", "from-cp"]

    with pytest.raises(BranchExistsError):
        await b.create_branch(root.session_id, name="from-now")
    with pytest.raises(CheckpointNotFoundError):
        await b.create_branch(root.session_id, name="bad-cp", from_checkpoint="nope")

    # Copy-on-write: a branch stores only its own turns.
    async def own_turns_only() -> None:
        own = await stack.store.get_own_turns(now.session_id, 0, 0, 100)
        assert [t.content for t in own] == ["branch turn"]

    await assert_eventually(own_turns_only)


async def test_branch_of_branch_depth_three(stack: Stack) -> None:
    m, b = stack.manager, BranchManager(stack.manager)
    root = await m.create("deep")
    await m.add_turn(root.session_id, turn("r0"))
    await m.add_turn(root.session_id, turn("r1"))
    b1 = await b.create_branch(root.session_id, name="b1")
    await m.add_turn(b1.session_id, turn("b1-0"))
    b2 = await b.create_branch(b1.session_id, name="b2")
    await m.add_turn(b2.session_id, turn("b2-0"))
    await m.add_turn(b2.session_id, turn("b2-1"))
    b3 = await b.create_branch(b2.session_id, name="b3")
    await m.add_turn(b3.session_id, turn("b3-0"))
    # Later turns on the ancestors must not leak into the branch.
    await m.add_turn(root.session_id, turn("r2 later"))
    await m.add_turn(b1.session_id, turn("b1 later"))

    history = await m.history(b3.session_id)
    assert [t.content for t in history] == ["r0", "r1", "b1-0", "b2-0", "b2-1", "b3-0"]
    assert [t.seq for t in history] == list(range(6))
    page = await m.history(b3.session_id, offset=2, limit=3)
    assert [t.content for t in page] == ["b1-0", "b2-0", "b2-1"]

    lineage = await b.lineage(b3.session_id)
    assert [a.session_id for a in lineage.ancestors] == [
        root.session_id,
        b1.session_id,
        b2.session_id,
    ]
    tree = (await b.lineage(root.session_id)).tree
    assert tree.children[0].state.session_id == b1.session_id
    assert tree.children[0].children[0].children[0].state.session_id == b3.session_id
    text = "\n".join(tree.render())
    assert "b3" in text


async def test_append_merge_is_idempotent_and_recorded(stack: Stack) -> None:
    m, b = stack.manager, BranchManager(stack.manager)
    root = await m.create("merger")
    await m.add_turn(root.session_id, turn("shared"))
    branch = await b.create_branch(root.session_id, name="idea")
    await m.add_turn(branch.session_id, turn("idea 1"))
    await m.add_turn(branch.session_id, turn("idea 2", "assistant"))
    await m.add_turn(root.session_id, turn("root moved on"))

    merged = await b.merge(branch.session_id, root.session_id, AppendMerge())
    assert merged.turn_count == 4
    history = await m.history(root.session_id)
    assert [t.content for t in history] == ["shared", "root moved on", "idea 1", "idea 2"]
    assert history[2].metadata[MERGED_FROM_KEY]["session_id"] == branch.session_id
    assert history[3].role == "assistant"

    again = await b.merge(branch.session_id, root.session_id, AppendMerge())
    assert again.turn_count == 4  # nothing added the second time
    assert [x["added"] for x in again.metadata["merges"]] == [2, 0]
    source = await m.get(branch.session_id)
    assert source.metadata["merged_into"][0]["target_session_id"] == root.session_id


async def test_selective_merge_by_ids_and_predicate(stack: Stack) -> None:
    m, b = stack.manager, BranchManager(stack.manager)
    root = await m.create("selective")
    await m.add_turn(root.session_id, turn("base"))
    branch = await b.create_branch(root.session_id, name="pick")
    t1 = await m.add_turn(branch.session_id, turn("keep me"))
    await m.add_turn(branch.session_id, turn("drop me"))
    await m.add_turn(branch.session_id, turn("keep me too", "assistant"))

    await b.merge(branch.session_id, root.session_id, SelectiveMerge(turn_ids=[t1.turn_id]))
    assert await contents(stack, root.session_id) == ["base", "keep me"]
    await b.merge(
        branch.session_id,
        root.session_id,
        SelectiveMerge(predicate=lambda t: t.content.startswith("keep")),
    )
    assert await contents(stack, root.session_id) == ["base", "keep me", "keep me too"]
    with pytest.raises(InvalidTurnError):
        await b.merge(branch.session_id, root.session_id, SelectiveMerge(turn_ids=["unknown"]))


async def test_branch_outlives_closed_parent_and_merges_into_restored_parent(
    stack: Stack,
) -> None:
    m, b = stack.manager, BranchManager(stack.manager)
    root = await m.create("outlive")
    await m.add_turn(root.session_id, turn("p0"))
    cp = await m.checkpoint(root.session_id)
    branch = await b.create_branch(root.session_id, name="survivor")
    await m.close(root.session_id)
    await stack.client.get_workflow_handle(root.session_id).result()

    # The branch keeps working after its parent closed.
    await m.add_turn(branch.session_id, turn("branch after parent closed"))
    assert (await m.get(branch.session_id)).status is SessionStatus.ACTIVE

    restored = await m.restore(cp.checkpoint_id)
    assert restored.status is SessionStatus.ACTIVE
    merged = await b.merge(branch.session_id, root.session_id)
    assert merged.turn_count == 2
    assert await contents(stack, root.session_id) == ["p0", "branch after parent closed"]

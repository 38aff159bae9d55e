"""Branches, merges and pruned context over HTTP (``BranchManager`` and ``manager.context``)."""

from __future__ import annotations

from tests.http.conftest import Api


async def test_branch_list_and_append_merge(api: Api) -> None:
    sid = await api.create()
    await api.add(sid, "question")
    await api.add(sid, "answer", role="assistant")

    r = await api.alice.post(f"/sessions/{sid}/branches", json={"name": "alt"})
    assert r.status_code == 201, r.text
    branch = r.json()
    bid = branch["session_id"]
    assert branch["parent_session_id"] == sid
    assert branch["branch_name"] == "alt"
    assert branch["user_id"] == "alice"

    r = await api.alice.post(f"/sessions/{sid}/branches", json={"name": "alt"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "branch_exists"

    listed = (await api.alice.get(f"/sessions/{sid}/branches")).json()
    assert [b["session_id"] for b in listed] == [bid]

    # The branch is a session of alice's like any other.
    turns = (await api.alice.get(f"/sessions/{bid}/turns")).json()
    assert [t["content"] for t in turns] == ["question", "answer"]
    r = await api.alice.post(
        f"/sessions/{bid}/turns", json={"role": "user", "content": "on the branch"}
    )
    assert r.status_code == 201, r.text

    r = await api.alice.post(f"/sessions/{sid}/merge", json={"source_session_id": bid})
    assert r.status_code == 200, r.text
    assert r.json()["session_id"] == sid
    turns = (await api.alice.get(f"/sessions/{sid}/turns")).json()
    assert [t["content"] for t in turns] == ["question", "answer", "on the branch"]
    # Merging again adds nothing.
    r = await api.alice.post(
        f"/sessions/{sid}/merge", json={"source_session_id": bid, "strategy": "append"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["turn_count"] == 3


async def test_branch_from_checkpoint_and_selective_merge(api: Api) -> None:
    sid = await api.create()
    await api.add(sid, "one")
    cp = (await api.alice.post(f"/sessions/{sid}/checkpoints")).json()
    await api.add(sid, "two")

    r = await api.alice.post(
        f"/sessions/{sid}/branches", json={"name": "early", "from_checkpoint": cp["checkpoint_id"]}
    )
    assert r.status_code == 201, r.text
    bid = r.json()["session_id"]
    assert [t["content"] for t in (await api.alice.get(f"/sessions/{bid}/turns")).json()] == ["one"]
    keep = (
        await api.alice.post(f"/sessions/{bid}/turns", json={"role": "user", "content": "keep"})
    ).json()
    await api.alice.post(f"/sessions/{bid}/turns", json={"role": "user", "content": "drop"})

    r = await api.alice.post(
        f"/sessions/{sid}/merge",
        json={"source_session_id": bid, "strategy": "selective", "turn_ids": [keep["turn_id"]]},
    )
    assert r.status_code == 200, r.text
    turns = (await api.alice.get(f"/sessions/{sid}/turns")).json()
    assert [t["content"] for t in turns] == ["one", "two", "keep"]

    # Unknown turn ids, an unknown checkpoint, a checkpoint of another session.
    r = await api.alice.post(
        f"/sessions/{sid}/merge",
        json={"source_session_id": bid, "strategy": "selective", "turn_ids": ["no-such-turn"]},
    )
    assert r.status_code == 422, r.text
    r = await api.alice.post(
        f"/sessions/{sid}/branches", json={"name": "x", "from_checkpoint": "nope"}
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "checkpoint_not_found"
    other = await api.create()
    r = await api.alice.post(
        f"/sessions/{other}/branches", json={"name": "x", "from_checkpoint": cp["checkpoint_id"]}
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "checkpoint_not_found"


async def test_context(api: Api) -> None:
    sid = await api.create()
    await api.add(sid, "You are a billing assistant.", role="system")
    for i in range(6):
        await api.add(sid, f"message number {i} about the weather")
    await api.add(sid, "my invoice is wrong, please refund")

    r = await api.alice.post(
        f"/sessions/{sid}/context", json={"query": "invoice refund", "max_turns": 3}
    )
    assert r.status_code == 200, r.text
    turns = r.json()
    assert len(turns) <= 3
    assert turns[0]["role"] == "system"
    assert "my invoice is wrong, please refund" in [t["content"] for t in turns]
    seqs = [t["seq"] for t in turns]
    assert seqs == sorted(seqs)

    r = await api.alice.post(
        f"/sessions/{sid}/context", json={"query": "", "pruner": "sliding_window", "max_turns": 2}
    )
    assert r.status_code == 200, r.text
    assert r.json()[0]["role"] == "system"

    # A closed session is pruned from the store.
    await api.alice.post(f"/sessions/{sid}/close")
    r = await api.alice.post(f"/sessions/{sid}/context", json={"query": "invoice"})
    assert r.status_code == 200, r.text
    assert r.json()

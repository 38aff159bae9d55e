"""HTTP details an outside schemathesis run found: one code and a documented status for a body
that is not JSON, the merge body rule in the schema, and no error log after a branch is
deleted."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from tests.http.conftest import Api


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"role": "user", "content": "\xff\xfe"}', id="not-utf8"),
        pytest.param(b'{"role": "user", "content": "trunc', id="truncated"),
        pytest.param(b"hello", id="not-json"),
    ],
)
async def test_a_body_that_is_not_json_is_400_invalid_json(api: Api, body: bytes) -> None:
    sid = await api.create()
    r = await api.alice.post(
        f"/sessions/{sid}/turns", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_json"
    for path, ops in api.app.openapi()["paths"].items():
        for method, op in ops.items():
            if "requestBody" in op:
                assert "400" in op["responses"], (method, path)


async def test_merge_body_rule_is_in_the_schema(api: Api) -> None:
    spec = api.app.openapi()
    body = spec["paths"]["/sessions/{session_id}/merge"]["post"]["requestBody"]
    refs = [
        s["$ref"].rsplit("/", 1)[1] for s in body["content"]["application/json"]["schema"]["oneOf"]
    ]
    assert sorted(refs) == ["AppendMergeRequest", "SelectiveMergeRequest"]
    schemas = spec["components"]["schemas"]
    append, selective = schemas["AppendMergeRequest"], schemas["SelectiveMergeRequest"]
    assert "turn_ids" not in append["properties"] and append["additionalProperties"] is False
    assert append["properties"]["strategy"]["const"] == "append"
    assert {"strategy", "turn_ids"} <= set(selective["required"])
    assert selective["properties"]["strategy"]["const"] == "selective"


async def test_deleting_a_branch_logs_no_unretrieved_child_error(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    sid = await api.create()
    await api.add(sid, "hello")
    r = await api.alice.post(f"/sessions/{sid}/branches", json={"name": "b"})
    assert r.status_code == 201, r.text
    branch = r.json()["session_id"]
    caplog.set_level(logging.ERROR)
    assert (await api.alice.delete(f"/sessions/{branch}")).status_code == 204
    # The parent learns of its child's end in its next workflow task; a turn makes one.
    await api.add(sid, "after the delete")
    for _ in range(10):
        gc.collect()
        await asyncio.sleep(0.1)
    noise = [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]
    assert not noise, noise

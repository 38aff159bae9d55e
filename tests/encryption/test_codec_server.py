"""(d) The codec server: the Temporal UI protocol, bearer auth, CORS, erased sessions."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import WorkflowSerializationContext

from durable_sessions.encryption import (
    EncryptionCodec,
    EncryptionConfig,
    Keyring,
    PostgresKeyStore,
    codec_app,
)

TOKEN = "s3cret-token"
UI = "http://localhost:8233"


def _json(payloads: list[Payload]) -> dict[str, object]:
    return json_format.MessageToDict(Payloads(payloads=payloads))


def _from_json(body: dict[str, object]) -> list[Payload]:
    return list(json_format.ParseDict(body, Payloads()).payloads)


def _text(value: str) -> Payload:
    return pydantic_data_converter.payload_converter.to_payloads([value])[0]


@pytest.fixture
async def http(
    config: EncryptionConfig, pg_keystore: PostgresKeyStore
) -> AsyncIterator[httpx.AsyncClient]:
    app = codec_app(config, pg_keystore, TOKEN, namespaces=["default"])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://codec"
    ) as client:
        yield client


def _headers(token: str | None = TOKEN, namespace: str = "default") -> dict[str, str]:
    headers = {"X-Namespace": namespace, "Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


async def test_encode_decode_round_trip(http: httpx.AsyncClient) -> None:
    originals = [_text("hello from the UI"), _text("second")]
    encoded = await http.post("/encode", json=_json(originals), headers=_headers())
    assert encoded.status_code == 200
    sealed = _from_json(encoded.json())
    assert [p.metadata["encoding"] for p in sealed] == [b"binary/encrypted"] * 2
    assert b"hello from the UI" not in base64.b64decode(encoded.json()["payloads"][0]["data"])
    decoded = await http.post("/decode", json=encoded.json(), headers=_headers())
    assert decoded.status_code == 200
    assert _from_json(decoded.json()) == originals


async def test_decodes_session_payloads_written_by_workers(
    http: httpx.AsyncClient, config: EncryptionConfig, pg_keystore: PostgresKeyStore
) -> None:
    ring = Keyring(config, pg_keystore)
    worker_codec = EncryptionCodec(ring).with_context(
        WorkflowSerializationContext(namespace="default", workflow_id="sess-ui")
    )
    [kept] = await worker_codec.encode([_text("visible in the UI")])
    other = EncryptionCodec(ring).with_context(
        WorkflowSerializationContext(namespace="default", workflow_id="sess-erased")
    )
    [erased] = await other.encode([_text("erased")])
    await ring.destroy("sess-erased")
    plain = _text("plaintext from before encryption")

    resp = await http.post("/decode", json=_json([kept, erased, plain]), headers=_headers())
    assert resp.status_code == 200
    # Erased payloads come back still sealed; the rest of the batch decodes.
    assert _from_json(resp.json()) == [_text("visible in the UI"), erased, plain]


async def test_requires_the_bearer_token(http: httpx.AsyncClient) -> None:
    body = _json([_text("x")])
    for headers in (_headers(token=None), _headers(token="wrong")):
        for path in ("/encode", "/decode"):
            resp = await http.post(path, json=body, headers=headers)
            assert resp.status_code == 401
            assert resp.headers["www-authenticate"] == "Bearer"
    resp = await http.post("/decode", json=body, headers=_headers(namespace="other"))
    assert resp.status_code == 403
    resp = await http.post("/decode", content=b"not json", headers=_headers())
    assert resp.status_code == 400


async def test_cors_preflight_from_the_ui(http: httpx.AsyncClient) -> None:
    resp = await http.options(
        "/decode",
        headers={
            "Origin": UI,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
        },
    )
    assert resp.status_code == 200
    assert resp.headers["access-control-allow-origin"] == UI
    assert resp.headers["access-control-allow-credentials"] == "true"
    resp = await http.post(
        "/decode", json=_json([]), headers={**_headers(), "Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in resp.headers


def test_refuses_an_empty_token(config: EncryptionConfig) -> None:
    with pytest.raises(ValueError, match="api_token"):
        codec_app(config, None, "")

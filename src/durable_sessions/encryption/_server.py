"""A codec server for the Temporal UI and CLI: ``POST /encode`` and ``POST /decode``.

Why it looks the way it does:

* **The Temporal codec server protocol.** The UI (and ``temporal workflow show --codec-endpoint``)
  posts ``{"payloads": [...]}`` in protobuf JSON (metadata values and data base64) with an
  ``X-Namespace`` header, and shows whatever comes back. The browser calls the server directly,
  so CORS must admit the UI's origin, preflights included (they carry no credentials).
* **Bearer token, compared in constant time.** Anyone who can call ``/decode`` reads every
  conversation, so the server refuses calls without the token (401) and, when ``namespaces``
  is given, calls for other namespaces (403).
* **Erased stays erased.** A payload whose session key was destroyed, or whose key this server
  does not hold, comes back unchanged (still encrypted) rather than failing the whole batch:
  the UI then shows the other payloads of the page and the ciphertext of this one.
* **No session context.** ``/decode`` needs none (payloads name their key); ``/encode`` (a UI
  user sending a signal) uses the active master key, which every decoder also accepts.

Only this module imports FastAPI (``durable_sessions.encryption`` loads it on first use of
``codec_app``), so the rest of the package does not need it installed.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from durable_sessions.encryption._codec import EncryptionCodec
from durable_sessions.encryption._config import EncryptionConfig
from durable_sessions.encryption._errors import EncryptionError
from durable_sessions.encryption._keyring import Keyring
from durable_sessions.encryption._keystore import KeyStore

__all__ = ["DEFAULT_UI_ORIGINS", "codec_app"]

log = logging.getLogger("durable_sessions.encryption.codec_server")

DEFAULT_UI_ORIGINS: tuple[str, ...] = ("http://localhost:8233", "http://127.0.0.1:8233")
"""Where the dev server's UI runs; pass your UI's origin (e.g. Temporal Cloud's) in production."""

MAX_PAYLOADS = 1000


def codec_app(
    config: EncryptionConfig,
    keystore: KeyStore | None,
    api_token: str,
    *,
    cors_origins: Sequence[str] = DEFAULT_UI_ORIGINS,
    namespaces: Sequence[str] | None = None,
    keyring: Keyring | None = None,
) -> FastAPI:
    """A FastAPI app serving the Temporal codec server protocol.

    Args:
        config: Master keys (the same as the workers').
        keystore: Where session data keys live (the workers' key store), or None.
        api_token: The bearer token callers must present (``Authorization: Bearer <token>``).
        cors_origins: Browser origins allowed to call (the Temporal UI's).
        namespaces: When given, only these namespaces (``X-Namespace``) are served.
        keyring: Use this keyring instead of building one from ``config`` and ``keystore``.

    Raises:
        ValueError: If ``api_token`` is empty.
    """
    if not api_token:
        raise ValueError("the codec server needs an api_token")
    codec = EncryptionCodec(keyring if keyring is not None else Keyring(config, keystore))
    expected = api_token.encode("utf-8")
    allowed = None if namespaces is None else frozenset(namespaces)

    app = FastAPI(title="durable-sessions codec server", docs_url=None, redoc_url=None)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(cors_origins),
        allow_credentials=True,
        allow_methods=["POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "X-Namespace"],
    )

    def authorize(authorization: str | None, namespace: str | None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode("utf-8"), expected
        ):
            raise HTTPException(
                status_code=401,
                detail="missing or invalid bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if allowed is not None and namespace not in allowed:
            raise HTTPException(status_code=403, detail="namespace not served by this codec")

    async def read_payloads(request: Request) -> list[Payload]:
        try:
            body = await request.json()
            message = json_format.ParseDict(body, Payloads())
        except (ValueError, json_format.ParseError, TypeError):
            raise HTTPException(status_code=400, detail="expected {'payloads': [...]}") from None
        if len(message.payloads) > MAX_PAYLOADS:
            raise HTTPException(status_code=413, detail=f"at most {MAX_PAYLOADS} payloads")
        return list(message.payloads)

    def respond(payloads: list[Payload]) -> JSONResponse:
        content: dict[str, Any] = json_format.MessageToDict(Payloads(payloads=payloads))
        content.setdefault("payloads", [])
        return JSONResponse(content)

    @app.post("/encode")
    async def encode(
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
        x_namespace: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        authorize(authorization, x_namespace)
        return respond(await codec.encode(await read_payloads(request)))

    @app.post("/decode")
    async def decode(
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
        x_namespace: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        authorize(authorization, x_namespace)
        out: list[Payload] = []
        for payload in await read_payloads(request):
            try:
                out.append(await codec.decode_one(payload))
            except EncryptionError as exc:
                log.info("payload left encrypted: %s", exc)
                out.append(payload)
        return respond(out)

    return app

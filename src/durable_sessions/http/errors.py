"""Errors over HTTP: one JSON shape, stable codes, and the status each error deserves.

Every error response is ``{"error": {"code": "...", "message": "..."}}`` (validation errors
add ``"fields"``). Messages name fields, ids, statuses and numbers, never conversation text
or a submitted value.

Status rules:

* 404: ``SessionNotFoundError``, ``CheckpointNotFoundError`` (also for another user's).
* 409: ``SessionClosedError``, ``InvalidTransitionError``, ``BranchExistsError``.
* 413 ``payload_too_large``: a request body, a turn's content or a metadata object over its
  size limit. A turn the session refuses with ``InvalidTurnError`` on the field ``content``
  is 413 when the content is not empty (past request validation, the only check a session
  makes on non-empty content is its size); every other ``InvalidTurnError`` is 422.
* 400 ``invalid_json``: a body that is not JSON (not UTF-8, truncated, not JSON at all), the
  same code and status whatever the reason.
* 422: request validation (``validation_error``, with the offending fields), any other
  ``InvalidTurnError``, and a ``SessionError`` that names a field.
* 429: ``SessionCapacityError``. 503: ``WorkerUnavailableError``, ``SessionBusyError``,
  ``StoreUnavailableError`` (with ``Retry-After``) and a Temporal service that does not
  answer. 401: no or a bad key.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError

from durable_sessions.errors import (
    BranchExistsError,
    CheckpointNotFoundError,
    InvalidTransitionError,
    InvalidTurnError,
    SessionBusyError,
    SessionCapacityError,
    SessionClosedError,
    SessionError,
    SessionNotFoundError,
    StoreUnavailableError,
    WorkerUnavailableError,
)

__all__ = [
    "ERROR_RESPONSES",
    "INVALID_JSON_MESSAGE",
    "ApiError",
    "ErrorBody",
    "ErrorDetail",
    "error_response",
    "install_error_handlers",
    "invalid_json",
    "session_error_response",
    "status_for",
    "too_large",
    "validation_response",
]

log = logging.getLogger("durable_sessions.http")


class ErrorDetail(BaseModel):
    code: str
    message: str
    fields: list[str] | None = None


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


class ApiError(Exception):
    """An error the HTTP layer raises itself (size limits, bad headers, auth)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def too_large(message: str) -> ApiError:
    return ApiError(413, "payload_too_large", message)


_STATUS: Sequence[tuple[type[SessionError], int]] = (
    (SessionNotFoundError, 404),
    (CheckpointNotFoundError, 404),
    (SessionClosedError, 409),
    (InvalidTransitionError, 409),
    (BranchExistsError, 409),
    (InvalidTurnError, 422),
    (SessionCapacityError, 429),
    (WorkerUnavailableError, 503),
    (SessionBusyError, 503),
    (StoreUnavailableError, 503),
)

INVALID_JSON_MESSAGE = "the request body is not valid JSON in UTF-8"

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in [
        (400, "The body is not JSON in UTF-8 (`invalid_json`)"),
        (401, "No or a bad API key"),
        (404, "No such session or checkpoint (or not yours)"),
        (409, "The session is closed, or the transition is invalid"),
        (413, "A body, content or metadata over its size limit"),
        (422, "Invalid input"),
        (429, "A capacity limit is reached"),
        (503, "No worker answered in time; retry"),
    ]
}
"""The error statuses every API route documents in the OpenAPI."""

_HTTP_CODES: Mapping[int, str] = {
    400: "invalid_json",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def status_for(exc: SessionError) -> int:
    """The HTTP status of one of our errors (see the module docstring)."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    # An error of ours we have no rule for: bad input when it names a field.
    return 422 if exc.field else 500


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    fields: list[str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=message, fields=fields))
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True),
        status_code=status,
        headers=dict(headers or {}),
    )


def session_error_response(exc: SessionError) -> JSONResponse:
    status = status_for(exc)
    headers = (
        {"Retry-After": "1"}
        if isinstance(exc, SessionBusyError | WorkerUnavailableError | StoreUnavailableError)
        else None
    )
    message = exc.message
    if status == 404:
        # Unknown and not-yours read the same: say nothing about which.
        what = "checkpoint" if isinstance(exc, CheckpointNotFoundError) else "session"
        message = f"no such {what}"
    elif isinstance(exc, WorkerUnavailableError):
        # The full message names the task queue: for the logs, not for API clients.
        log.warning("worker unavailable: %s", exc.message)
        message = "no worker answered in time; retry later"
    elif isinstance(exc, StoreUnavailableError):
        # The full message names the database's address: for the logs only.
        log.warning("store unavailable: %s", exc.message)
        message = "the session store is unavailable; retry later"
    elif status >= 500 and not isinstance(exc, SessionBusyError):
        log.error("unmapped session error %s: %s", type(exc).__name__, exc.message)
        message = "the session could not complete the request"
    return error_response(status, exc.code, message, headers=headers)


def _field_name(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc)


def validation_response(errors: Sequence[Mapping[str, Any]]) -> JSONResponse:
    """422 naming each offending field with pydantic's message; the input is never echoed."""
    fields: list[str] = []
    parts: list[str] = []
    for err in errors:
        name = _field_name(err.get("loc", ())) or "body"
        if name not in fields:
            fields.append(name)
        parts.append(f"{name}: {err.get('msg', 'invalid')}")
    message = "invalid request: " + "; ".join(parts[:10])
    if len(parts) > 10:
        message += f"; and {len(parts) - 10} more"
    return error_response(422, "validation_error", message, fields=fields)


async def _on_session_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SessionError)
    return session_error_response(exc)


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, headers=exc.headers)


def invalid_json() -> JSONResponse:
    return error_response(400, "invalid_json", INVALID_JSON_MESSAGE)


async def _on_request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return invalid_json()
    return validation_response(errors)


async def _on_pydantic_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ValidationError)
    return validation_response(
        [{"loc": ("body", *e["loc"]), "msg": e["msg"]} for e in exc.errors()]
    )


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # FastAPI's only 400: a body it could not decode (not UTF-8).
        return invalid_json()
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return error_response(exc.status_code, code, message, headers=exc.headers)


async def _on_rpc_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RPCError)
    log.warning("Temporal call failed: %s %s", exc.status, exc.message)
    return error_response(
        503,
        "temporal_unavailable",
        "the Temporal service did not complete the call; retry later",
        headers={"Retry-After": "1"},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SessionError, _on_session_error)
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(ValidationError, _on_pydantic_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(RPCError, _on_rpc_error)

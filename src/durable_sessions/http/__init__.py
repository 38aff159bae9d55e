"""The HTTP surface: ``create_app(manager, api_keys={"<key>": "<user_id>"})`` (FastAPI).

Needs the ``http`` extra (FastAPI; uvicorn to serve it: ``durable-sessions serve``).
"""

from durable_sessions.http.app import create_app
from durable_sessions.http.auth import ApiKeyAuth, hash_api_key, parse_api_keys
from durable_sessions.http.errors import ErrorBody
from durable_sessions.http.events import EventStreamOptions
from durable_sessions.http.middleware import SessionMiddleware

__all__ = [
    "ApiKeyAuth",
    "ErrorBody",
    "EventStreamOptions",
    "SessionMiddleware",
    "create_app",
    "hash_api_key",
    "parse_api_keys",
]

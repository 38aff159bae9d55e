"""The session viewer: a small read-only web page at ``/viewer`` (plain HTML, JS and CSS).

The page and its assets are static and hold no data, so they are served without an API key
(``is_viewer_path`` tells the authentication layer). Everything shown comes from the JSON API,
called by the page with ``Authorization: Bearer <key>``; the page takes the key from its URL
fragment (``/viewer#key=...&session=...``, never sent to the server) or a form, and keeps it in
``sessionStorage``. It lists the caller's sessions and shows one session: its header, the
transcript (role, content, ids, timestamps, tokens, metadata), its checkpoints and the branch
tree it belongs to (``GET /sessions/{id}/lineage``, see ``session_lineage``).

The assets are package data in ``durable_sessions/http/viewer/``; the page loads nothing from
elsewhere, and a strict Content-Security-Policy keeps it that way.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import RedirectResponse

from durable_sessions.errors import SessionNotFoundError
from durable_sessions.http.errors import ApiError
from durable_sessions.http.schemas import BranchTreeNode, LineageResponse
from durable_sessions.models import SessionState

if TYPE_CHECKING:
    from durable_sessions.branches import BranchNode
    from durable_sessions.client import SessionManager

__all__ = [
    "ASSETS",
    "CONTENT_SECURITY_POLICY",
    "SECURITY_HEADERS",
    "VIEWER_PATH",
    "asset",
    "install_viewer",
    "is_viewer_path",
    "session_lineage",
]

VIEWER_PATH = "/viewer"
"""Where the page is served; its assets are under ``/viewer/``."""

ASSETS: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "viewer.js": "text/javascript; charset=utf-8",
    "live.js": "text/javascript; charset=utf-8",
    "viewer.css": "text/css; charset=utf-8",
}
"""The viewer's files and their media types (nothing else under ``/viewer/`` is served)."""

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


def is_viewer_path(path: str) -> bool:
    """Whether ``path`` (without the app's root path) is the viewer page or one of its assets."""
    return path == VIEWER_PATH or path.startswith(VIEWER_PATH + "/")


@functools.cache
def asset(name: str) -> bytes:
    """The bytes of one of the viewer's files (``ASSETS``)."""
    if name not in ASSETS:
        raise KeyError(name)
    return files("durable_sessions.http").joinpath("viewer", name).read_bytes()


def _asset_response(name: str) -> Response:
    return Response(asset(name), media_type=ASSETS[name], headers=SECURITY_HEADERS)


def install_viewer(app: FastAPI) -> None:
    """Serve the viewer on ``app`` (kept out of the OpenAPI document)."""
    router = APIRouter(include_in_schema=False)

    @router.get(VIEWER_PATH)
    async def viewer_page() -> Response:
        return _asset_response("index.html")

    @router.get(VIEWER_PATH + "/")
    async def viewer_slash() -> Response:
        # Relative, so it works under a root path; the browser keeps the fragment (the key).
        return RedirectResponse("../viewer", status_code=307)

    @router.get(VIEWER_PATH + "/{name}")
    async def viewer_asset(name: str) -> Response:
        if name not in ASSETS or name == "index.html":
            raise ApiError(404, "not_found", "no such viewer file")
        return _asset_response(name)

    app.include_router(router)


def _node(node: BranchNode, user_id: str) -> BranchTreeNode:
    return BranchTreeNode(
        session=node.state,
        children=[_node(c, user_id) for c in node.children if c.state.user_id == user_id],
    )


async def session_lineage(
    manager: SessionManager, user_id: str, session_id: str
) -> LineageResponse:
    """The branch tree ``session_id`` belongs to, from its root, as ``user_id`` may see it.

    Ancestors and branches of another user (there should be none) are left out: the root is
    the oldest ancestor reached through the caller's own sessions.
    """
    from durable_sessions.branches import BranchManager

    branches = BranchManager(manager)
    found = await branches.lineage(session_id)
    ancestors: list[SessionState] = []
    for state in reversed(found.ancestors):  # nearest first
        if state.user_id != user_id:
            break
        ancestors.append(state)
    ancestors.reverse()
    if ancestors:
        try:
            tree = (await branches.lineage(ancestors[0].session_id)).tree
        except SessionNotFoundError:  # deleted meanwhile: show what hangs under the session
            ancestors, tree = [], found.tree
    else:
        tree = found.tree
    return LineageResponse(
        session_id=session_id,
        ancestors=[a.session_id for a in ancestors],
        root=_node(tree, user_id),
    )

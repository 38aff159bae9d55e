"""The viewer page without a browser: served without a key, static, and holding no data."""

from __future__ import annotations

import re
from importlib.resources import files

import pytest

from durable_sessions.http.viewer import ASSETS, CONTENT_SECURITY_POLICY
from tests.http.conftest import Api
from tests.viewer.chromium import chromium_or_skip

SECRET = "a very private message 7f3a"


async def test_page_and_assets_are_served_without_a_key(api: Api) -> None:
    sid = await api.create(metadata={"note": SECRET})
    await api.add(sid, SECRET)

    r = await api.anonymous.get("/viewer")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "set-cookie" not in r.headers
    page = r.text
    for marker in ('id="branch-tree"', 'id="transcript"', 'id="sessions"', 'id="key-form"'):
        assert marker in page
    assert 'src="viewer/viewer.js"' in page and 'href="viewer/viewer.css"' in page
    # Static: nothing of any session, user or key is on the page.
    for data in (sid, SECRET, "alice", "key-alice"):
        assert data not in page

    js = await api.anonymous.get("/viewer/viewer.js")
    assert js.status_code == 200
    assert js.headers["content-type"].startswith("text/javascript")
    assert "Authorization" in js.text and "sessionStorage" in js.text
    css = await api.anonymous.get("/viewer/viewer.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")

    # A key changes nothing: the page is the same for everyone.
    assert (await api.alice.get("/viewer")).text == page


async def test_trailing_slash_redirects_relatively(api: Api) -> None:
    r = await api.anonymous.get("/viewer/")
    assert r.status_code == 307
    assert r.headers["location"] == "../viewer"


async def test_only_the_viewer_files_are_public(api: Api) -> None:
    for path in ("/viewer/nope.js", "/viewer/index.html", "/viewer/%2e%2e%2fapp.py"):
        r = await api.anonymous.get(path)
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] == "not_found"
    for path in ("/viewerx", "/viewer.js", "/sessions"):
        r = await api.anonymous.get(path)
        assert r.status_code == 401, path
    # The viewer is not part of the API's OpenAPI document.
    schema = (await api.anonymous.get("/openapi.json")).json()
    assert not [p for p in schema["paths"] if p.startswith("/viewer")]


def test_assets_are_package_data_and_load_nothing_from_elsewhere() -> None:
    folder = files("durable_sessions.http").joinpath("viewer")
    for name in ASSETS:
        text = folder.joinpath(name).read_text("utf-8")
        assert not re.search(r"(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text), name
        assert "@import" not in text, name


def test_script_renders_data_as_text_only() -> None:
    js = files("durable_sessions.http").joinpath("viewer", "viewer.js").read_text("utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in js, sink
    # The key is sent as a header, never in a URL's query string.
    assert "?key=" not in js and "&key=" not in js


def test_missing_chromium_skips_locally_and_fails_on_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DURABLE_SESSIONS_CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"apt-get install -y chromium"):
        chromium_or_skip()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match=r"apt-get install -y chromium"):
        chromium_or_skip()

"""Headless Chromium for page tests: Debian's ``chromium`` package (``/usr/bin/chromium``).

``dump_dom`` returns the DOM after the page's scripts ran; the viewer sets
``<body data-ready="1">`` once a view is rendered, and the dump is retried (with a longer
virtual-time budget) until it has. Where Chromium is missing the tests skip, and fail under
``CI=true`` so CI can never silently stop testing the page.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from pathlib import Path

import pytest

from tests.viewer.dom import Element, parse

CHROMIUM = "/usr/bin/chromium"
INSTALL_HINT = "apt-get install -y chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "viewer"
"""Screenshots are kept here (ignored by git) for a person to look at."""

RUN_TIMEOUT = 60.0
"""Seconds one Chromium run may take before it is killed."""

BASE_ARGS = [
    "--headless",
    "--no-sandbox",  # tests run as root in CI
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-extensions",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--mute-audio",
    "--password-store=basic",
]


def _on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def chromium_or_skip() -> str:
    """The browser's path; skips (fails under ``CI=true``) with how to install it.

    ``DURABLE_SESSIONS_CHROMIUM`` names another binary (then only that one is tried).
    """
    wanted = os.environ.get("DURABLE_SESSIONS_CHROMIUM")
    candidates = [wanted] if wanted else [CHROMIUM, shutil.which("chromium")]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    message = (
        f"Chromium is not installed ({wanted or CHROMIUM} not found): install Debian's package "
        f"with `{INSTALL_HINT}` (as root; `apt-get update` first on a fresh machine)"
    )
    if _on_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


async def run_chromium(
    browser: str, profile: Path, *args: str, timeout: float = RUN_TIMEOUT
) -> tuple[str, str]:
    """Run Chromium once with ``args`` and a fresh profile; returns ``(stdout, stderr)``.

    Asynchronous on purpose: the app under test is served by this same event loop.
    """
    _fresh_dir(profile)
    proc = await asyncio.create_subprocess_exec(
        browser,
        *BASE_ARGS,
        f"--user-data-dir={profile}",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its helper processes are killed with it on a timeout
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise AssertionError(f"Chromium did not finish within {timeout:.0f}s: {args}") from None
    text, errors = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    assert proc.returncode == 0, f"Chromium exited {proc.returncode}: {errors[-2000:]}"
    return text, errors


def _body(document: Element) -> Element:
    bodies = document.select("body")
    assert bodies, "no <body> in the dumped DOM"
    return bodies[0]


async def dump_dom(
    browser: str, url: str, workdir: Path, *, attempts: int = 4, budget_ms: int = 10_000
) -> Element:
    """The page's DOM once it is rendered (``<body data-ready="1">``), parsed."""
    last = ""
    for attempt in range(attempts):
        html, errors = await run_chromium(
            browser,
            workdir / f"profile-dom-{attempt}",
            f"--virtual-time-budget={budget_ms * (attempt + 1)}",
            "--dump-dom",
            url,
        )
        document = parse(html)
        state = _body(document).attrs.get("data-ready") if html.strip() else None
        if state == "1":
            return document
        if state == "error":
            raise AssertionError(f"the page shows an error: {document.by_id('error').text()!r}")
        last = html[-3000:] + "\n-- stderr --\n" + errors[-2000:]
        await asyncio.sleep(0.5)
    raise AssertionError(f"the page was never rendered (data-ready != 1); last dump:\n{last}")


async def screenshot(browser: str, url: str, path: Path, workdir: Path) -> Path:
    """A PNG of the page at 1280x1600, after its scripts ran."""
    _fresh_file(path)
    await run_chromium(
        browser,
        workdir / f"profile-shot-{path.stem}",
        "--window-size=1280,1600",
        "--virtual-time-budget=10000",
        f"--screenshot={path}",
        url,
    )
    _check_png(path)
    return path


def _fresh_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)


def _fresh_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)


def _check_png(path: Path) -> None:
    assert path.exists(), f"Chromium wrote no screenshot at {path}"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"

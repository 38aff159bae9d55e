"""Where an adapter runs the manager's calls: any event loop or thread may call it (private).

Frameworks call their memory from wherever they run: the OpenAI Agents SDK's
``Runner.run_sync`` makes a new event loop in each thread, LangChain calls the sync API from
executor threads or from inside a running loop. Three facts decide where a call runs:

* Temporal client calls work on any loop: the SDK's core runs the RPC on its own threads and
  completes the future of whichever loop awaits it. Updates and queries (``add_turns``,
  ``pop_turn``, ``truncate``, the recent window) run right where they are called, so a loop
  blocked elsewhere never holds them up.
* A store's connections (an asyncpg pool) belong to the loop that opened them: the manager's
  loop (``SessionManager.loop``). A call that may read the store runs there, with
  ``asyncio.run_coroutine_threadsafe``, when it comes from another loop; the calling loop
  awaits it without blocking.
* A sync call cannot wait on its own thread's loop. It runs on the manager's loop if that loop
  runs in another thread, else on one private daemon loop thread shared by all adapters. Store
  reads there need a store usable from any loop (``InMemorySessionStore``,
  ``SQLiteSessionStore``, ``PostgresSessionStore`` with its pool per loop); short sessions are
  read from the workflow's recent window and need no store at all. A sync call blocks its own
  loop: a worker on that loop cannot answer it (use the async API there).

No lock is held across calls: the session's workflow serializes every write, and the limiter
of ``SessionManager`` is per loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from durable_sessions.client import SessionManager

__all__ = ["call_async", "call_sync", "running_loop"]

T = TypeVar("T")


def running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _alive(loop: asyncio.AbstractEventLoop | None) -> bool:
    return loop is not None and loop.is_running() and not loop.is_closed()


class _LoopThread:
    """One daemon thread running an event loop, started on first use.

    Why shared and daemon: it serves sync calls that have no other loop to run on, usually for
    the life of the process; one thread is enough (calls are I/O-bound), and a daemon never
    keeps the interpreter from exiting.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                threading.Thread(target=run, name="durable-sessions-loop", daemon=True).start()
                ready.wait()
                self._loop = loop
            return self._loop


PRIVATE_LOOP = _LoopThread()


async def call_async(
    manager: SessionManager, call: Callable[[], Coroutine[Any, Any, T]], *, store: bool
) -> T:
    """Await ``call()`` from the running loop; on the manager's loop when it reads the store
    (``store=True``) and the manager's loop is another, running one."""
    home = manager.loop
    if not store or home is None or home is asyncio.get_running_loop() or not _alive(home):
        return await call()
    # Cancelling the caller cancels the call on the manager's loop: reads only, so nothing
    # is left unknown.
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call(), home))


def call_sync(
    manager: SessionManager, call: Callable[[], Coroutine[Any, Any, T]], *, store: bool
) -> T:
    """Run ``call()`` to completion from sync code, inside a running loop or not: on the
    private loop thread (never blocked by anyone), or on the manager's loop when the call reads
    the store and that loop runs in another thread."""
    home = manager.loop
    use_home = store and _alive(home) and home is not running_loop()
    target = home if use_home and home is not None else PRIVATE_LOOP.loop()
    # The coroutine is created only now, on a path that will run it: an abandoned coroutine
    # would warn ("never awaited").
    return asyncio.run_coroutine_threadsafe(call(), target).result()

"""The operation lock of runs of features 9 (``_patches.ARRIVAL_ORDER``).

Why not ``asyncio.Lock``: a waiter's place in its FIFO queue is the moment it called
``acquire``, and on replay that moment can move. The SDK's core merges a workflow task that sent
no command with the task the server scheduled right after it (temporalio/sdk-rust#1606), and in
the merged activation the later task's signals and updates run *before* the earlier task's
activity results and timer firings. Live, an operation woken by an activity result that found the
lock held queued in the earlier task, ahead of a message of the later one; on replay it queues
behind it. Different order, different commands: a run a cache miss cannot replay
(tests/faults/RESULTS.md, session 13).

So this lock orders waiters by what woke them, not by when they queued:

* message handlers take it when the message arrives, before any await (their place is the order
  of messages in history, which a merge keeps);
* work woken by an activity result or a timer (``internal``: the main loop's expiry and drain, a
  group tick's turn, a regenerated answer) is served before any message waiting, in the order it
  queued (the order of those events in history, which a merge also keeps);
* a release hands the lock straight to the next waiter, so nobody takes it in between.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["OperationLock"]


class OperationLock:
    """A lock with two FIFO queues: internal waiters before message waiters."""

    def __init__(self) -> None:
        self._held = False
        self._internal: deque[asyncio.Future[None]] = deque()
        self._messages: deque[asyncio.Future[None]] = deque()

    def locked(self) -> bool:
        return self._held

    async def acquire(self, *, internal: bool) -> bool:
        """Take the lock; True if it had to wait for it. Free, it is taken without yielding.

        While the lock is not held nobody waits (a release hands it over), so free means free.
        """
        if not self._held:
            self._held = True
            return False
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._internal if internal else self._messages
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed over, then cancelled before it ran: pass it on
            elif waiter in queue:
                queue.remove(waiter)
            raise
        return True

    def release(self) -> None:
        """Hand the lock to the next waiter (internal ones first), or free it."""
        for queue in (self._internal, self._messages):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._held = False

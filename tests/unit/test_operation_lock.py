"""The operation lock of runs of features 9 (``workflows._lock``): who gets it, in which order."""

from __future__ import annotations

import asyncio

import pytest

from durable_sessions.workflows._lock import OperationLock


def test_a_free_lock_is_taken_without_yielding() -> None:
    lock = OperationLock()
    step = lock.acquire(internal=False)
    with pytest.raises(StopIteration) as done:
        step.send(None)  # runs to the end in one step: no await suspended it
    assert done.value.value is False
    assert lock.locked()
    lock.release()
    assert not lock.locked()


async def _queue(lock: OperationLock, order: list[str], name: str, *, internal: bool) -> None:
    waited = await lock.acquire(internal=internal)
    order.append(f"{name}{'' if waited else ' (free)'}")
    await asyncio.sleep(0)  # hold it across a step, as an operation awaiting an activity does
    lock.release()


async def _held_with_waiters(
    *waiters: tuple[str, bool],
) -> tuple[OperationLock, list[str], list[asyncio.Task[None]]]:
    """A lock held by an operation, with ``waiters`` (name, internal) queued on it in order."""
    lock = OperationLock()
    order: list[str] = []
    await lock.acquire(internal=False)
    tasks = [asyncio.create_task(_queue(lock, order, n, internal=i)) for n, i in waiters]
    await asyncio.sleep(0)
    return lock, order, tasks


async def test_woken_work_is_served_before_messages_that_queued_earlier() -> None:
    lock = OperationLock()
    order: list[str] = []
    await lock.acquire(internal=False)  # an operation holds it
    tasks = [
        asyncio.create_task(_queue(lock, order, "message 1", internal=False)),
        asyncio.create_task(_queue(lock, order, "message 2", internal=False)),
    ]
    await asyncio.sleep(0)
    tasks += [
        asyncio.create_task(_queue(lock, order, "woken 1", internal=True)),
        asyncio.create_task(_queue(lock, order, "woken 2", internal=True)),
    ]
    await asyncio.sleep(0)
    lock.release()
    await asyncio.gather(*tasks)
    assert order == ["woken 1", "woken 2", "message 1", "message 2"]
    assert not lock.locked()


async def test_the_order_does_not_depend_on_which_class_queued_first() -> None:
    """The replay case: a merged activation queues the message before the woken work."""

    async def run(message_first: bool) -> list[str]:
        lock = OperationLock()
        order: list[str] = []
        await lock.acquire(internal=True)
        kinds = [("message", False), ("woken", True)]
        if not message_first:
            kinds.reverse()
        tasks = [asyncio.create_task(_queue(lock, order, n, internal=i)) for n, i in kinds]
        await asyncio.sleep(0)
        lock.release()
        await asyncio.gather(*tasks)
        return order

    assert await run(message_first=True) == await run(message_first=False)


async def test_a_release_hands_over_so_a_newcomer_cannot_take_it_between() -> None:
    lock, order, (waiting,) = await _held_with_waiters(("waiting", False))
    lock.release()
    assert lock.locked()  # handed to the waiter, not freed
    newcomer = asyncio.create_task(_queue(lock, order, "newcomer", internal=True))
    await asyncio.gather(waiting, newcomer)
    assert order == ["waiting", "newcomer"]


async def test_a_cancelled_waiter_gives_up_its_place() -> None:
    lock, order, (gone, stays) = await _held_with_waiters(("gone", True), ("stays", False))
    gone.cancel()
    await asyncio.sleep(0)
    lock.release()
    await stays
    assert gone.cancelled()
    assert order == ["stays"]
    assert not lock.locked()


async def test_a_waiter_cancelled_after_the_hand_over_passes_the_lock_on() -> None:
    lock, order, (first, second) = await _held_with_waiters(("first", False), ("second", False))
    lock.release()  # handed to ``first`` ...
    first.cancel()  # ... which is cancelled before it runs
    await second
    assert first.cancelled()
    assert order == ["second"]
    assert not lock.locked()

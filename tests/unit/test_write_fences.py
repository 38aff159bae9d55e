"""``WriteFences``: the fence of a run's store writes never goes down (``SessionStore.persist``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from durable_sessions.workflows._calls import WriteFences

T0 = datetime(2026, 11, 30, 12, 0, 0, 250_000, tzinfo=UTC)
T0_US = int(T0.timestamp()) * 1_000_000 + 250_000


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_a_fence_is_the_task_start_in_microseconds() -> None:
    clock = Clock()
    fences = WriteFences(clock=clock)
    assert fences.next() == T0_US
    assert fences.next() == T0_US + 1  # another write of the same task comes after it
    clock.now = T0 + timedelta(seconds=2, microseconds=7)
    assert fences.next() == T0_US + 2_000_007
    assert fences.last == T0_US + 2_000_007


def test_a_clock_stepping_back_does_not_lower_the_fence() -> None:
    clock = Clock()
    fences = WriteFences(clock=clock)
    first = fences.next()
    clock.now = T0 - timedelta(seconds=30)
    assert fences.next() == first + 1
    clock.now = T0 + timedelta(seconds=1)
    assert fences.next() == first + 1_000_000


def test_the_floor_carried_from_the_previous_run_holds() -> None:
    clock = Clock()
    floor = T0_US + 5_000_000  # the previous run wrote at a later clock reading
    assert WriteFences(floor, clock=clock).next() == floor + 1

"""``settle_heap``: a worker process freezes what start-up built (the collector skips it)."""

from __future__ import annotations

import gc

from durable_sessions.worker import settle_heap


def test_settle_heap_freezes_the_objects_alive_now_and_keeps_the_thresholds() -> None:
    thresholds = gc.get_threshold()
    before = gc.get_freeze_count()
    try:
        settle_heap()
        assert gc.get_freeze_count() > before
        assert gc.get_threshold() == thresholds
    finally:
        gc.unfreeze()  # this test process goes on as before

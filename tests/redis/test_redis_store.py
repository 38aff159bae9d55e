"""The store contract suite, run against ``RedisSessionStore`` (fixtures in ``conftest.py``).

Every contract test that takes ``store`` or ``store_factory`` is collected here too, so the
cache must behave exactly like the store it fronts. Tests about one backend's schema
(``fresh_store``) or about ``store_from_url`` stay in ``tests/stores``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

from tests.stores import test_contract as contract


def _contract_tests() -> Iterator[tuple[str, Callable[..., Any]]]:
    for name, fn in vars(contract).items():
        if not name.startswith("test_") or not inspect.isfunction(fn):
            continue
        params = inspect.signature(fn).parameters
        if ("store" in params or "store_factory" in params) and "fresh_store" not in params:
            yield name, fn


CONTRACT_TESTS = dict(_contract_tests())
globals().update(CONTRACT_TESTS)


def test_the_contract_suite_is_collected() -> None:
    assert len(CONTRACT_TESTS) >= 20
    assert "test_persist_and_get_round_trip_every_field" in CONTRACT_TESTS

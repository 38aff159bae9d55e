"""The viewer tests run the HTTP app on the real stack, like ``tests/http``."""

from __future__ import annotations

from tests.http.conftest import api  # noqa: F401  (fixtures)
from tests.integration.conftest import stack, store  # noqa: F401  (fixtures)

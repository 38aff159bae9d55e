"""Property-based run of the OpenAPI document (schemathesis): no input makes a 500, and every
status answered is one the OpenAPI documents for that operation (status-code conformance).

The app runs on a real HTTP server in the test's event loop (its manager, Temporal client and
database pool belong to that loop); schemathesis drives it from a worker thread with its
synchronous client. Every operation gets generated valid and invalid requests, against random
ids and against real sessions of the caller, so bodies are fuzzed through to Temporal and the
store. Bounded: a few examples per operation, no shrinking.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from durable_sessions.http import create_app
from tests.http.conftest import API_KEYS, FAST_EVENTS, KEY_A, Api, auth, serve

MAX_EXAMPLES = 8
AUTH = auth(KEY_A)


def fresh_ids(base_url: str) -> dict[str, str]:
    """A new live session of the caller with a turn, and a checkpoint of it."""
    with requests.Session() as http:
        http.headers.update(AUTH)
        sid = http.post(f"{base_url}/sessions", json={"metadata": {"kind": "fuzz"}}).json()[
            "session_id"
        ]
        turn = {"role": "user", "content": "hello"}
        assert http.post(f"{base_url}/sessions/{sid}/turns", json=turn).status_code == 201
        cp = http.post(f"{base_url}/sessions/{sid}/checkpoints").json()["checkpoint_id"]
    return {"session_id": sid, "checkpoint_id": cp}


def run_cases(strategy: st.SearchStrategy[Any], base_url: str) -> None:
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call(base_url=base_url, headers=AUTH, timeout=30)
        case.validate_response(response, checks=[not_a_server_error, status_code_conformance])

    run()


def fuzz(base_url: str, raw_schema: dict[str, Any]) -> list[str]:
    """Run every operation; returns descriptions of the failures."""
    schema = schemathesis.openapi.from_dict(raw_schema)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        # Real ids for the operations that take them, but for the live event stream (it never
        # ends) and DELETE (tested elsewhere; it would leave nothing to fuzz).
        takes_ids = "{session_id}" in operation.path or "{checkpoint_id}" in operation.path
        real_ids = takes_ids and not operation.path.endswith("/events")
        real_ids = real_ids and operation.method.upper() != "DELETE"
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            runs = [operation.as_strategy(generation_mode=mode, headers=AUTH)]
            if real_ids:
                ids = fresh_ids(base_url)
                fixed = {k: v for k, v in ids.items() if f"{{{k}}}" in operation.path}
                runs.append(
                    operation.as_strategy(generation_mode=mode, headers=AUTH, path_parameters=fixed)
                )
            for strategy in runs:
                try:
                    run_cases(strategy, base_url)
                except Unsatisfiable:
                    # Nothing to make invalid (e.g. no parameter but a free-form path id).
                    assert mode is GenerationMode.NEGATIVE, operation.label
                except Exception as exc:
                    failures.append(f"{operation.label} [{mode.value}]: {exc}")
    return failures


@pytest.mark.slow
async def test_openapi_fuzz_finds_no_server_error(api: Api) -> None:
    app = create_app(api.stack.manager, API_KEYS, events=FAST_EVENTS)
    async with serve(app) as url:
        failures = await asyncio.wait_for(asyncio.to_thread(fuzz, url, app.openapi()), timeout=300)
    assert not failures, "\n\n".join(failures)

"""How our commands end their process: without the interpreter's finalization.

A process that used a Temporal client can abort while Python finalizes: the SDK's Rust runtime
keeps threads that may still take the GIL as it is torn down, and CPython then stops with
"Fatal Python error: PyGILState_Release: thread state ... must be current when releasing" and
SIGABRT (temporalio/sdk-python#300; seen once in our CI, a `durable-sessions session` command
that had printed its answer and then died with it). A short-lived CLI command hits it most. So
the commands run their ``atexit`` handlers (OpenTelemetry's span flush among them), flush their
streams and leave with ``os._exit``: the same exit status, no finalization. (The test suite
leaves the same way for the same reason: ``pytest_unconfigure`` in tests/conftest.py.)
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn

__all__ = ["run_as_process"]


def _exit_status(exc: SystemExit) -> int:
    """The status Python would exit with for ``exc`` (printing its message, as Python does)."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def run_as_process(main: Callable[[], object]) -> NoReturn:
    """Run a command's ``main`` as the whole process, then end it with its exit status."""
    try:
        main()
        status = 0
    except SystemExit as exc:
        status = _exit_status(exc)
    except KeyboardInterrupt:
        status = 130
    except BaseException:
        traceback.print_exc()
        status = 1
    _exit(status)


def _exit(status: int) -> NoReturn:
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe: nothing left to say
            stream.flush()
    os._exit(status)

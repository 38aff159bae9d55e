"""Workflow code stays deterministic without the sandbox (workers run it unsandboxed by default).

The sandbox would fail a workflow task on a clock, randomness or I/O call at run time; without
it, this scan is the guard at review time, and the replay tests (which run every recorded history
through the sandbox) are the second. Scanned: every module of ``durable_sessions.workflows`` and
the pure ``core`` modules they import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import durable_sessions

PACKAGE = Path(durable_sessions.__file__).parent
WORKFLOW_MODULES = sorted((PACKAGE / "workflows").glob("*.py"))

BANNED_MODULES = {
    "asyncpg",
    "httpx",
    "os",
    "random",
    "redis",
    "secrets",
    "socket",
    "sqlite3",
    "subprocess",
    "threading",
    "time",
    "uuid",
}
"""Clocks, randomness, threads and I/O: ``workflow.now()``, ``workflow.uuid4()``,
``workflow.random()`` and activities are the deterministic ways."""

BANNED_OURS = (
    "durable_sessions.client",
    "durable_sessions.core.clock",
    "durable_sessions.core.semantic",
    "durable_sessions.stores.postgres",
    "durable_sessions.stores.redis",
    "durable_sessions.stores.sqlite",
    "durable_sessions.streaming",
)
"""Our modules that do I/O or read the clock."""

BANNED_CALLS = {"now", "utcnow", "today", "open", "sleep_until"}


def _imported(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _core_modules_of(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        for name in _imported(ast.parse(path.read_text())):
            if name.startswith("durable_sessions.core."):
                parts = name.split(".")[1:]
                for end in range(len(parts), 1, -1):
                    candidate = PACKAGE.joinpath(*parts[:end]).with_suffix(".py")
                    if candidate.exists() and candidate not in found:
                        found.append(candidate)
                        break
    return sorted(found)


SCANNED = WORKFLOW_MODULES + [
    p for p in _core_modules_of(WORKFLOW_MODULES) if p.name not in {"clock.py", "semantic.py"}
]


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found: list[str] = []
    for name in _imported(tree):
        if name.split(".")[0] in BANNED_MODULES:
            found.append(f"imports {name}")
        if path.parent.name == "workflows" and name.startswith(BANNED_OURS):
            found.append(f"imports {name}")
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        owner = (
            func.value.id
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
            else ""
        )
        if called in BANNED_CALLS and owner != "workflow":
            found.append(f"calls {owner + '.' if owner else ''}{called}() at line {node.lineno}")
    return found


def test_the_scan_covers_the_workflow_and_its_core() -> None:
    names = {p.name for p in SCANNED}
    assert {"session.py", "_head.py", "_turn_handlers.py", "turns.py", "flushing.py"} <= names


@pytest.mark.parametrize("path", SCANNED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_workflow_code_has_no_clock_randomness_or_io(path: Path) -> None:
    assert _violations(path) == []


def test_the_scan_finds_what_it_bans(tmp_path: Path) -> None:
    bad = tmp_path / "workflows" / "bad.py"
    bad.parent.mkdir()
    bad.write_text(
        "import time\nfrom datetime import datetime\nfrom durable_sessions.client import x\n"
        "def f():\n    return datetime.now(), open('f')\n"
    )
    assert _violations(bad) == [
        "imports time",
        "imports durable_sessions.client",
        "imports durable_sessions.client.x",
        "calls datetime.now() at line 5",
        "calls open() at line 5",
    ]


def test_every_patch_the_workflow_checks_is_listed_in_one_place() -> None:
    """``workflows/_patches.PATCHES`` lists every ``workflow.patched`` id the workflows call,
    by constant (a literal id would dodge the list)."""
    from durable_sessions.workflows import _patches

    called: set[str] = set()
    for path in (Path(durable_sessions.__file__).parent / "workflows").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"patched", "deprecate_patch"}
            ):
                (arg,) = node.args
                assert isinstance(arg, ast.Name), f"{path.name}: patch id by constant, not literal"
                called.add(getattr(_patches, arg.id))
    assert called == {
        _patches.LOCAL_FLUSH,
        _patches.SERIALIZED_OPERATIONS,
        _patches.SIGNALS_WHILE_DRAINING,
        _patches.NO_CHECKPOINT_PAST_HEAD,
    }
    assert called <= set(_patches.PATCHES)
    assert set(_patches.__all__) >= {
        name for name in vars(_patches) if name.isupper() and not name.startswith("_")
    }

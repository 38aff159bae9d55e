"""Every public module says what it exports, and every exported name exists.

Like httpx's ``tests/test_exported_members.py``: ``__all__`` is the public API of a module, so a
name listed there that does not resolve (a rename, a lazy import pointing nowhere) is a bug a
user meets as an ``ImportError`` on ``from durable_sessions.x import *``.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import durable_sessions

SRC = Path(durable_sessions.__file__).parent


def _public_modules() -> list[str]:
    names = ["durable_sessions"]
    for info in pkgutil.walk_packages([str(SRC)], prefix="durable_sessions."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


PUBLIC_MODULES = _public_modules()


def test_public_modules_are_found() -> None:
    assert {"durable_sessions.client", "durable_sessions.models", "durable_sessions.stores"} <= set(
        PUBLIC_MODULES
    )
    assert not any("._" in name for name in PUBLIC_MODULES)


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_every_name_in_all_exists(name: str) -> None:
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:  # an optional extra that is not installed
        if exc.name is not None and not exc.name.startswith("durable_sessions"):
            pytest.skip(f"{name} needs {exc.name}")
        raise
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"
    missing = [member for member in exported if not hasattr(module, member)]
    assert not missing, f"{name}.__all__ names what it does not define: {missing}"


def test_the_package_exports_the_seed_names() -> None:
    wanted = {
        "AppendMerge",
        "SelectiveMerge",
        "RoundRobinTurnManager",
        "PriorityTurnManager",
        "TopicBasedTurnManager",
        "RelevanceContextPruner",
        "SlidingWindowPruner",
        "TokenBudgetPruner",
        "SessionMiddleware",
        "SessionBusyError",
        "SessionManager",
        "SessionTurn",
        "create_worker",
        "connect",
    }
    assert wanted <= set(durable_sessions.__all__)
    for name in wanted:
        value = getattr(durable_sessions, name)
        assert getattr(value, "__name__", name) == name
    assert set(durable_sessions.__all__) <= set(dir(durable_sessions))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = durable_sessions.Nope  # type: ignore[attr-defined]


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package modules ``path`` imports, at module level or inside functions (not under
    ``if TYPE_CHECKING``): a lazy import still makes a cycle of responsibilities."""
    found: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if "TYPE_CHECKING" in ast.unparse(node.test):
                for child in node.orelse:
                    self.visit(child)
                return
            self.generic_visit(node)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            base = node.module or ""
            if node.level == 0 and base.startswith("durable_sessions"):
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    found.add(sub if sub in modules else base)

        def visit_Import(self, node: ast.Import) -> None:
            found.update(a.name for a in node.names if a.name in modules)

    Visitor().visit(ast.parse(path.read_text()))
    return found


def _module_graph() -> dict[str, set[str]]:
    paths: dict[str, Path] = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        paths[".".join(parts)] = path
    return {name: _imports(path, set(paths)) - {name} for name, path in paths.items()}


def _cycle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


@pytest.mark.parametrize(
    "start",
    [
        "durable_sessions.dev",
        "durable_sessions.runtime",
        "durable_sessions.worker",
        "durable_sessions.plugin",
    ],
)
def test_no_import_cycle_through_the_entry_points(start: str) -> None:
    """dev -> runtime -> worker -> plugin used to loop back (plugin imported the worker for its
    list of workflows; runtime imported dev for the default database)."""
    cycle = _cycle_through(_module_graph(), start)
    assert cycle is None, " -> ".join(cycle or [])

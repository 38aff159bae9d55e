"""`import durable_sessions` works without the frameworks; adapters name the extra to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCK_FRAMEWORKS = textwrap.dedent(
    """
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"agents", "langchain_core"}:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Block())
    """
)


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_FRAMEWORKS + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_core_plugin_and_testing_import_without_the_frameworks() -> None:
    result = run(
        """
        import durable_sessions, durable_sessions.adapters, durable_sessions.plugin
        import durable_sessions.testing
        assert "agents" not in sys.modules and "langchain_core" not in sys.modules
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_adapters_name_the_extra_to_install() -> None:
    for name, extra in (
        ("DurableAgentsSession", "durable-sessions[openai-agents]"),
        ("DurableChatMessageHistory", "durable-sessions[langchain]"),
    ):
        result = run(f"from durable_sessions.adapters import {name}")
        assert result.returncode != 0
        assert extra in result.stderr, result.stderr

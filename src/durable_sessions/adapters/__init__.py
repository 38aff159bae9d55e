"""Adapters that let agent frameworks keep their memory in durable sessions.

* ``durable_sessions.adapters.openai_agents.DurableAgentsSession``: the OpenAI Agents SDK's
  ``Session`` protocol (extra ``durable-sessions[openai-agents]``).
* ``durable_sessions.adapters.langchain.DurableChatMessageHistory``: LangChain's
  ``BaseChatMessageHistory`` (extra ``durable-sessions[langchain]``).

Why separate modules imported on demand: each adapter needs its framework installed, and
``import durable_sessions`` (or this package) must work without any of them. The names below
are resolved lazily, so ``from durable_sessions.adapters import DurableAgentsSession`` imports
only the OpenAI Agents SDK, and a missing extra fails with the ``pip install`` line to run.

Both adapters keep the framework's own object in turn metadata, byte for byte, and a readable
rendering in the turn's ``content``, so the transcript stays useful to every other reader
(pruning, the HTTP API, the Temporal UI) while the framework gets back exactly what it stored.
Adding items is one ``SessionManager.add_turns`` update per call; ``pop_item`` is one atomic
``pop_turn`` and ``clear`` moves the transcript's head (``truncate``): the turn log stays
append-only. Both adapters may be called from any event loop or thread (``_loops``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from durable_sessions.adapters.langchain import DurableChatMessageHistory
    from durable_sessions.adapters.openai_agents import DurableAgentsSession

__all__ = ["DurableAgentsSession", "DurableChatMessageHistory"]

_LAZY = {
    "DurableAgentsSession": "durable_sessions.adapters.openai_agents",
    "DurableChatMessageHistory": "durable_sessions.adapters.langchain",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

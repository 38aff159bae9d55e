"""``durable-sessions recall --user U "query"``: recall over a user's sessions from the shell.

Prints one line per hit, best first (``score  session [seq] role: content``), or the hits as
JSON with ``--json``. A store without a full-text index fails with ``RecallUnavailableError``
(exit status 1), like every other typed error of the CLI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

__all__ = ["add_recall_parser", "run_recall"]


def add_recall_parser(sub: Any) -> None:
    """Add the ``recall`` command to the CLI's subcommands."""
    p: argparse.ArgumentParser = sub.add_parser(
        "recall", help="the turns of a user's sessions most relevant to a query"
    )
    p.add_argument("query")
    p.add_argument("--user", required=True)
    p.add_argument("--limit", type=int, default=20, help="most hits (1-200, default 20)")
    p.add_argument(
        "--session", action="append", dest="sessions", help="search only this session (repeat)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run_recall(args: argparse.Namespace) -> None:
    from durable_sessions.cli import _with_manager

    async def run(m: Any) -> Any:
        return await m.recall(args.user, args.query, limit=args.limit, sessions=args.sessions)

    hits = asyncio.run(_with_manager(run))
    if args.json:
        print(json.dumps([h.model_dump(mode="json") for h in hits], ensure_ascii=False, indent=2))
        return
    for h in hits:
        who = h.turn.role if not h.turn.agent else f"{h.turn.role}:{h.turn.agent}"
        print(f"{h.score:8.3f}  {h.session_id} [{h.seq}] {who}: {h.turn.content}")
    if not hits:
        print("(none)")

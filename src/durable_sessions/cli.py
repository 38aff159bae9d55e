"""The ``durable-sessions`` command line.

``dev`` runs the embedded stack, ``worker`` a production worker, ``db upgrade`` the store's
migrations, and ``session ...`` talks to a running stack (human-readable output, ``--json`` for
scripts). Settings come from ``DURABLE_SESSIONS_*`` environment variables only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from durable_sessions._cli_recall import add_recall_parser, run_recall
from durable_sessions._process import run_as_process
from durable_sessions.config import Settings
from durable_sessions.errors import SessionError, TemporalUnavailableError
from durable_sessions.models import SessionState, SessionStatus, SessionTurn

__all__ = ["build_parser", "main"]


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


def _print_state(state: SessionState) -> None:
    print(f"session   {state.session_id}")
    print(f"user      {state.user_id}")
    print(f"status    {state.status.value}")
    print(f"turns     {state.turn_count}  tokens {state.total_tokens}  cost {state.total_cost:g}")
    if state.parent_session_id:
        print(f"branch    {state.branch_name} of {state.parent_session_id} at {state.fork_seq}")
    if state.expires_at:
        print(f"expires   {state.expires_at.isoformat()}")
    if state.metadata:
        print(f"metadata  {json.dumps(state.metadata, ensure_ascii=False)}")


def _print_turn(turn: SessionTurn) -> None:
    who = turn.role if not turn.agent else f"{turn.role}:{turn.agent}"
    print(f"[{turn.seq}] {who}: {turn.content}")


def _output(args: argparse.Namespace, value: Any) -> None:
    if args.json:
        print(json.dumps(_dump(value), ensure_ascii=False, indent=2))
        return
    if isinstance(value, SessionState):
        _print_state(value)
    elif isinstance(value, SessionTurn):
        _print_turn(value)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, SessionState):
                print(
                    f"{item.session_id}  {item.status.value:<9} turns={item.turn_count:<5} "
                    f"created={item.created_at.isoformat(timespec='seconds')}"
                )
            elif isinstance(item, SessionTurn):
                _print_turn(item)
            else:
                print(_dump(item))
        if not value:
            print("(none)")
    elif isinstance(value, BaseModel):
        for key, val in value.model_dump(mode="json").items():
            print(f"{key:<24} {val}")
    elif value is not None:
        print(value)


def _id_only(args: argparse.Namespace) -> bool:
    """``session create`` prints just the id with ``-q`` or when its output is not a terminal
    (a pipe or ``$(...)``); ``--json`` still prints the whole state."""
    return bool(args.quiet) or (not args.json and not sys.stdout.isatty())


async def _with_manager(call: Callable[[Any], Awaitable[Any]]) -> Any:
    from durable_sessions.client import SessionManager
    from durable_sessions.runtime import client_from_settings, store_from_settings

    settings = Settings()
    store = store_from_settings(settings)
    await store.setup()
    try:
        try:
            client = await client_from_settings(settings)
        except TemporalUnavailableError as exc:
            raise SystemExit(f"error: {exc}") from None
        manager = SessionManager(
            client, store, task_queue=settings.task_queue, call_timeout=settings.call_timeout
        )
        return await call(manager)
    finally:
        await store.close()


async def _branch_command(m: Any, args: argparse.Namespace) -> Any:
    from durable_sessions.branches import BranchManager
    from durable_sessions.core.merging import AppendMerge, SelectiveMerge

    b = BranchManager(m)
    cmd = args.session_command
    if cmd == "branch":
        return await b.create_branch(
            args.session_id, args.name, args.from_checkpoint, at_seq=args.at_seq
        )
    if cmd == "merge":
        strategy: Any = AppendMerge()
        if args.strategy == "selective":
            strategy = SelectiveMerge(turn_ids=args.turn_ids or [])
        return await b.merge(args.source_id, args.target_id, strategy)
    lineage = await b.lineage(args.session_id)
    if args.json:
        if cmd == "branches":
            return await b.list_branches(args.session_id)
        return lineage.ancestors
    root = lineage.ancestors[0] if (cmd == "lineage" and lineage.ancestors) else None
    tree = (await b.lineage(root.session_id)).tree if root else lineage.tree
    return "\n".join(tree.render())


def _session_command(args: argparse.Namespace) -> Any:
    cmd = args.session_command

    async def run(m: Any) -> Any:
        if cmd == "create":
            meta = json.loads(args.metadata) if args.metadata else None
            return await m.create(args.user, meta, session_id=args.session_id, ttl=args.ttl)
        if cmd == "add":
            turn = SessionTurn(
                role=args.role,
                content=args.content,
                **({"turn_id": args.turn_id} if args.turn_id else {}),
                agent=args.agent,
            )
            return await m.add_turn(args.session_id, turn)
        if cmd == "show":
            return await m.get(args.session_id)
        if cmd == "history":
            return await m.history(args.session_id, args.offset, args.limit)
        if cmd in ("suspend", "resume", "close", "checkpoint"):
            return await getattr(m, cmd)(args.session_id)
        if cmd == "checkpoints":
            return await m.list_checkpoints(args.session_id)
        if cmd == "restore":
            return await m.restore(args.checkpoint_id)
        if cmd == "delete":
            await m.delete(args.session_id)
            return f"deleted {args.session_id}"
        if cmd == "list":
            status = SessionStatus(args.status) if args.status else None
            return await m.list_sessions(args.user, status)
        if cmd == "stats":
            return await m.store.get_stats(args.user)
        if cmd in ("branch", "branches", "lineage", "merge"):
            return await _branch_command(m, args)
        if cmd == "edit":
            return await m.edit(
                args.session_id, args.seq, args.content, mode=args.mode, name=args.name
            )
        if cmd == "regenerate":
            return await m.regenerate(args.session_id, agent=args.agent, role=args.role)
        if cmd == "watch":
            from durable_sessions._cli_watch import watch_session

            await watch_session(m, args.session_id, after_seq=args.after_seq, as_json=args.json)
            return None
        raise SystemExit(f"unknown session command {cmd}")

    return asyncio.run(_with_manager(run))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="durable-sessions", description="Durable AI conversation sessions on Temporal."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run the embedded stack: Temporal dev server + worker")
    dev.add_argument("--port", type=int, default=7233)
    dev.add_argument("--ui-port", type=int, default=8233)
    dev.add_argument("--headless", action="store_true", help="no Temporal UI")
    dev.add_argument("--http-port", type=int, default=8000, help="HTTP API port (default 8000)")
    dev.add_argument("--no-http", action="store_true", help="do not serve the HTTP API")

    sub.add_parser("worker", help="run a worker from DURABLE_SESSIONS_* settings")
    serve = sub.add_parser("serve", help="run the HTTP API from DURABLE_SESSIONS_* settings")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, help="default: DURABLE_SESSIONS_HTTP_PORT (8000)")

    add_recall_parser(sub)

    db = sub.add_parser("db", help="store administration")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply the store's schema migrations")

    session = sub.add_parser("session", help="talk to sessions on a running stack")
    ss = session.add_subparsers(dest="session_command", required=True)

    def cmd(name: str, help: str) -> argparse.ArgumentParser:
        p = ss.add_parser(name, help=help)
        p.add_argument("--json", action="store_true", help="machine-readable output")
        return p

    p = cmd("create", "create a session")
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print only the session id (the default when stdout is not a terminal)",
    )
    p.add_argument("--user", required=True)
    p.add_argument("--metadata", help="JSON object")
    p.add_argument("--session-id")
    p.add_argument("--ttl", type=float, help="idle TTL in seconds")
    p = cmd("add", "add a turn")
    p.add_argument("session_id")
    p.add_argument("content")
    p.add_argument("--role", default="user", choices=["system", "user", "assistant", "tool"])
    p.add_argument("--turn-id")
    p.add_argument("--agent")
    for name, help in [
        ("show", "show a session"),
        ("suspend", "suspend a session"),
        ("resume", "resume a session"),
        ("close", "close a session"),
        ("checkpoint", "write a checkpoint"),
        ("checkpoints", "list checkpoints"),
        ("delete", "delete a session and all its data"),
    ]:
        cmd(name, help).add_argument("session_id")
    p = cmd("history", "print the transcript")
    p.add_argument("session_id")
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--limit", type=int)
    cmd("restore", "restore a checkpoint").add_argument("checkpoint_id")
    p = cmd("list", "list a user's sessions")
    p.add_argument("--user", required=True)
    p.add_argument("--status", choices=[s.value for s in SessionStatus])
    p = cmd("stats", "session statistics")
    p.add_argument("--user")
    p = cmd("branch", "fork a branch of a session")
    p.add_argument("session_id")
    p.add_argument("--name", required=True)
    p.add_argument("--from-checkpoint")
    p.add_argument("--at-seq", type=int, help="fork after the first N turns (any turn)")
    cmd("branches", "a session's branches, as a tree").add_argument("session_id")
    cmd("lineage", "the whole tree a session belongs to").add_argument("session_id")
    p = cmd("merge", "merge a branch's turns into a target session")
    p.add_argument("source_id")
    p.add_argument("target_id")
    p.add_argument("--strategy", choices=["append", "selective"], default="append")
    p.add_argument("--turn-ids", nargs="*", help="for --strategy selective")
    p = cmd("edit", "edit turn SEQ: as a new branch (default) or by rewinding the session")
    p.add_argument("session_id")
    p.add_argument("seq", type=int)
    p.add_argument("content")
    p.add_argument("--mode", choices=["branch", "rewind"], default="branch")
    p.add_argument("--name", help="the branch's name (--mode branch)")
    p = cmd("regenerate", "drop the last assistant turn and run an agent again")
    p.add_argument("session_id")
    p.add_argument("--agent", required=True, help="an agent registered on the workers")
    p.add_argument("--role", default="assistant")
    p = cmd("watch", "print a session's live events (streamed turns as they are written)")
    p.add_argument("session_id")
    p.add_argument("--after-seq", type=int, default=-1, help="only turns after this seq")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """The ``durable-sessions`` command. Without ``argv`` (the console script, ``python -m``)
    it is the whole process and ends it without interpreter finalization
    (``_process.run_as_process``); with ``argv`` it returns or raises ``SystemExit`` as usual."""
    if argv is None:
        run_as_process(lambda: _main(None))
    _main(argv)


def _main(argv: Sequence[str] | None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    try:
        if args.command == "dev":
            from durable_sessions.dev import run_dev

            http_port = None if args.no_http else args.http_port
            asyncio.run(
                run_dev(args.port, args.ui_port, headless=args.headless, http_port=http_port)
            )
        elif args.command == "serve":
            from durable_sessions.http.server import run_server

            asyncio.run(run_server(host=args.host, port=args.port))
        elif args.command == "worker":
            from durable_sessions.worker import main as worker_main

            worker_main()
        elif args.command == "db":
            from durable_sessions.runtime import store_from_settings

            async def upgrade() -> None:
                store = store_from_settings(Settings())
                await store.setup()
                await store.close()
                print("schema up to date")

            asyncio.run(upgrade())
        elif args.command == "recall":
            run_recall(args)
        elif args.command == "session":
            result = _session_command(args)
            if args.session_command == "create" and _id_only(args):
                print(result.session_id)  # for `id=$(durable-sessions session create ...)`
            elif args.session_command != "watch":  # watch printed as it went
                _output(args, result)
    except SessionError as exc:
        print(f"error: {type(exc).__name__}: {exc.message}", file=sys.stderr)
        raise SystemExit(1) from None
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
        print(f"error: invalid {fields}: {exc.errors()[0]['msg']}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()

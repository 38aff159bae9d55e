"""``durable-sessions session watch ID``: print a session's live events as they come.

Streamed text is printed as it is written (after ``[streaming] agent:``; another event in the
middle gets its own line, then the text goes on after a new prefix); a ``restart``
prints a note and the turn starts over; the stored turn is printed once the session has it.
``--json`` prints one JSON object per event (``{"event", "id", "data"}``).
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

__all__ = ["watch_session"]


async def watch_session(
    manager: Any, session_id: str, *, after_seq: int, as_json: bool, out: TextIO | None = None
) -> None:
    out = out or sys.stdout
    streaming: str | None = None
    async for event in manager.stream(session_id, after_seq=after_seq):
        if as_json:
            line = {"event": event.kind, "id": event.id, "data": event.data}
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
            out.flush()
            continue
        data = event.data
        if streaming is not None and event.kind not in ("delta", "restart", "done"):
            out.write("\n")  # another event in the middle of a streamed turn: its own line
            streaming = None
        if event.kind == "delta":
            if streaming != data["turn_id"]:
                streaming = data["turn_id"]
                out.write(f"[streaming] {data['agent']}: ")
            out.write(data["text"])
        elif event.kind == "restart":
            out.write(f"\n[restart] {data['agent']}: attempt {data['attempt']}, from the top\n")
            streaming = None
        elif event.kind == "done":
            out.write("\n")
            streaming = None
        elif event.kind == "turn":
            who = data["role"] if not data.get("agent") else f"{data['role']}:{data['agent']}"
            out.write(f"[{data['seq']}] {who}: {data['content']}\n")
        elif event.kind == "status":
            out.write(f"[status] {data['status']}  turns={data['turn_count']}\n")
        elif event.kind == "rewind":
            out.write(f"[rewind] to {data['turn_count']} turns\n")
        elif event.kind == "branch":
            out.write(f"[branch] {data.get('branch_name')}  {data['session_id']}\n")
        elif event.kind == "error":
            out.write(f"[error] {data['code']}: {data['message']}\n")
        out.flush()

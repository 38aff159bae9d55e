"""Load the LoCoMo development half (``../shared/data/locomo-dev``) as session turns.

LoCoMo (snap-research/locomo) holds long multi-session conversations between two people, with
questions whose ``evidence`` names the turns (``dia_id``) that answer them. Each conversation
becomes one transcript: the first speaker's turns are ``user`` turns, the second's
``assistant`` turns, the content is ``"{speaker}: {text}"`` plus ``" [image: {caption}]"`` when
the turn shares an image, and every turn's ``timestamp`` is its session's ``date_time``, as it
would be in a live session. ``metadata["session"]`` is the LoCoMo session number, so a
cross-session benchmark can split a conversation into one durable session per LoCoMo session.

Only the turns are read: the data set's summaries, observations and event annotations are not
something a live session would have.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from durable_sessions.models import SessionTurn

DEFAULT_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "locomo-dev"
"""``../shared/data/locomo-dev`` relative to the repository root."""

_DATE_RE = re.compile(r"(\d{1,2}):(\d{2})\s*([ap]m)\s+on\s+(\d{1,2})\s+(\w+),?\s+(\d{4})", re.I)
_MONTHS = {datetime(2000, i, 1).strftime("%B").lower(): i for i in range(1, 13)}


def parse_date_time(text: str) -> datetime:
    """Parse LoCoMo's ``"1:56 pm on 8 May, 2023"`` as a UTC datetime.

    Raises:
        ValueError: If the text is not in that form.
    """
    match = _DATE_RE.search(text)
    if match is None:
        raise ValueError(f"unrecognised LoCoMo date_time {text!r}")
    hour, minute, half, day, month, year = match.groups()
    h = int(hour) % 12 + (12 if half.lower() == "pm" else 0)
    return datetime(int(year), _MONTHS[month.lower()], int(day), h, int(minute), tzinfo=UTC)


@dataclass
class Question:
    text: str
    category: int
    evidence: list[int]
    """Indexes into the conversation's ``turns`` of the evidence turns (unknown ids dropped)."""


@dataclass
class Conversation:
    name: str
    turns: list[SessionTurn]
    questions: list[Question] = field(default_factory=list)


def data_dir() -> Path | None:
    """The LoCoMo directory (``$LOCOMO_DIR`` or the default), or ``None`` when absent."""
    path = Path(os.environ.get("LOCOMO_DIR", DEFAULT_DIR))
    return path if path.is_dir() and any(path.glob("*.json")) else None


def load_conversation(path: Path) -> Conversation:
    """One LoCoMo conversation file as turns and questions (only questions with evidence)."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    speakers = {raw["speaker_a"]: "user", raw["speaker_b"]: "assistant"}
    turns: list[SessionTurn] = []
    index: dict[str, int] = {}
    n = 1
    while f"session_{n}" in raw:
        when = parse_date_time(raw[f"session_{n}_date_time"])
        for item in raw[f"session_{n}"]:
            text = f"{item['speaker']}: {item['text']}"
            if item.get("blip_caption"):
                text += f" [image: {item['blip_caption']}]"
            index[item["dia_id"]] = len(turns)
            turns.append(
                SessionTurn(
                    turn_id=f"{path.stem}-{item['dia_id']}",
                    role=speakers.get(item["speaker"], "user"),
                    content=text,
                    timestamp=when,
                    metadata={"session": n, "dia_id": item["dia_id"]},
                    seq=len(turns),
                )
            )
        n += 1
    questions = []
    for qa in raw.get("qa", []):
        ids = [part.strip() for e in qa.get("evidence") or [] for part in str(e).split(";")]
        evidence = sorted({index[e] for e in ids if e in index})
        if evidence:
            questions.append(Question(str(qa["question"]), int(qa["category"]), evidence))
    return Conversation(path.stem, turns, questions)


def load(directory: Path | None = None) -> list[Conversation]:
    """Every conversation in the directory, by file name; ``[]`` when it does not exist."""
    directory = directory or data_dir()
    if directory is None or not directory.is_dir():
        return []
    return [load_conversation(p) for p in sorted(directory.glob("*.json"))]

"""Dates named in a query, and how close each turn's date is to them.

A question such as "What did Maria donate in December 2023?" or "... on 3 June, 2023?" is about
what was said around that time. Each turn carries the time it was said (``turn.timestamp``), so
the relevance pruner raises the relevance of turns said within (or shortly after) the named
period; a turn said long after is still found by its words, only without the boost.
"""

from __future__ import annotations

import re
from datetime import date
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["date_affinity", "query_date_ranges"]

_MONTH_NAMES: Final = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_MONTHS: Final[dict[str, int]] = {
    **{name: i for i, name in enumerate(_MONTH_NAMES, start=1)},
    **{name[:3]: i for i, name in enumerate(_MONTH_NAMES, start=1)},
    "sept": 9,
}
_M: Final = r"(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAY_MONTH_YEAR: Final = re.compile(
    rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_M},?\s+(\d{{4}})\b", re.I
)
_MONTH_DAY_YEAR: Final = re.compile(rf"\b{_M}\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", re.I)
_MONTH_YEAR: Final = re.compile(rf"\b{_M},?\s+(\d{{4}})\b", re.I)
_ISO: Final = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")

AFTER_HALF_LIFE_DAYS: Final = 7.0
"""Days after the named period at which a turn's date affinity halves: people talk about what
they did in the days after they did it ("last week I ...")."""
BEFORE_HALF_LIFE_DAYS: Final = 2.0
"""Days before the named period at which the affinity halves (plans made shortly before)."""


def _day(year: int, month: int, day: int) -> int | None:
    try:
        return date(year, month, day).toordinal()
    except ValueError:
        return None


def query_date_ranges(text: str) -> list[tuple[int, int]]:
    """The calendar periods named in a text, as inclusive ``(first, last)`` day ordinals.

    Understands "3 June, 2023", "June 3rd 2023", "2023-06-03" (one day) and "June 2023" (the
    month). Relative phrases ("last week") and dates without a year are ignored.

    Args:
        text: Usually the query.

    Returns:
        The periods in the order found (full dates first), possibly empty.
    """
    found: list[tuple[int, int]] = []
    spans: list[tuple[int, int]] = []
    for match in _ISO.finditer(text):
        day = _day(int(match[1]), int(match[2]), int(match[3]))
        if day is not None:
            found.append((day, day))
            spans.append(match.span())
    for pattern, order in ((_DAY_MONTH_YEAR, (3, 2, 1)), (_MONTH_DAY_YEAR, (3, 1, 2))):
        for match in pattern.finditer(text):
            y, m, d = (match[i] for i in order)
            day = _day(int(y), _MONTHS[m.lower()], int(d))
            if day is not None:
                found.append((day, day))
                spans.append(match.span())
    for match in _MONTH_YEAR.finditer(text):
        if any(a <= match.start() < b for a, b in spans):
            continue  # the month and year of a full date already found
        year, month = int(match[2]), _MONTHS[match[1].lower()]
        first = date(year, month, 1).toordinal()
        last = date(year + month // 12, month % 12 + 1, 1).toordinal() - 1
        found.append((first, last))
    return found


def date_affinity(
    days: npt.NDArray[np.float64], ranges: list[tuple[int, int]]
) -> npt.NDArray[np.float64]:
    """How close each turn's day is to the nearest named period, in ``[0, 1]``.

    1 inside a period, halving every :data:`AFTER_HALF_LIFE_DAYS` after it and every
    :data:`BEFORE_HALF_LIFE_DAYS` before it.

    Args:
        days: Each turn's day ordinal.
        ranges: Periods from :func:`query_date_ranges` (not empty).

    Returns:
        One affinity per turn.
    """
    import numpy as np

    best = np.zeros(days.shape, dtype=np.float64)
    for first, last in ranges:
        after = np.clip(days - last, 0.0, None) / AFTER_HALF_LIFE_DAYS
        before = np.clip(first - days, 0.0, None) / BEFORE_HALF_LIFE_DAYS
        np.maximum(best, np.exp2(-(after + before)), out=best)
    return best

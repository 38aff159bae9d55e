"""The one place outside workflows that reads the wall clock (workflows use ``workflow.now()``)."""

from datetime import UTC, datetime

__all__ = ["utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)

"""Temporal workflows: orchestration only; decisions live in ``durable_sessions.core``."""

__all__: list[str] = []

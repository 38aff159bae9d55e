"""Temporal activities: all I/O of the workflows, as methods of classes holding their deps."""

__all__: list[str] = []

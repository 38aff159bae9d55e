"""Pure logic: no I/O, no Temporal import. Used by workflows, activities and clients alike."""

__all__: list[str] = []

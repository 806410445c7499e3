"""Free-text search as LIKE patterns, spelled the same for PostgreSQL and ClickHouse."""

from __future__ import annotations

__all__ = ["like_pattern"]


def like_pattern(text: str) -> str:
    """A pattern finding ``text`` anywhere, its ``%``, ``_`` and ``\\`` taken literally.

    Both stores read a backslash in a LIKE pattern as the escape character (PostgreSQL's
    default ESCAPE, ClickHouse's only one).
    """
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"

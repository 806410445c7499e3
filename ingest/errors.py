"""The errors the ingest package raises: one for a file or format it cannot use, one for a row."""

from __future__ import annotations

__all__ = ["FormatError", "IngestError", "RowError"]


class IngestError(ValueError):
    """A file cannot be ingested at all; the message names the file and what is wrong with it."""


class FormatError(IngestError):
    """A format file (TOML) is missing, malformed or names something unknown."""


class RowError(ValueError):
    """One record cannot become an alert; the message names the field and the bad value.

    It never leaves the package: the row is written to the rejects file and the load goes on.
    """

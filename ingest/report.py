"""What an ingest did: counts per file and in total, returned to the caller (the CLI prints it)."""

from __future__ import annotations

import msgspec

__all__ = ["FileReport", "IngestReport"]

# The report names every duplicate id up to this many; the count is always exact.
DUPLICATES_LISTED = 1_000


class FileReport(msgspec.Struct, kw_only=True):
    """One file's outcome. ``read`` = inserted + updated + unchanged + rejected + duplicates.

    ``duplicates`` counts rows that a later row with the same alert_id replaced (last row wins);
    ``duplicate_ids`` names those ids, each once, in the order their first superseded row came.
    """

    path: str
    source_format: str
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    duplicates: int = 0
    duplicate_ids: list[str] = []
    rejects_path: str | None = None
    elapsed_seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.read / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0


class IngestReport(msgspec.Struct, kw_only=True):
    """The outcome of one ``ingest_files`` call: totals, then the per-file breakdown."""

    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    duplicates: int = 0
    duplicate_ids: list[str] = []
    rejects_paths: list[str] = []
    elapsed_seconds: float = 0.0
    files: list[FileReport] = []

    @classmethod
    def of(cls, files: list[FileReport], elapsed_seconds: float) -> IngestReport:
        """Totals added up from ``files``."""
        paths = [f.rejects_path for f in files if f.rejects_path is not None]
        return cls(
            read=sum(f.read for f in files),
            inserted=sum(f.inserted for f in files),
            updated=sum(f.updated for f in files),
            unchanged=sum(f.unchanged for f in files),
            rejected=sum(f.rejected for f in files),
            duplicates=sum(f.duplicates for f in files),
            duplicate_ids=[i for f in files for i in f.duplicate_ids][:DUPLICATES_LISTED],
            rejects_paths=list(dict.fromkeys(paths)),
            elapsed_seconds=elapsed_seconds,
            files=files,
        )

    @property
    def rejects_path(self) -> str | None:
        """The rejects file when there is one (several files with default paths: the first)."""
        return self.rejects_paths[0] if self.rejects_paths else None

    @property
    def rows_per_second(self) -> float:
        return self.read / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    def summary(self) -> str:
        """One line for people: what happened to the rows, how fast, where the rejects are."""
        noun = "file" if len(self.files) == 1 else "files"
        text = (
            f"{len(self.files)} {noun}: read {self.read:,}, inserted {self.inserted:,},"
            f" updated {self.updated:,}, unchanged {self.unchanged:,},"
            f" rejected {self.rejected:,}, duplicates {self.duplicates:,}"
            f" in {self.elapsed_seconds:.1f} s ({self.rows_per_second:,.0f} rows/s)"
        )
        if self.rejects_paths:
            text += f"; rejects in {', '.join(self.rejects_paths)}"
        return text

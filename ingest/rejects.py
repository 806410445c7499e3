"""The rejects file: one CSV line per record that did not become an alert, and why."""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import IO, Any

import msgspec

__all__ = ["REJECT_COLUMNS", "RejectWriter", "default_rejects_path"]

logger = logging.getLogger(__name__)

REJECT_COLUMNS = ("file", "line", "reason", "record")


def default_rejects_path(source: Path) -> Path:
    """``<file>.rejects.csv`` beside the input when that folder is writable, else in the cwd."""
    name = f"{source.name}.rejects.csv"
    if _writable(source.parent):
        return source.parent / name
    return Path.cwd() / name


def _writable(folder: Path) -> bool:
    # root passes os.access everywhere; a folder whose write bits were taken away (a shared,
    # read-only data folder) is left alone all the same.
    try:
        has_write_bit = bool(folder.stat().st_mode & 0o222)
    except OSError:
        return False
    return has_write_bit and os.access(folder, os.W_OK)


class RejectWriter:
    """Writes rejects to ``path``, creating the file only when the first reject comes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._handle: IO[str] | None = None
        self._writer: Any = None

    def write(self, file: str, line: int, reason: str, record: dict[str, Any] | None) -> None:
        if self._writer is None:
            self._open()

        shown = msgspec.json.encode(record, enc_hook=str).decode() if record else ""
        self._writer.writerow((file, line, reason, shown))
        self.count += 1

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            logger.info("wrote %d rejects to %s", self.count, self.path)
        self._handle = None
        self._writer = None

    @property
    def written(self) -> bool:
        return self.count > 0

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._handle)
        self._writer.writerow(REJECT_COLUMNS)

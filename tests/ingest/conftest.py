"""Helpers for the ingest tests: writing small input files and reading alerts back."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from workflow.db import Database

NATIVE_HEADER = "alert_id,company_name,violation_type,severity,status,amount,region,detected_at"

WriteFile = Callable[..., Path]
Alerts = Callable[[], dict[str, dict[str, Any]]]


@pytest.fixture
def write_file(tmp_path: Path) -> WriteFile:
    """Writes lines (joined by ``newline``) to a file in tmp_path; returns its path."""

    def write(name: str, lines: list[str], *, newline: str = "\n", bom: bool = False) -> Path:
        path = tmp_path / name
        text = newline.join(lines) + newline
        path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
        return path

    return write


@pytest.fixture
def alerts(db: Database) -> Alerts:
    """All alerts by alert_id, each as a dict of its columns."""

    def read() -> dict[str, dict[str, Any]]:
        with db.reading() as conn:
            cursor = conn.execute("SELECT * FROM alerts")
            names = [column.name for column in cursor.description or []]
            return {row[1]: dict(zip(names, row)) for row in cursor.fetchall()}

    return read


@pytest.fixture
def rejects_of() -> Callable[[Path], list[tuple[int, str]]]:
    """The (line, reason) pairs of a rejects CSV."""
    import csv

    def read(path: Path) -> list[tuple[int, str]]:
        with open(path, encoding="utf-8", newline="") as handle:
            return [(int(row["line"]), row["reason"]) for row in csv.DictReader(handle)]

    return read

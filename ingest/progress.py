"""A one-line progress display on stderr: rows so far and rows per second, redrawn with \\r."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]

_REDRAW_SECONDS = 0.25


class Progress:
    """Counts rows; draws only when enabled and stderr is a terminal, at most 4 times a second."""

    def __init__(self, label: str, *, enabled: bool, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self.label = label
        self.rows = 0
        self._started = time.perf_counter()
        self._drawn = 0.0

    def advance(self, rows: int = 1) -> None:
        self.rows += rows
        if not self.enabled:
            return

        now = time.perf_counter()
        if now - self._drawn >= _REDRAW_SECONDS:
            self._drawn = now
            self._draw(now, "")

    def finish(self, stage: str = "done") -> None:
        if self.enabled:
            self._draw(time.perf_counter(), f" {stage}\n")

    def _draw(self, now: float, end: str) -> None:
        elapsed = max(now - self._started, 1e-9)
        rate = self.rows / elapsed
        self.stream.write(f"\r{self.label}: {self.rows:,} rows  {rate:,.0f} rows/s{end}")
        self.stream.flush()

"""A one-line progress display on stderr: rows so far and rows per second, redrawn with \\r."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]

_REDRAW_SECONDS = 0.25


class Progress:
    """Counts rows of one phase at a time ("read", then "upserted"); draws only when enabled
    and the stream is a terminal, at most four times a second."""

    def __init__(self, label: str, *, enabled: bool, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self.label = label
        self.phase = "read"
        self.rows = 0
        self._started = time.perf_counter()
        self._drawn = 0.0
        self._width = 0

    def advance(self, rows: int = 1) -> None:
        self.rows += rows
        if not self.enabled:
            return

        now = time.perf_counter()
        if now - self._drawn >= _REDRAW_SECONDS:
            self._drawn = now
            self._draw(now, "")

    def start(self, phase: str) -> None:
        """Begin counting a new phase from zero, on the same line."""
        self.phase, self.rows = phase, 0
        self._started = time.perf_counter()
        self._drawn = 0.0

    def finish(self) -> None:
        if self.enabled:
            self._draw(time.perf_counter(), " done\n")
            self._width = 0

    def _draw(self, now: float, end: str) -> None:
        rate = self.rows / max(now - self._started, 1e-9)
        line = f"{self.label}: {self.rows:,} rows {self.phase}  {rate:,.0f} rows/s"
        # Padding to the longest line drawn so far wipes what an earlier one left behind.
        self._width = max(self._width, len(line))
        self.stream.write(f"\r{line.ljust(self._width)}{end}")
        self.stream.flush()

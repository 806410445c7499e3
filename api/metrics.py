"""Counters for the branches that matter, served at /metrics in Prometheus text format."""

from __future__ import annotations

import math
import threading
from collections import defaultdict

__all__ = ["Metrics"]

_HELP = {
    "cache_hits": "Aggregate answers served from the cache.",
    "cache_misses": "Aggregate answers computed because the cache lacked them.",
    "cache_errors": "Redis calls that failed or timed out (the answer was computed instead).",
    "cache_compute_seconds": "Seconds spent computing aggregate answers on misses.",
    "cache_stale": "Stale aggregate answers served because ClickHouse did not answer.",
    "fast_lane_answers": "Cached aggregate answers served before the framework's routing.",
}


class Metrics:
    """Monotonic counters, safe to bump from any thread."""

    def __init__(self) -> None:
        self._values: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    def count(self, name: str, amount: int = 1) -> None:
        self.add(name, amount)

    def add(self, name: str, amount: float) -> None:
        with self._lock:
            self._values[name] += amount

    def value(self, name: str) -> float:
        with self._lock:
            return self._values[name]

    def render(self, gauges: dict[str, tuple[float, str]] | None = None) -> str:
        """The counters (and any gauges given) as Prometheus exposition text."""
        lines: list[str] = []
        with self._lock:
            values = dict(self._values)
        for name in sorted(set(_HELP) | set(values)):
            lines += [
                f"# HELP msd_{name}_total {_HELP.get(name, name)}",
                f"# TYPE msd_{name}_total counter",
                f"msd_{name}_total {_number(values.get(name, 0.0))}",
            ]
        for name, (value, help_text) in sorted((gauges or {}).items()):
            lines += [
                f"# HELP msd_{name} {help_text}",
                f"# TYPE msd_{name} gauge",
                f"msd_{name} {_number(value)}",
            ]
        return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    """Every digit of ``value``: whole numbers (counts, Unix times) as integers, others in full.

    Prometheus reads both; a shortened form would round a count of millions or a timestamp.
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))

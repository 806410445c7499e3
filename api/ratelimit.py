"""Per-credential request limits: a fixed window of N requests per period.

In server mode the counts are shared by every API process through Redis, so the limit holds
for the deployment, not per worker. A process adds its requests to the shared count in small
batches rather than one Redis round trip per request (which halved the throughput of cached
answers): up to ``flush_every`` requests, a hundredth of the limit (one for limits under 200),
are counted locally before they are sent. The limit can so be passed by at most that many
requests per process and window, and is exact for small limits.

When Redis does not answer, each process counts alone (the limit then applies per process)
rather than refusing or letting everything through.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Callable

__all__ = ["RateLimiter"]

logger = logging.getLogger(__name__)

# (key, seconds to keep it, requests to add) -> the shared total, or None without Redis.
SharedCounter = Callable[[str, int, int], int | None]

# Most requests a process counts before sending them to the shared count.
MAX_FLUSH_EVERY = 32
_MAX_WINDOWS = 100_000


class _Window:
    """One key's count in one window: the last shared total seen, and requests not yet sent."""

    __slots__ = ("known", "pending")

    def __init__(self) -> None:
        self.known = 0
        self.pending = 0


class RateLimiter:
    """Counts requests per key in the current window; says how long to wait when over."""

    def __init__(self, limit: tuple[int, int] | None, shared: SharedCounter | None = None) -> None:
        """``limit``: (requests, period in seconds), or None for no limit."""
        self.limit = limit
        self._shared = shared
        self.flush_every = 1 if limit is None else max(1, min(MAX_FLUSH_EVERY, limit[0] // 100))
        self._windows: dict[tuple[str, int], _Window] = {}
        self._guard = threading.Lock()

    def describe(self) -> str:
        if self.limit is None:
            return "no limit"
        return f"{self.limit[0]} requests per {self.limit[1]} s"

    def spend(self, key: str) -> int | None:
        """Count one request for ``key``: None when allowed, else the seconds until allowed."""
        if self.limit is None:
            return None
        now = time.time()
        requests, period = self.limit
        window = int(now // period)
        if self._count(key, window, period) <= requests:
            return None
        window_end = (window + 1) * period
        return max(1, math.ceil(window_end - now))

    def _count(self, key: str, window: int, period: int) -> int:
        """The window's count for ``key`` with this request: shared when it is sent, else the
        last shared total plus this process's requests since."""
        with self._guard:
            counted = self._window(key, window)
            counted.pending += 1
            if self._shared is None or counted.pending < self.flush_every:
                return counted.known + counted.pending
            sending, counted.pending = counted.pending, 0

        total = self._shared(f"ratelimit:{key}:{window}", period + 1, sending)

        with self._guard:
            # No Redis: this process's own requests are all the count it has.
            counted.known = counted.known + sending if total is None else max(counted.known, total)
            return counted.known + counted.pending

    def _window(self, key: str, window: int) -> _Window:
        counted = self._windows.get((key, window))
        if counted is None:
            if len(self._windows) >= _MAX_WINDOWS:
                self._windows = {k: v for k, v in self._windows.items() if k[1] == window}
            counted = self._windows[(key, window)] = _Window()
        return counted

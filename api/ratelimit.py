"""Per-credential request limits: a fixed window of N requests per period.

In server mode the counts are shared by every API process through Redis, so the limit holds
for the deployment, not per worker. When Redis does not answer, each process counts alone (the
limit then applies per process) rather than refusing or letting everything through.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Callable

__all__ = ["RateLimiter"]

logger = logging.getLogger(__name__)

SharedCounter = Callable[[str, int], int | None]


class RateLimiter:
    """Counts requests per key in the current window; says how long to wait when over."""

    def __init__(self, limit: tuple[int, int] | None, shared: SharedCounter | None = None) -> None:
        """``limit``: (requests, period in seconds), or None for no limit."""
        self.limit = limit
        self._shared = shared
        self._local: dict[tuple[str, int], int] = {}
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
        count = self._count_shared(key, window, period)
        if count is None:
            count = self._count_locally(key, window)
        if count <= requests:
            return None
        window_end = (window + 1) * period
        return max(1, math.ceil(window_end - now))

    def _count_shared(self, key: str, window: int, period: int) -> int | None:
        if self._shared is None:
            return None
        return self._shared(f"ratelimit:{key}:{window}", period + 1)

    def _count_locally(self, key: str, window: int) -> int:
        with self._guard:
            if len(self._local) > 100_000:
                self._local = {k: v for k, v in self._local.items() if k[1] == window}
            count = self._local.get((key, window), 0) + 1
            self._local[(key, window)] = count
            return count

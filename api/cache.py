"""The aggregate answer cache: keyed by the replication watermark, so it is never stale.

A key names the endpoint, the normalised parameters and the watermark the answer was computed
at, as ``<question>@<watermark>`` (``answer_key``). When replication moves, new requests ask for
a new key and compute afresh; nothing is ever invalidated by hand. TTLs only bound memory.

ClickHouse down: computing raises ``StoreUnavailableError``. The cache then answers with the last
answer it computed for the same question, at whatever watermark, marked stale (``CacheResult``
says which watermark it reflects and when it was computed), and re-raises when it has none, for
the API to answer 503. During an outage only one compute a second tries ClickHouse; the others
fail over at once instead of each waiting for the store's timeout.

Layers: an in-process LRU in front of Redis (server mode) or alone (embedded). Misses are
coalesced: one request computes a key while the others wait for it, in one process (a lock per
key) and across processes (a short Redis lock). Redis down or slow: answers are computed
uncached, every Redis call has a short timeout, the outage is logged once, and caching resumes by
itself when Redis answers again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from api.metrics import Metrics
from olap.store import StoreUnavailableError

__all__ = ["AnswerCache", "CacheResult", "answer_key"]

logger = logging.getLogger(__name__)

REDIS_TIMEOUT = 0.25
LOCK_SECONDS = 10.0
WAIT_POLL = 0.01
PROBE_EVERY = 1.0
# How long the last answer of each question is kept for serving stale while ClickHouse is down.
LAST_ANSWER_SECONDS = 24 * 3600.0
_NO_ANSWER = object()


def answer_key(question: str, watermark: str) -> str:
    """The cache key of ``question`` (endpoint and normalised parameters) at ``watermark``."""
    return f"{question}@{watermark}"


def _question(key: str) -> str | None:
    question, at, _ = key.rpartition("@")
    return question if at else None


@dataclass
class CacheResult:
    body: bytes
    hit: bool
    # A stale answer: ClickHouse did not answer, so this is the question's last answer, which
    # reflects ``watermark`` (not the current one) and was computed at ``computed_at``.
    stale: bool = False
    watermark: str | None = None
    computed_at: str | None = None

    def headers(self, current_watermark: str) -> dict[str, str]:
        """The response headers saying what the answer reflects and where it came from."""
        if not self.stale:
            return {
                "X-Replication-Watermark": current_watermark,
                "X-Cache": "hit" if self.hit else "miss",
            }
        return {
            "X-Replication-Watermark": self.watermark or "unknown",
            "X-Cache": "stale",
            "X-Computed-At": self.computed_at or "unknown",
            "Warning": '110 - "Response is Stale: ClickHouse is unavailable; figures as of '
            f'replication watermark {self.watermark}, computed at {self.computed_at}"',
        }


@dataclass
class _Local:
    """An LRU of encoded answers with per-entry expiry; thread-safe."""

    capacity: int = 2048
    entries: OrderedDict[str, tuple[float, bytes]] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: str) -> bytes | None:
        with self.lock:
            entry = self.entries.get(key)
            if entry is None:
                return None
            if entry[0] < time.monotonic():
                del self.entries[key]
                return None
            self.entries.move_to_end(key)
            return entry[1]

    def put(self, key: str, body: bytes, ttl: float) -> None:
        with self.lock:
            self.entries[key] = (time.monotonic() + ttl, body)
            self.entries.move_to_end(key)
            while len(self.entries) > self.capacity:
                self.entries.popitem(last=False)


class AnswerCache:
    """Get an answer by key, computing it once when missing."""

    def __init__(
        self, redis_url: str | None, metrics: Metrics, *, prefix: str = "msd:answers:"
    ) -> None:
        self.metrics = metrics
        self.prefix = prefix
        self._local = _Local()
        self._computing: dict[str, threading.Lock] = {}
        self._computing_guard = threading.Lock()
        self._redis = _connect(redis_url) if redis_url else None
        self._redis_down_since: float | None = None
        self._last_probe = 0.0
        self._last_answers = _Local()
        self._store_down: StoreUnavailableError | None = None
        self._store_down_since = 0.0
        self._last_store_probe = 0.0

    @property
    def degraded(self) -> bool:
        """True while Redis is configured but not answering."""
        return self._redis is not None and self._redis_down_since is not None

    def probe(self) -> bool:
        """Ping Redis (at most once a second during an outage); True unless it is degraded."""
        self._remote(lambda r: r.ping())
        return not self.degraded

    def in_memory(self, key: str) -> CacheResult | None:
        """The answer if this process holds it: no I/O, so an event loop may call it."""
        body = self._local.get(key)
        if body is None:
            return None
        self.metrics.count("cache_hits")
        return CacheResult(body, True)

    def get_or_compute(self, key: str, ttl: float, compute: Callable[[], bytes]) -> CacheResult:
        body = self._local.get(key) or self._remote_get(key)
        if body is not None:
            self._local.put(key, body, ttl)
            self.metrics.count("cache_hits")
            return CacheResult(body, True)

        try:
            with self._lock_for(key):
                body = self._local.get(key) or self._remote_get(key)
                if body is not None:
                    self.metrics.count("cache_hits")
                    return CacheResult(body, True)
                self._fail_fast_while_store_down()
                body = self._compute_once_across_processes(key, ttl, compute)
        except StoreUnavailableError as error:
            return self._last_answer_or_raise(key, error)
        return CacheResult(body, False)

    def _fail_fast_while_store_down(self) -> None:
        """During a ClickHouse outage let one compute a second probe it; the rest fail at once."""
        if self._store_down is None:
            return
        now = time.monotonic()
        if now - self._last_store_probe < PROBE_EVERY:
            raise StoreUnavailableError(str(self._store_down))
        self._last_store_probe = now

    def _last_answer_or_raise(self, key: str, error: StoreUnavailableError) -> CacheResult:
        if self._store_down is None:
            self._store_down_since = self._last_store_probe = time.monotonic()
            logger.warning(
                "ClickHouse is not answering (%s); aggregates are served stale or refused", error
            )
        self._store_down = error
        question = _question(key)
        stored = None
        if question is not None:
            stored = self._last_answers.get(question) or self._remote_get("last:" + question)
        if stored is None:
            raise error
        self.metrics.count("cache_stale")
        meta, _, body = stored.partition(b"\n")
        written = json.loads(meta)
        return CacheResult(
            body, False, stale=True, watermark=written["watermark"], computed_at=written["at"]
        )

    def _store_answered(self) -> None:
        if self._store_down is not None:
            logger.warning(
                "ClickHouse answers again after %.1fs; aggregates are fresh again",
                time.monotonic() - self._store_down_since,
            )
            self._store_down = None

    def _lock_for(self, key: str) -> threading.Lock:
        with self._computing_guard:
            if len(self._computing) > 10_000:
                self._computing.clear()  # locks of long-gone keys; a waiter holds its own ref
            return self._computing.setdefault(key, threading.Lock())

    def _compute_once_across_processes(
        self, key: str, ttl: float, compute: Callable[[], bytes]
    ) -> bytes:
        if self._take_remote_lock(key):
            try:
                return self._compute_and_store(key, ttl, compute)
            finally:
                self._remote(lambda r: r.delete(self.prefix + "lock:" + key))
        body = self._wait_for_remote(key)
        if body is not None:
            self._local.put(key, body, ttl)
            self.metrics.count("cache_hits")
            return body
        return self._compute_and_store(key, ttl, compute)

    def _compute_and_store(self, key: str, ttl: float, compute: Callable[[], bytes]) -> bytes:
        started = time.perf_counter()
        body = compute()
        self.metrics.count("cache_misses")
        self.metrics.add("cache_compute_seconds", time.perf_counter() - started)
        self._store_answered()
        self._local.put(key, body, ttl)
        self._remote(lambda r: r.set(self.prefix + key, body, px=int(ttl * 1000)))
        self._keep_as_last_answer(key, body)
        return body

    def _keep_as_last_answer(self, key: str, body: bytes) -> None:
        question = _question(key)
        if question is None:
            return
        meta = {
            "watermark": key[len(question) + 1 :],
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        stored = json.dumps(meta).encode() + b"\n" + body
        self._last_answers.put(question, stored, LAST_ANSWER_SECONDS)
        remote_key = self.prefix + "last:" + question
        self._remote(lambda r: r.set(remote_key, stored, px=int(LAST_ANSWER_SECONDS * 1000)))

    def _take_remote_lock(self, key: str) -> bool:
        if self._redis is None:
            return True
        taken = self._remote(
            lambda r: r.set(
                self.prefix + "lock:" + key, b"1", nx=True, px=int(LOCK_SECONDS * 1000)
            ),
            failed=_NO_ANSWER,
        )
        # No answer from Redis counts as taken: compute here rather than wait on a dead lock.
        # (redis-py answers None, not False, when another process holds the lock.)
        return taken is _NO_ANSWER or taken is True

    def _wait_for_remote(self, key: str) -> bytes | None:
        """The answer another process is computing; None as soon as it gave up (lock gone)."""
        deadline = time.monotonic() + LOCK_SECONDS
        names = [self.prefix + key, self.prefix + "lock:" + key]
        while time.monotonic() < deadline:
            found = self._remote(lambda r: r.mget(names))
            if found is None or self.degraded:
                return None
            body, lock = found
            if body is not None or lock is None:
                return body
            time.sleep(WAIT_POLL)
        return None

    def _remote_get(self, key: str) -> bytes | None:
        if self._redis is None:
            return None
        return self._remote(lambda r: r.get(self.prefix + key))

    def _remote(self, call: Callable, failed: object = None):  # type: ignore[type-arg]
        """Run one Redis call; on failure note the outage (logged once) and return ``failed``."""
        if self._redis is None or self._skip_while_down():
            return failed
        try:
            result = call(self._redis)
        except Exception as error:  # any Redis failure means: serve uncached, never fail
            self._note_outage(error)
            return failed
        if self._redis_down_since is not None:
            logger.warning(
                "Redis answers again after %.1fs; caching resumes",
                time.monotonic() - self._redis_down_since,
            )
            self._redis_down_since = None
        return result

    def _skip_while_down(self) -> bool:
        """During an outage only one call a second probes Redis; the rest skip it at once."""
        if self._redis_down_since is None:
            return False
        now = time.monotonic()
        if now - self._last_probe < PROBE_EVERY:
            return True
        self._last_probe = now
        return False

    def _note_outage(self, error: Exception) -> None:
        self.metrics.count("cache_errors")
        self._last_probe = time.monotonic()
        if self._redis_down_since is None:
            self._redis_down_since = self._last_probe
            logger.warning("Redis is not answering (%s); serving answers uncached", error)

    def count(self, key: str, ttl_seconds: int, amount: int = 1) -> int | None:
        """Add ``amount`` to a counter shared by every process (Redis) and return its total;
        None when there is no Redis."""

        def increment(redis):  # type: ignore[no-untyped-def]
            pipe = redis.pipeline(transaction=False)
            pipe.incrby(self.prefix + key, amount)
            pipe.expire(self.prefix + key, ttl_seconds, nx=True)
            return int(pipe.execute()[0])

        return self._remote(increment)

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()


def _connect(url: str):  # type: ignore[no-untyped-def]
    import redis

    return redis.Redis.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT,
        socket_connect_timeout=REDIS_TIMEOUT,
        retry_on_timeout=False,
        health_check_interval=0,
    )

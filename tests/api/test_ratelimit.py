"""Request limits shared by API processes through the real Redis, and per process without it."""

from __future__ import annotations

import socket
import uuid

from api.cache import AnswerCache
from api.metrics import Metrics
from api.ratelimit import RateLimiter
from tests.api.conftest import start_early_in_a_minute

SHARED_REDIS = "redis://127.0.0.1:6379/0"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_sharing_redis_share_one_limit() -> None:
    prefix = f"msd-test-{uuid.uuid4().hex[:8]}:"
    first_cache = AnswerCache(SHARED_REDIS, Metrics(), prefix=prefix)
    second_cache = AnswerCache(SHARED_REDIS, Metrics(), prefix=prefix)
    first = RateLimiter((5, 60), first_cache.count)
    second = RateLimiter((5, 60), second_cache.count)
    start_early_in_a_minute()

    answers = [(first if n % 2 else second).spend("token:1") for n in range(6)]

    assert answers[:5] == [None] * 5 and answers[5] is not None and 1 <= answers[5] <= 60
    assert first.spend("token:2") is None, "another token has its own count"
    first_cache.close()
    second_cache.close()


def test_a_large_limit_is_shared_in_batches_and_passed_by_at_most_a_batch_per_process() -> None:
    prefix = f"msd-test-{uuid.uuid4().hex[:8]}:"
    caches = [AnswerCache(SHARED_REDIS, Metrics(), prefix=prefix) for _ in range(2)]
    sent: list[int] = []

    def counted(cache: AnswerCache):  # type: ignore[no-untyped-def]
        def count(key: str, ttl: int, amount: int = 1) -> int | None:
            sent.append(amount)
            return cache.count(key, ttl, amount)

        return count

    limiters = [RateLimiter((3000, 60), counted(cache)) for cache in caches]
    start_early_in_a_minute()

    allowed = sum(limiters[n % 2].spend("token:1") is None for n in range(3400))

    batch = limiters[0].flush_every
    assert batch == 30
    assert 3000 <= allowed <= 3000 + 2 * batch, f"{allowed} allowed for a limit of 3000"
    assert len(sent) <= 3400 // batch + 2, f"{len(sent)} Redis calls for 3,400 requests"
    assert sum(sent) <= 3400 and all(amount == batch for amount in sent)
    for cache in caches:
        cache.close()


def test_without_redis_each_process_still_limits_on_its_own() -> None:
    cache = AnswerCache(f"redis://127.0.0.1:{_closed_port()}/0", Metrics())
    limiter = RateLimiter((3, 60), cache.count)
    start_early_in_a_minute()

    answers = [limiter.spend("token:1") for _ in range(4)]

    assert answers[:3] == [None] * 3 and answers[3] is not None
    assert cache.degraded
    cache.close()


def test_no_limit_lets_everything_through() -> None:
    limiter = RateLimiter(None)

    assert all(limiter.spend("token:1") is None for _ in range(10_000))

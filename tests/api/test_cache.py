"""The answer cache: keyed by watermark (never stale), coalesced, and harmless when Redis fails."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import threading
import time
import uuid
from typing import Iterator

import pytest
from litestar.testing import TestClient

from api.app import create_app
from api.cache import AnswerCache
from api.metrics import Metrics
from msd.runtime import Services
from tests.api.conftest import seed_alerts
from workflow import accounts

SHARED_REDIS = "redis://127.0.0.1:6379/0"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def seeded(services: Services) -> Services:
    seed_alerts(services.db, 60)
    services.replicator.drain()
    return services


def test_same_question_is_a_hit_however_it_is_spelled(client: TestClient, seeded: Services):
    first = client.get("/api/alerts/statistics/?severity=HIGH,LOW&region=CA")
    reordered = client.get("/api/alerts/statistics/?region=CA&severity=low&severity=HIGH")
    with_default = client.get("/api/alerts/statistics/?severity=HIGH,LOW&region=CA&days=30")
    other = client.get("/api/alerts/statistics/?severity=HIGH&region=CA")

    assert first.headers["x-cache"] == "miss"
    assert reordered.headers["x-cache"] == with_default.headers["x-cache"] == "hit"
    assert reordered.json() == first.json()
    assert other.headers["x-cache"] == "miss" and other.json() != first.json()


def test_no_cached_figure_survives_a_replicated_write(client: TestClient, seeded: Services):
    before = client.get("/api/alerts/statistics/")
    assert client.get("/api/alerts/statistics/").headers["x-cache"] == "hit"
    with seeded.db.transaction(actor="t", source="test") as conn:
        changed = conn.execute(
            "UPDATE alerts SET severity = 'CRITICAL' WHERE alert_id = 'seed-2'"
            " AND severity <> 'CRITICAL'"
        ).rowcount
    seeded.replicator.drain()

    after = client.get("/api/alerts/statistics/")

    assert changed == 1 and after.headers["x-cache"] == "miss"
    assert after.json()["critical"] == before.json()["critical"] + 1


def test_metrics_count_hits_and_misses(client: TestClient, seeded: Services) -> None:
    for _ in range(3):
        client.get("/api/alerts/risk_trends/")

    text = client.get("/metrics").text

    assert "msd_cache_misses_total 1" in text and "msd_cache_hits_total 2" in text
    assert "msd_replicated_events" in text


def _concurrent_misses(caches: list[AnswerCache], key: str, threads: int) -> int:
    computed = []
    barrier = threading.Barrier(threads)

    def compute() -> bytes:
        computed.append(1)
        time.sleep(0.3)
        return b'{"total": 1}'

    def ask(cache: AnswerCache) -> None:
        barrier.wait()
        assert cache.get_or_compute(key, 60, compute).body == b'{"total": 1}'

    workers = [
        threading.Thread(target=ask, args=(caches[i % len(caches)],)) for i in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return len(computed)


def test_fifty_concurrent_misses_compute_once_in_one_process() -> None:
    cache = AnswerCache(None, Metrics())

    assert _concurrent_misses([cache], "statistics:k1", 50) == 1


def test_fifty_concurrent_misses_compute_once_across_workers_sharing_redis() -> None:
    prefix = f"msd-test-{uuid.uuid4().hex[:8]}:"
    workers = [AnswerCache(SHARED_REDIS, Metrics(), prefix=prefix) for _ in range(2)]
    try:
        assert _concurrent_misses(workers, "statistics:k2", 50) == 1
    finally:
        workers[0]._remote(lambda r: [r.delete(k) for k in r.scan_iter(prefix + "*")])
        for cache in workers:
            cache.close()


@pytest.fixture
def private_redis(tmp_path) -> Iterator[dict]:
    """A Redis server of this test's own, so that it can be stopped and started again."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is needed for the outage test (Debian package redis-server)")
    port = _free_port()
    command = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(tmp_path),
    ]
    state = {"url": f"redis://127.0.0.1:{port}/0", "command": command, "process": None}

    def start() -> None:
        state["process"] = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError("private redis-server did not start")

    def stop() -> None:
        state["process"].terminate()
        state["process"].wait(timeout=10)

    state["start"], state["stop"] = start, stop
    start()
    yield state
    if state["process"].poll() is None:
        stop()


def test_redis_outage_serves_uncached_logs_once_and_recovers(
    private_redis: dict, caplog: pytest.LogCaptureFixture
) -> None:
    cache = AnswerCache(private_redis["url"], Metrics())
    assert cache.get_or_compute("k", 60, lambda: b"1").hit is False
    assert cache._remote_get("k") == b"1"

    private_redis["stop"]()
    with caplog.at_level(logging.WARNING, logger="api.cache"):
        started = time.monotonic()
        answers = [cache.get_or_compute(f"down-{i}", 60, lambda: b"2") for i in range(20)]
        elapsed = time.monotonic() - started
    outage_lines = [r for r in caplog.records if "not answering" in r.getMessage()]

    assert all(a.body == b"2" and not a.hit for a in answers)
    assert cache.degraded and len(outage_lines) == 1
    assert elapsed < 3.0, "each Redis call is bounded and skipped while Redis is down"

    private_redis["start"]()
    time.sleep(1.1)
    cache.get_or_compute("back", 60, lambda: b"3")
    assert not cache.degraded and cache._remote_get("back") == b"3"
    cache.close()


def test_health_says_degraded_while_redis_is_away(services: Services) -> None:
    closed_port = _free_port()
    services.settings = type(services.settings)(
        **{**services.settings.__dict__, "redis_url": f"redis://127.0.0.1:{closed_port}/0"}
    )
    _, token = accounts.create_token(services.db, "tests", "viewer")
    with TestClient(create_app(services)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        client.get("/api/alerts/statistics/")
        health = client.get("/health").json()
        stats = client.get("/api/alerts/statistics/")

    assert health["status"] == "degraded" and health["cache"] == "degraded"
    assert stats.status_code == 200


def test_cache_key_of_new_filters_ignores_order_and_keeps_distinct_values_apart() -> None:
    from api.aggregate_routes import cache_key
    from olap.queries import Filters, window_for_days

    window = window_for_days(30, "UTC")

    def key(**filters: object) -> str:
        asked = Filters(**filters)  # type: ignore[arg-type]
        return cache_key("statistics", window, asked, "7:100")

    same = [
        key(company=("ACME BANK, N.A.", "東京銀行"), violation_type=("b", "a")),
        key(company=("東京銀行", "ACME BANK, N.A."), violation_type=("a", "b")),
    ]
    distinct = [
        key(),
        key(company=("ACME BANK, N.A.",)),
        key(company=("ACME BANK", "N.A.")),  # a comma inside one name is not two names
        key(company=("ACME BANK,N.A.",)),
        key(violation_type=("ACME BANK, N.A.",)),
        key(q="ACME BANK, N.A."),
        key(q="acme"),
        key(q="Acme"),
        key(q=""),
        key(region=("ACME BANK, N.A.",)),
    ]
    assert same[0] == same[1]
    assert len(set(distinct)) == len(distinct)
    assert key(q="x") != cache_key("regions", window, Filters(q="x"), "7:100")


def test_new_filters_in_any_order_are_one_cache_entry(client: TestClient, seeded: Services):
    first = client.get(
        "/api/alerts/top_companies/?company=Initech&company=Hooli&violation_type=type-1&q=o"
    )
    reordered = client.get(
        "/api/alerts/top_companies/?q=o&company=Hooli&violation_type=type-1&company=Initech"
    )
    other = client.get("/api/alerts/top_companies/?company=Initech&violation_type=type-1&q=o")

    assert first.headers["x-cache"] == "miss" and reordered.headers["x-cache"] == "hit"
    assert other.headers["x-cache"] == "miss" and other.json() != first.json()

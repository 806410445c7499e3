"""Redis down in server mode: batches are refused with 503 and Retry-After, never accepted and
lost; aggregates are computed without the shared cache; both recover when Redis is back.

The Redis is a private ``redis-server`` without persistence, killed (SIGKILL) and started again
empty, the worst case for tasks it held: a real ``msd worker`` must still finish every accepted
batch, because PostgreSQL, not Redis, holds the tasks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Iterator

import pytest
import redis
from litestar.testing import TestClient

from api.app import create_app
from jobs.broker import BrokerConfig
from jobs.queue import BatchQueue
from msd.runtime import Services
from msd.settings import load_settings
from olap.replicator import Replicator
from olap.store import ClickHouseStore
from tests.api.conftest import authorize, seed_alerts
from tests.faults.conftest import PrivateRedis, wait_for
from tests.jobs.test_redis_mode import _url_for_subprocess
from tests.pg_truth import sql_statistics
from workflow.db import Database

REPO = Path(__file__).resolve().parents[2]
BATCH = "/api/alerts/batch_process/"
QUESTION = "/api/alerts/statistics/?severity=HIGH"


@pytest.fixture
def redis_services(
    db: Database, store: ClickHouseStore, private_redis: PrivateRedis
) -> Iterator[Services]:
    settings = load_settings(
        {"clickhouse_database": store.database, "redis_url": private_redis.url}, environ={}
    )
    running = Services(settings, db, store, Replicator(db, store))
    yield running
    running.replicator.release()


def _task_rows(db: Database) -> list[tuple[str, str]]:
    with db.reading() as conn:
        return conn.execute("SELECT task_id, state FROM batch_tasks ORDER BY created_at").fetchall()


def _statuses(db: Database, alert_ids: list[str]) -> dict[str, tuple[str, int]]:
    with db.reading() as conn:
        rows = conn.execute(
            "SELECT alert_id, status, version FROM alerts WHERE alert_id = ANY(%s)", (alert_ids,)
        ).fetchall()
    return {row[0]: (row[1], row[2]) for row in rows}


def _worker(
    pg_server_url: str, pg_url: str, redis_url: str, stream: str, folder: Path
) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSD_")}
    env |= {
        "MSD_DATABASE_URL": _url_for_subprocess(pg_server_url, pg_url),
        "MSD_REDIS_URL": redis_url,
        "MSD_DATA_DIR": str(folder / "data"),
        "PYTHONPATH": str(REPO),
    }
    log = open(folder / "worker.log", "w")
    return subprocess.Popen(
        [sys.executable, "-m", "msd.cli", "worker", "--queue", stream, "--concurrency", "1"],
        env=env,
        stdout=log,
        stderr=log,
    )


def _truth(services: Services, window: str) -> dict:
    first, last = (date.fromisoformat(day) for day in window.split(";")[0].split("/"))
    return sql_statistics(services.db, first, last, "UTC", severity=["HIGH"])


def test_redis_outage_refuses_batches_with_503_computes_uncached_and_loses_no_batch(
    redis_services: Services,
    private_redis: PrivateRedis,
    pg_server_url: str,
    pg_url: str,
    tmp_path: Path,
) -> None:
    services = redis_services
    seed_alerts(services.db, 30)
    services.replicator.drain()
    pending = ["seed-4", "seed-8", "seed-12", "seed-16"]  # seeded PENDING
    before = _statuses(services.db, pending)
    stream = f"msd-fault-{uuid.uuid4().hex[:8]}"

    with TestClient(create_app(services)) as client:
        authorize(client, services)
        queue = BatchQueue(services.settings, services.db, BrokerConfig(queue_name=stream))
        client.app.state.batch_queue = queue
        cached = client.get(QUESTION)
        accepted = client.post(BATCH, json={"alert_ids": pending[:2]})

        private_redis.kill()
        refused = client.post(BATCH, json={"alert_ids": pending[2:]})
        tasks_while_down = _task_rows(services.db)
        started = time.monotonic()
        uncached = [client.get(QUESTION.replace("HIGH", severity)) for severity in ("LOW", "HIGH")]
        uncached_took = time.monotonic() - started
        health_down = client.get("/health").json()

        private_redis.start()
        time.sleep(1.1)  # past the cache's one-probe-a-second window of the outage
        retried = client.post(BATCH, json={"alert_ids": pending[2:]})
        health_back = client.get("/health").json()
        in_redis = redis.Redis.from_url(private_redis.url)
        queued_after_restart = in_redis.xlen(stream)
        in_redis.close()

        worker = _worker(pg_server_url, pg_url, private_redis.url, stream, tmp_path)
        try:
            done = wait_for(
                lambda: all(state == "done" for _, state in _task_rows(services.db)),
                timeout=60,
                what="the worker finishing every accepted batch",
            )
        finally:
            worker.kill()
            worker.wait(10)

    assert cached.status_code == 200 and accepted.status_code == 202
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert (
        "Redis" in refused.json()["detail"] and "send the batch again" in refused.json()["detail"]
    )
    assert [task_id for task_id, _ in tasks_while_down] == [accepted.json()["task_id"]]

    low, high = uncached
    assert low.status_code == high.status_code == 200 and uncached_took < 3.0
    assert high.json() == cached.json() == _truth(services, high.headers["x-window"])
    assert health_down["status"] == "degraded" and health_down["cache"] == "degraded"
    assert health_down["reasons"]["cache"] and health_down["postgres"] == "ok"

    assert retried.status_code == 202 and health_back["status"] == "ok"
    assert queued_after_restart == 1, "the Redis restart lost the first task's message"
    # ...and still no batch was lost: the worker took the unfinished one from PostgreSQL.
    assert done and [state for _, state in _task_rows(services.db)] == ["done", "done"]
    after = _statuses(services.db, pending)
    assert after == {alert: ("REVIEWING", before[alert][1] + 1) for alert in pending}

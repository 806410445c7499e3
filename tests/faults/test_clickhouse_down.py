"""ClickHouse down: workflow goes on, aggregates answer stale or 503, nothing is lost or doubled.

The server store is stopped for real: its HTTP endpoint closes and refuses connections, or
hangs (accepts, never answers). The embedded engine lives inside the serving process and cannot
go down on its own while that process runs; its one real failure is the API's store handle
closed (as at shutdown), tested in a process of its own so as not to close the run's session.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Iterator

import pytest
from litestar.testing import TestClient

from api.app import create_app
from msd.runtime import Services
from msd.settings import load_settings
from olap.replicator import Replicator
from olap.store import ServerStore
from tests.api.conftest import authorize, seed_alerts
from tests.faults.clickhouse_outage import EXACT_COUNT_LIMIT, check_outage, run_outage
from tests.faults.conftest import RestartableClickHouse
from tests.pg_truth import sql_statistics
from workflow.db import Database

REPO = Path(__file__).resolve().parents[2]
# Generous for the outage test, where a refused connection fails at once anyway and a busy
# machine must not time out a working insert; short for the hung server, which never answers.
TIMEOUT_SECONDS = 5.0
HUNG_TIMEOUT_SECONDS = 1.0


@pytest.fixture
def server_services(db: Database, clickhouse_server: RestartableClickHouse) -> Iterator[Services]:
    database = f"msd_fault_{uuid.uuid4().hex[:12]}"
    settings = load_settings(
        {
            "clickhouse_url": clickhouse_server.url,
            "clickhouse_database": database,
            "clickhouse_timeout_seconds": str(TIMEOUT_SECONDS),
            "replication_interval": "0.1",
            "exact_count_limit": str(EXACT_COUNT_LIMIT),
        },
        environ={},
    )
    store = ServerStore(clickhouse_server.url, database, timeout=TIMEOUT_SECONDS)
    store.migrate()
    services = Services(settings, db, store, Replicator(db, store))
    seed_alerts(db, 40)
    yield services
    services._stop.set()
    if services._thread is not None:
        services._thread.join(timeout=10)
    services.replicator.release()
    clickhouse_server.start()
    store.drop_database()
    store.close()


def test_server_outage_keeps_workflow_serves_last_answers_stale_and_replicates_exactly_after(
    server_services: Services, clickhouse_server: RestartableClickHouse
) -> None:
    with TestClient(create_app(server_services)) as client:
        authorize(client, server_services)
        seen = run_outage(client, server_services, clickhouse_server.stop, clickhouse_server.start)

    check_outage(seen)


def test_hung_server_gives_503_within_the_timeout_then_answers_again(
    server_services: Services, clickhouse_server: RestartableClickHouse
) -> None:
    server_services.replicator.drain()
    database = server_services.store.database
    server_services.store = short = ServerStore(
        clickhouse_server.url, database, timeout=HUNG_TIMEOUT_SECONDS
    )
    with TestClient(create_app(server_services)) as client:
        authorize(client, server_services)
        clickhouse_server.hang()
        started = time.monotonic()
        refused = client.get("/api/alerts/statistics/?severity=LOW")
        refused_after = time.monotonic() - started
        health = client.get("/health").json()
        health_after = time.monotonic() - started - refused_after

        clickhouse_server.start()
        time.sleep(1.1)  # past the cache's one-probe-a-second window of the outage
        answered = client.get("/api/alerts/statistics/?severity=LOW")
    short.close()

    assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused_after < 3 * HUNG_TIMEOUT_SECONDS, f"the hung request took {refused_after:.1f}s"
    assert health["clickhouse"] == "unavailable" and health_after < 3 * HUNG_TIMEOUT_SECONDS
    first, last = answered.headers["x-window"].split(";")[0].split("/")
    assert answered.status_code == 200 and answered.json() == sql_statistics(
        server_services.db,
        *(date.fromisoformat(day) for day in (first, last)),
        "UTC",
        severity=["LOW"],
    )


def test_embedded_store_closed_serves_last_answers_stale_and_replicates_exactly_after(
    pg_url: str, tmp_path: Path
) -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "tests.faults.clickhouse_outage", pg_url, str(tmp_path / "ch")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert ran.returncode == 0, ran.stderr[-3000:]
    check_outage(json.loads(ran.stdout.strip().splitlines()[-1]))

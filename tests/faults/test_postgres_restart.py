"""PostgreSQL restarted under a running service: in-flight requests fail with a clean 503, the
pool reconnects by itself, and replication goes on exactly where it was.

The PostgreSQL is a private embedded one of this module, stopped with a fast shutdown (every
session ended, as an operator's restart does) and started again on the same socket.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, Iterator

import psycopg
import pytest
from litestar.testing import TestClient
from psycopg.conninfo import make_conninfo

from api.app import create_app
from msd.runtime import Services
from msd.settings import load_settings
from olap.replicator import Replicator
from olap.store import ClickHouseStore
from tests.api.conftest import authorize, seed_alerts
from tests.faults.conftest import LogLines, PrivatePostgres, event_count, wait_for
from tests.olap.truth import clickhouse_aggregates, postgres_aggregates
from workflow.db import Database, apply_migrations

POOL_TIMEOUT_SECONDS = 2.0


@pytest.fixture
def private_db(private_postgres: PrivatePostgres) -> Iterator[Database]:
    """A fresh migrated schema on the private PostgreSQL, through the product's pool."""
    schema = f"msd_fault_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(private_postgres.url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = make_conninfo(private_postgres.url, options=f"-csearch_path={schema}")
    apply_migrations(url)
    database = Database(url, max_size=4, timeout=POOL_TIMEOUT_SECONDS)
    yield database
    database.close()


@pytest.fixture
def services(private_db: Database, store: ClickHouseStore) -> Iterator[Services]:
    settings = load_settings(
        {
            "clickhouse_database": store.database,
            "replication_interval": "0.1",
            "database_timeout_seconds": str(POOL_TIMEOUT_SECONDS),
        },
        environ={},
    )
    running = Services(settings, private_db, store, Replicator(private_db, store, batch_size=25))
    yield running
    running._stop.set()
    if running._thread is not None:
        running._thread.join(timeout=10)
    running.replicator.release()


def _versions(db: Database, alert_id: str) -> tuple[int, int]:
    """The alert's version and how many update events it has."""
    with db.reading() as conn:
        row = conn.execute(
            "SELECT a.version, (SELECT count(*) FROM alert_events e"
            "  WHERE e.alert_id = a.alert_id AND e.op = 'U') FROM alerts a WHERE a.alert_id = %s",
            (alert_id,),
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def _waiting_on_a_lock(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        ).fetchone()
    return bool(row and row[0])


def test_restart_fails_in_flight_requests_with_503_and_the_next_ones_succeed(
    services: Services, private_postgres: PrivatePostgres
) -> None:
    db = services.db
    seed_alerts(db, 30)
    before = _versions(db, "seed-4")
    blocker = psycopg.connect(db.url)
    blocker.execute("SELECT 1 FROM alerts WHERE alert_id = 'seed-4' FOR UPDATE")
    in_flight: dict[str, Any] = {}

    with TestClient(create_app(services)) as client:
        authorize(client, services)

        def change() -> None:
            in_flight["response"] = client.patch("/api/alerts/seed-4/", json={"status": "RESOLVED"})

        request = threading.Thread(target=change)
        request.start()
        wait_for(lambda: _waiting_on_a_lock(private_postgres.url), what="the PATCH waiting")

        private_postgres.stop()
        request.join(timeout=30)
        started = time.monotonic()
        while_down = client.get("/api/alerts/")
        down_for = time.monotonic() - started
        health_down = client.get("/health").json()

        private_postgres.start()
        after = {
            "list": client.get("/api/alerts/"),
            "patch": client.patch("/api/alerts/seed-4/", json={"status": "RESOLVED"}),
            "health": client.get("/health"),
        }
    blocker.close()

    cut_off = in_flight["response"]
    # The shutdown ends every session at once. Usually the waiting PATCH is ended with them; on
    # a busy machine the lock holder's end can wake it first and it commits before its own:
    # then it answered 200 for a change that did happen, and the one after it is a no-op.
    assert cut_off.status_code in (503, 200), cut_off.text
    if cut_off.status_code == 503:
        assert cut_off.headers["content-type"].startswith("application/problem+json")
        assert cut_off.headers["retry-after"] == "5"
        assert "database unavailable" in cut_off.json()["detail"]
        assert "Traceback" not in cut_off.text and "psycopg" not in cut_off.text
    assert while_down.status_code == 503 and down_for < POOL_TIMEOUT_SECONDS + 2
    assert health_down["status"] == "unhealthy" and health_down["reasons"]["postgres"]

    assert after["list"].status_code == 200 and after["list"].json()["count"] == 30
    assert after["patch"].status_code == 200 and after["patch"].json()["status"] == "RESOLVED"
    assert after["health"].json()["postgres"] == "ok"
    # Of the request cut off by the restart and the one after it, exactly one changed it.
    assert _versions(db, "seed-4") == (before[0] + 1, before[1] + 1)


def test_replicator_survives_a_restart_mid_replication_and_loses_or_doubles_nothing(
    services: Services, private_postgres: PrivatePostgres
) -> None:
    db = services.db
    seed_alerts(db, 1000, hours_apart=1)
    total = event_count(db)

    with LogLines("olap.replicator") as log:
        services.start_replication()
        wait_for(lambda: 0 < services.watermark().events, what="replication starting")
        at_stop = services.watermark().events
        private_postgres.stop()
        time.sleep(2.5)  # several reconnection attempts of the replicator
        private_postgres.start()
        with db.transaction(actor="test", source="test") as conn:
            conn.execute("UPDATE alerts SET status = 'REVIEWING' WHERE alert_id LIKE 'seed-1%'")
            conn.execute("DELETE FROM alerts WHERE alert_id LIKE 'seed-2%'")
        wait_for(
            lambda: services.watermark().events == event_count(db),
            timeout=60,
            what="replication catching up after the restart",
        )

    assert 0 < at_stop < total, "PostgreSQL stopped while replication was under way"
    assert event_count(db) > total, "the changes after the restart are events too"
    assert clickhouse_aggregates(services.store) == postgres_aggregates(db)
    paused = [line for line in log.lines if "replication paused: PostgreSQL" in line]
    resumed = [line for line in log.lines if "replication resumed: PostgreSQL" in line]
    assert len(paused) == 1 and len(resumed) == 1, log.lines

"""With a read replica, the alert list and its count read from it; all else uses the primary.

The "replica" is a second schema of the same real PostgreSQL holding other alerts than the
primary, so every answer shows which of the two it came from.
"""

from __future__ import annotations

from typing import Iterator

import pytest
from litestar.testing import TestClient

from api.app import create_app
from api.routing import ROUTES
from msd.runtime import Services
from tests.api.conftest import seed_alerts
from tests.pg_schemas import fresh_schema_url
from workflow import accounts
from workflow.db import Database


def _add(db: Database, *alert_ids: str) -> None:
    with db.transaction(actor="seed", source="test") as conn:
        for alert_id in alert_ids:
            conn.execute(
                "INSERT INTO alerts (alert_id, company_name, violation_type, severity, status,"
                " detected_at) VALUES (%s, 'Replica Test Bank', 'spoofing', 'HIGH', 'PENDING',"
                " now() - interval '1 hour')",
                (alert_id,),
            )


@pytest.fixture
def replica(pg_server_url: str) -> Iterator[Database]:
    with fresh_schema_url(pg_server_url, "msd_replica") as url:
        database = Database(url, max_size=2)
        _add(database, "replica-1", "replica-2")
        yield database
        database.close()


@pytest.fixture
def replica_client(services: Services, replica: Database) -> Iterator[TestClient]:
    _add(services.db, "primary-1", "primary-2", "primary-3")
    services.replica = replica
    _, token = accounts.create_token(services.db, "replica test", "analyst")
    with TestClient(create_app(services)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {token}"
        yield test_client
    services.replica = None


def _listed(client: TestClient) -> tuple[int, set[str]]:
    body = client.get("/api/alerts/", params={"page_size": 100}).json()
    return body["count"], {row["alert_id"] for row in body["results"]}


def test_list_and_count_read_the_replica(replica_client: TestClient) -> None:
    assert _listed(replica_client) == (2, {"replica-1", "replica-2"})
    filtered = replica_client.get("/api/alerts/", params={"severity": "HIGH"}).json()
    assert filtered["count"] == 2


def test_one_alert_and_its_history_read_the_primary(replica_client: TestClient) -> None:
    assert replica_client.get("/api/alerts/primary-1/").status_code == 200
    assert replica_client.get("/api/alerts/primary-1/history/").status_code == 200
    assert replica_client.get("/api/alerts/replica-1/").status_code == 404


def test_writes_go_to_the_primary_and_are_read_back_there_at_once(
    replica_client: TestClient, services: Services, replica: Database
) -> None:
    changed = replica_client.patch("/api/alerts/primary-2/", json={"status": "REVIEWING"})

    assert changed.status_code == 200
    assert replica_client.get("/api/alerts/primary-2/").json()["status"] == "REVIEWING"
    with replica.reading() as conn:
        on_replica = conn.execute("SELECT count(*) FROM alerts WHERE status = 'REVIEWING'")
        assert on_replica.fetchone()[0] == 0
    created = replica_client.post(
        "/api/alerts/",
        json={
            "alert_id": "primary-new",
            "company_name": "New Co",
            "violation_type": "spoofing",
            "severity": "LOW",
            "detected_at": "2026-01-02",
        },
    )
    assert created.status_code == 201, created.text
    assert replica_client.get("/api/alerts/primary-new/").status_code == 200
    assert _listed(replica_client) == (2, {"replica-1", "replica-2"})  # the replica's view


def test_without_a_replica_the_list_reads_the_primary(client: TestClient, services: Services):
    seed_alerts(services.db, 4)
    assert services.replica is None and services.reader is services.db
    assert client.get("/api/alerts/").json()["count"] == 4


def test_the_routing_table_sends_only_list_and_count_to_the_reader() -> None:
    # Every other PostgreSQL route must see its own writes: only these two may lag.
    import inspect

    readers = {
        name for name, (_, run) in ROUTES.items() if "services.reader" in inspect.getsource(run)
    }
    assert readers == {"alerts.list", "alerts.count"}

"""The list's count: exact from PostgreSQL when small, ClickHouse's at the watermark when large."""

from __future__ import annotations

from typing import Iterator

import pytest
from litestar.testing import TestClient

from api.app import create_app
from msd.runtime import Services
from msd.settings import load_settings
from olap.replicator import Replicator
from olap.store import ClickHouseStore
from tests.api.conftest import authorize, seed_alerts
from workflow import alerts
from workflow.alerts import ListFilters
from workflow.db import Database

LIMIT = 20
SEEDED = 120


@pytest.fixture
def services(db: Database, store: ClickHouseStore) -> Iterator[Services]:
    settings = load_settings(
        {"clickhouse_database": store.database, "exact_count_limit": str(LIMIT)}, environ={}
    )
    running = Services(settings, db, store, Replicator(db, store))
    seed_alerts(db, SEEDED)
    running.replicator.drain()
    yield running
    running.replicator.release()


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services)) as test_client:
        yield authorize(test_client, services, "viewer")


def _exact(services: Services, **filters: object) -> int:
    return alerts.count_alerts(services.db, ListFilters(**filters))  # type: ignore[arg-type]


# Each kind of filter, alone and combined, on both sides of the limit. The since/until pair
# with minutes makes ClickHouse count the signed change rows instead of the hourly views.
QUESTIONS = [
    ("", {}),
    ("severity=HIGH,CRITICAL", {"severity": ["HIGH", "CRITICAL"]}),
    ("status=PENDING&region=CA", {"status": ["PENDING"], "region": ["CA"]}),
    ("company=acme bank n.a.", {"company": ["acme bank n.a."]}),
    (
        "company=Globex LLC&violation_type=type-2",
        {"company": ["Globex LLC"], "violation_type": ["type-2"]},
    ),
    ("q=ACME", {"q": "ACME"}),
    ("violation_type=type-1&violation_type=type-3", {"violation_type": ["type-1", "type-3"]}),
    ("q=in", {"q": "in"}),
    (
        "company=Initech&company=Hooli&company=Umbrella",
        {"company": ["Initech", "Hooli", "Umbrella"]},
    ),
]


@pytest.mark.parametrize(("query", "filters"), QUESTIONS, ids=[q or "all" for q, _ in QUESTIONS])
def test_count_equals_postgres_whichever_store_counts(
    client: TestClient, services: Services, query: str, filters: dict
) -> None:
    response = client.get(f"/api/alerts/?{query}")

    exact = _exact(services, **filters)
    assert response.json()["count"] == exact
    expected_store = "clickhouse" if exact > LIMIT else "postgresql"
    assert response.headers["x-count-source"] == expected_store
    if expected_store == "clickhouse":
        assert response.headers["x-replication-watermark"] == services.watermark().header()


def test_a_window_inside_hours_is_counted_exactly_too(
    client: TestClient, services: Services
) -> None:
    with services.db.reading() as conn:
        first, last = conn.execute(
            "SELECT min(detected_at), max(detected_at) FROM alerts"
        ).fetchone()
        conn.rollback()
    since = (first + (last - first) / 7).replace(microsecond=0)
    until = (last - (last - first) / 5).replace(microsecond=0)

    response = client.get(
        "/api/alerts/", params={"since": since.isoformat(), "until": until.isoformat()}
    )

    assert response.headers["x-count-source"] == "clickhouse"
    assert since.minute or since.second, "the edge falls inside an hour"
    assert response.json()["count"] == _exact(services, since=since, until=until)


def test_large_count_follows_replication_and_small_count_is_immediate(
    client: TestClient, services: Services
) -> None:
    before = client.get("/api/alerts/").json()["count"]
    with services.db.transaction(actor="test", source="test") as conn:
        conn.execute(
            "INSERT INTO alerts (alert_id, company_name, violation_type, severity, status,"
            " region, detected_at) VALUES ('late-1', 'Late Corp', 'type-late', 'LOW',"
            " 'PENDING', 'WA', now())"
        )

    unreplicated = client.get("/api/alerts/")
    small = client.get("/api/alerts/?company=Late Corp")
    services.replicator.drain()
    replicated = client.get("/api/alerts/")

    assert unreplicated.json()["count"] == before, "ClickHouse counts what has replicated"
    assert small.json()["count"] == 1 and small.headers["x-count-source"] == "postgresql"
    assert replicated.json()["count"] == before + 1 == SEEDED + 1
    assert (
        replicated.headers["x-replication-watermark"]
        != unreplicated.headers["x-replication-watermark"]
    )


def _cache_hits(client: TestClient) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("msd_cache_hits"):
            return float(line.split()[-1])
    return 0.0


def test_replicated_count_is_cached_for_other_pages_of_the_same_filters(
    client: TestClient, services: Services
) -> None:
    first = client.get("/api/alerts/?severity=LOW")
    hits_before = _cache_hits(client)
    second = client.get("/api/alerts/?page_size=5&severity=LOW&page=2")

    assert first.headers["x-count-source"] == second.headers["x-count-source"] == "clickhouse"
    assert first.json()["count"] == second.json()["count"]
    assert _cache_hits(client) == hits_before + 1


def test_limit_zero_always_counts_in_postgres(db: Database, store: ClickHouseStore) -> None:
    settings = load_settings(
        {"clickhouse_database": store.database, "exact_count_limit": "0"}, environ={}
    )
    running = Services(settings, db, store, Replicator(db, store))
    seed_alerts(db, 30)
    try:
        with TestClient(create_app(running)) as client:
            response = authorize(client, running, "viewer").get("/api/alerts/")
    finally:
        running.replicator.release()

    assert response.json()["count"] == 30
    assert response.headers["x-count-source"] == "postgresql"

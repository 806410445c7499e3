"""The whole path on the real public records: ingest, replicate, and the API equals plain SQL."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from litestar.testing import TestClient

from ingest import ingest_files
from msd.runtime import Services
from tests.pg_truth import sql_statistics, sql_top_companies, sql_trends

CFPB = "cfpb_consumer_complaints/cfpb_complaints_fullschema_sample.csv"
VIOLATION_TRACKER = "violation_tracker_federal_penalties/violation_tracker_federal_penalties.csv"

FIRST, LAST = date(2000, 1, 1), date(2026, 12, 31)


@pytest.fixture
def loaded(services: Services, shared_data: Path, tmp_path: Path) -> Services:
    report = ingest_files(
        services.db,
        [shared_data / CFPB, shared_data / VIOLATION_TRACKER],
        rejects_path=tmp_path / "rejects.csv",
    )
    assert report.inserted > 30_000
    services.replicator.drain()
    return services


def _window(tz: str, **filters: str) -> dict[str, str]:
    return {"since": FIRST.isoformat(), "until": LAST.isoformat(), "tz": tz, **filters}


@pytest.mark.parametrize("tz", ["UTC", "America/Chicago"])
def test_real_records_statistics_and_top_companies_equal_sql(
    client: TestClient, loaded: Services, tz: str
) -> None:
    stats = client.get("/api/alerts/statistics/", params=_window(tz)).json()
    top = client.get("/api/alerts/top_companies/", params=_window(tz)).json()

    assert stats == sql_statistics(loaded.db, FIRST, LAST, tz)
    assert stats["total"] > 30_000
    assert top == sql_top_companies(loaded.db, FIRST, LAST, tz)


def test_real_records_trends_equal_sql_day_by_day(client: TestClient, loaded: Services) -> None:
    params = _window("UTC", severity="CRITICAL,HIGH")

    body = client.get("/api/alerts/risk_trends/", params=params).json()

    expected = sql_trends(loaded.db, FIRST, LAST, "UTC", severity=["CRITICAL", "HIGH"])
    assert len(body) == (LAST - FIRST).days + 1
    strip = [{k: v for k, v in row.items() if k != "avg_resolution_time"} for row in body]
    assert strip == [{k: v for k, v in r.items() if k != "avg_resolution_time"} for r in expected]
    assert sum(row["total_alerts"] for row in body) > 1_000


def test_real_records_filtered_by_region_in_a_half_hour_zone(
    client: TestClient, loaded: Services
) -> None:
    params = _window("Asia/Kolkata", region="CA,NY,TX", status="RESOLVED")

    stats = client.get("/api/alerts/statistics/", params=params).json()

    expected = sql_statistics(
        loaded.db, FIRST, LAST, "Asia/Kolkata", region=["CA", "NY", "TX"], status=["RESOLVED"]
    )
    assert stats == expected and stats["total"] > 1_000

"""Statistics, trends, top companies and regions from ClickHouse equal plain SQL over
PostgreSQL, with every filter."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from litestar.testing import TestClient

from msd.runtime import Services
from tests.api.conftest import seed_alerts, seed_tricky_alerts
from tests.pg_truth import sql_regions, sql_statistics, sql_top_companies, sql_trends

ZONES = ["UTC", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe"]


def _last_days(days: int, tz: str):
    today = datetime.now(ZoneInfo(tz)).date()
    return today - timedelta(days=days - 1), today


@pytest.fixture(params=["embedded", "server"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """Every aggregate is checked through both stores: embedded chdb and a server over HTTP."""
    return request.param


@pytest.fixture
def replicated(services: Services) -> Services:
    seed_alerts(services.db, 400)
    services.replicator.drain()
    return services


@pytest.mark.parametrize("tz", ZONES)
def test_statistics_match_postgres_in_any_zone(
    client: TestClient, replicated: Services, tz: str
) -> None:
    response = client.get("/api/alerts/statistics/", params={"tz": tz})

    assert response.status_code == 200
    assert response.json() == sql_statistics(replicated.db, *_last_days(30, tz), tz)


@pytest.mark.parametrize("tz", ZONES)
def test_trends_have_one_row_per_day_matching_postgres(
    client: TestClient, replicated: Services, tz: str
) -> None:
    response = client.get("/api/alerts/risk_trends/", params={"tz": tz, "severity": "HIGH,LOW"})

    body = response.json()
    expected = sql_trends(replicated.db, *_last_days(30, tz), tz, severity=["HIGH", "LOW"])
    assert len(body) == 30
    assert [{**r, "avg_resolution_time": None} for r in body] == [
        {**r, "avg_resolution_time": None} for r in expected
    ]
    for got, want in zip(body, expected):
        assert got["avg_resolution_time"] == pytest.approx(want["avg_resolution_time"], abs=1e-3)


@pytest.mark.parametrize("tz", ["UTC", "Asia/Kolkata"])
def test_top_companies_rank_by_risk_score_like_postgres(
    client: TestClient, replicated: Services, tz: str
) -> None:
    response = client.get("/api/alerts/top_companies/", params={"tz": tz, "days": "60"})

    body = response.json()
    assert len(body) == 10
    assert body == sql_top_companies(replicated.db, *_last_days(60, tz), tz)


def test_spellings_of_one_company_count_as_one_shown_by_the_most_used(
    client: TestClient, replicated: Services
) -> None:
    names = [row["company_name"] for row in client.get("/api/alerts/top_companies/").json()]

    assert "Acme Bank N.A." in names or "ACME BANK, N.A." in names
    assert not {"Acme Bank N.A.", "ACME BANK, N.A."} <= set(names)


def test_filters_and_explicit_window_narrow_the_statistics(
    client: TestClient, replicated: Services
) -> None:
    first, last = _last_days(90, "UTC")
    params = {
        "since": first.isoformat(),
        "until": last.isoformat(),
        "region": "CA",
        "status": "PENDING",
    }

    body = client.get("/api/alerts/statistics/", params=params).json()

    expected = sql_statistics(replicated.db, first, last, "UTC", region=["CA"], status=["PENDING"])
    assert body == expected
    assert 0 < body["total"] < client.get("/api/alerts/statistics/?days=90").json()["total"]


def test_answer_changes_once_new_alerts_replicate_and_watermark_moves(
    client: TestClient, replicated: Services
) -> None:
    before = client.get("/api/alerts/statistics/")
    client.post(
        "/api/alerts/",
        json={
            "alert_id": "fresh-1",
            "company_name": "Initech",
            "violation_type": "fraud",
            "severity": "CRITICAL",
            "detected_at": datetime.now().isoformat(),
            "amount": "10.00",
        },
    )
    unreplicated = client.get("/api/alerts/statistics/")
    replicated.replicator.drain()
    after = client.get("/api/alerts/statistics/")

    assert unreplicated.json() == before.json()
    assert after.json()["critical"] == before.json()["critical"] + 1
    assert after.headers["x-replication-watermark"] != before.headers["x-replication-watermark"]


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("severity=SEVERE", "severity"),
        ("status=OPEN", "status"),
        ("days=0", "days"),
        ("days=abc", "days"),
        ("since=2024-02-30", "since"),
        ("until=yesterday", "until"),
        ("tz=Mars/Olympus", "tz"),
        ("since=2024-05-01&until=2024-04-01", "since"),
        ("days=7&since=2024-01-01", "days"),
    ],
)
def test_bad_window_or_filter_is_a_400_naming_the_parameter(
    client: TestClient, replicated: Services, query: str, parameter: str
) -> None:
    for path in ("statistics", "risk_trends", "top_companies", "regions"):
        response = client.get(f"/api/alerts/{path}/?{query}")

        assert response.status_code == 400
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["errors"][0]["parameter"] == parameter


# Each case names the filters as the API takes them; company and violation_type are repeated
# parameters, never comma-split.
FILTER_CASES = [
    {"company": ["ACME BANK, N.A."]},
    {"company": ["東京銀行", "🏦 Emoji Savings"]},
    {"company": ["société générale"]},
    {"company": ["Back\\slash Ltd", 'O\'Brien "Quoted" & Co']},
    {"violation_type": ["fraud, wire"]},
    {"violation_type": ["50% rule_breach", "type-1"]},
    {"q": "100%"},
    {"q": "e_f"},
    {"q": "\\"},
    {"q": "'brien \"quoted"},
    {"q": "銀行"},
    {"q": "ÉTÉ"},
    {"q": "بنك"},
    {"company": ["ACME BANK, N.A."], "severity": ["HIGH", "CRITICAL"], "q": "acme"},
    {"violation_type": ["東証違反"], "region": ["CA", "WA"], "status": ["PENDING"]},
    {"q": "no alert is called this"},
]

TRUTH = {
    "statistics": sql_statistics,
    "risk_trends": sql_trends,
    "top_companies": sql_top_companies,
    "regions": sql_regions,
}


@pytest.fixture
def tricky(services: Services) -> Services:
    seed_alerts(services.db, 200)
    seed_tricky_alerts(services.db)
    services.replicator.drain()
    return services


def _without_resolution_times(rows: list[dict]) -> list[dict]:
    return [{**row, "avg_resolution_time": None} for row in rows]


@pytest.mark.parametrize("tz", ["UTC", "Asia/Kolkata"])
def test_every_aggregate_with_new_filters_equals_postgres(
    client: TestClient, tricky: Services, tz: str
) -> None:
    """UTC reads the hourly views where they have the dimension; Kolkata always the raw rows."""
    first, last = _last_days(30, tz)
    for case in FILTER_CASES:
        for path, truth in TRUTH.items():
            response = client.get(f"/api/alerts/{path}/", params={**case, "tz": tz})
            want = truth(tricky.db, first, last, tz, **case)

            assert response.status_code == 200, (path, case, response.text)
            got = response.json()
            if path == "risk_trends":
                assert _without_resolution_times(got) == _without_resolution_times(want), case
                for g, w in zip(got, want):
                    assert g["avg_resolution_time"] == pytest.approx(
                        w["avg_resolution_time"], abs=1e-3
                    ), case
            else:
                assert got == want, (path, case)


def test_filters_really_narrow_the_figures(client: TestClient, services: Services) -> None:
    """Guards the comparison above against filters that both sides ignore."""
    seed_tricky_alerts(services.db)
    services.replicator.drain()

    everything = client.get("/api/alerts/statistics/").json()["total"]
    acme = client.get("/api/alerts/statistics/", params={"company": "ACME BANK, N.A."}).json()
    literal_percent = client.get("/api/alerts/statistics/", params={"q": "100%"}).json()
    none = client.get("/api/alerts/statistics/", params={"q": "no alert is called this"}).json()

    # Both spellings of ACME, 24 of the 132 tricky alerts: 2 of every 11.
    assert acme["total"] == 24 and everything == 132
    assert literal_percent["total"] == 12  # "100% Pure_Finance", not "100x PureXFinance"
    assert none == {"total": 0, "critical": 0, "high": 0, "pending": 0, "total_amount": 0.0}


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("q=" + "x" * 201, "q"),
        ("q=a&q=b", "q"),
        ("company=" + "c" * 201, "company"),
        ("&".join(f"company=c{i}" for i in range(51)), "company"),
        ("violation_type=" + "v" * 201, "violation_type"),
        ("&".join(f"violation_type=v{i}" for i in range(51)), "violation_type"),
        ("&".join(f"region=r{i}" for i in range(51)), "region"),
        ("companies=ACME", "companies"),
    ],
)
def test_filter_limits_are_a_400_naming_the_parameter(
    client: TestClient, services: Services, query: str, parameter: str
) -> None:
    for path in ("statistics", "risk_trends", "top_companies", "regions"):
        response = client.get(f"/api/alerts/{path}/?{query}")

        assert response.status_code == 400, (path, query)
        assert response.json()["errors"][0]["parameter"] == parameter

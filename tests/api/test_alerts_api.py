"""The workflow endpoints keep the replaced dashboard's contract and answer from PostgreSQL."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from msd.runtime import Services
from tests.api.conftest import seed_alerts


@pytest.fixture
def seeded(services: Services) -> Services:
    seed_alerts(services.db, 120)
    return services


def test_list_is_paginated_newest_first_with_drf_fields(client: TestClient, seeded: Services):
    body = client.get("/api/alerts/", params={"page_size": 25}).json()

    assert set(body) >= {"count", "next", "previous", "results"}
    assert body["count"] == 120 and len(body["results"]) == 25 and body["previous"] is None
    assert body["next"].endswith("/api/alerts/?page_size=25&page=2")
    times = [row["detected_at"] for row in body["results"]]
    assert times == sorted(times, reverse=True)
    first = body["results"][0]
    assert set(first) >= {
        "id",
        "alert_id",
        "company_name",
        "violation_type",
        "severity",
        "status",
        "amount",
        "region",
        "detected_at",
        "created_at",
        "updated_at",
        "resolved_at",
    }


def test_filters_combine_and_count_matches(client: TestClient, seeded: Services) -> None:
    body = client.get("/api/alerts/?severity=HIGH&region=TX&page_size=500").json()

    assert body["count"] == len(body["results"]) > 0
    assert {(r["severity"], r["region"]) for r in body["results"]} == {("HIGH", "TX")}


def test_following_next_links_visits_every_alert_once(client: TestClient, seeded: Services):
    seen: list[str] = []
    url: str | None = "/api/alerts/?page_size=7&status=PENDING,REVIEWING"
    while url:
        body = client.get(url).json()
        seen += [row["alert_id"] for row in body["results"]]
        url = body["next"]

    assert len(seen) == len(set(seen)) == body["count"]


def test_cursor_paging_gives_the_same_rows_as_page_numbers(client: TestClient, seeded: Services):
    by_page = [
        r["alert_id"]
        for p in (1, 2, 3)
        for r in client.get(f"/api/alerts/?page_size=10&page={p}").json()["results"]
    ]
    by_cursor: list[str] = []
    cursor = None
    for _ in range(3):
        params = {"page_size": 10, **({"cursor": cursor} if cursor else {})}
        body = client.get("/api/alerts/", params=params).json()
        by_cursor += [r["alert_id"] for r in body["results"]]
        cursor = body["next_cursor"]

    assert by_cursor == by_page


@pytest.mark.parametrize(
    ("query", "parameter", "status"),
    [
        ("page=0", "page", 400),
        ("page=-1", "page", 400),
        ("page_size=501", "page_size", 400),
        ("page_size=x", "page_size", 400),
        ("severity=URGENT", "severity", 400),
        ("cursor=not-a-cursor", "cursor", 400),
        ("page=999", "page", 404),
    ],
)
def test_bad_list_parameters_name_the_parameter(
    client: TestClient, seeded: Services, query: str, parameter: str, status: int
) -> None:
    response = client.get(f"/api/alerts/?{query}")

    assert response.status_code == status
    assert response.json()["errors"][0]["parameter"] == parameter


def test_detail_and_unknown_alert(client: TestClient, seeded: Services) -> None:
    assert client.get("/api/alerts/seed-5/").json()["alert_id"] == "seed-5"
    assert client.get("/api/alerts/no-such/").status_code == 404


def test_status_change_follows_transition_table_and_is_audited(
    client: TestClient, seeded: Services
) -> None:
    target = client.get("/api/alerts/?status=PENDING&page_size=1").json()["results"][0]
    path = f"/api/alerts/{target['alert_id']}/"

    reviewing = client.patch(path, json={"status": "REVIEWING", "note": "looking"})
    resolved = client.patch(path, json={"status": "RESOLVED"})
    refused = client.patch(path, json={"status": "PENDING"})
    history = client.get(path + "history/").json()

    assert reviewing.status_code == 200 and reviewing.json()["version"] == target["version"] + 1
    assert resolved.json()["resolved_at"] is not None
    assert refused.status_code == 409 and refused.json()["allowed"] == ["REVIEWING"]
    assert [(h["op"], (h["after"] or {}).get("status")) for h in history] == [
        ("I", "PENDING"),
        ("U", "REVIEWING"),
        ("U", "RESOLVED"),
    ]
    assert history[1]["note"] == "looking" and history[1]["before"]["status"] == "PENDING"


def test_status_change_with_stale_version_is_refused(client: TestClient, seeded: Services):
    alert = client.get("/api/alerts/seed-1/").json()
    response = client.patch(
        "/api/alerts/seed-1/", json={"status": "DISMISSED", "version": alert["version"] + 5}
    )

    assert response.status_code == 409 and response.json()["errors"][0]["field"] == "version"


def test_create_one_or_many_alerts(client: TestClient, services: Services) -> None:
    one = {
        "alert_id": "new-1",
        "company_name": "Initech",
        "violation_type": "fraud",
        "severity": "high",
        "detected_at": "2026-01-02T03:04:05Z",
        "amount": "1350000.5",
    }
    created = client.post("/api/alerts/", json=one)
    many = client.post("/api/alerts/", json=[{**one, "alert_id": f"new-{i}"} for i in (2, 3)])
    again = client.post("/api/alerts/", json=one)

    assert created.status_code == 201 and created.json()[0]["amount"] == "1350000.50"
    assert created.json()[0]["severity"] == "HIGH"
    assert many.status_code == 201 and len(many.json()) == 2
    assert again.status_code == 409


def test_create_reports_each_bad_item_and_stores_none(client: TestClient, services: Services):
    good = {
        "alert_id": "ok-1",
        "company_name": "Initech",
        "violation_type": "fraud",
        "severity": "LOW",
        "detected_at": "2026-01-02",
    }
    bad = {**good, "alert_id": "bad-1", "amount": "-5"}

    response = client.post("/api/alerts/", json=[good, bad])

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "[1].amount"
    assert client.get("/api/alerts/ok-1/").status_code == 404


def test_openapi_schema_lists_the_endpoints(client: TestClient, services: Services) -> None:
    paths = client.get("/schema/openapi.json").json()["paths"]

    for path in (
        "/api/alerts",
        "/api/alerts/statistics",
        "/api/alerts/risk_trends",
        "/api/alerts/top_companies",
        "/api/alerts/{alert_id}",
    ):
        assert path in paths or path + "/" in paths


def test_misspelt_parameter_is_refused_not_ignored(client: TestClient, seeded: Services):
    listed = client.get("/api/alerts/?serverity=HIGH")
    stats = client.get("/api/alerts/statistics/?serverity=HIGH")
    harmless = client.get("/api/alerts/?format=json&_=17")

    for response in (listed, stats):
        assert response.status_code == 400
        assert response.json()["errors"][0]["parameter"] == "serverity"
    assert harmless.status_code == 200


def test_created_alert_times_must_make_sense(client: TestClient, services: Services) -> None:
    base = {
        "company_name": "Initech",
        "violation_type": "fraud",
        "severity": "LOW",
        "detected_at": "2026-01-02T00:00:00Z",
    }
    response = client.post(
        "/api/alerts/",
        json=[
            {**base, "alert_id": "t-1", "resolved_at": "2026-01-01T00:00:00Z"},
            {**base, "alert_id": "t-2", "detected_at": "2999-01-01"},
        ],
    )

    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["[0].resolved_at", "[1].detected_at"]


def test_created_alert_resolved_in_the_future_is_refused_like_one_detected_there(
    client: TestClient, services: Services
) -> None:
    body = {
        "alert_id": "later",
        "company_name": "Initech",
        "violation_type": "fraud",
        "severity": "LOW",
        "status": "RESOLVED",
        "detected_at": "2026-01-02",
        "resolved_at": "2999-01-01",
    }

    response = client.post("/api/alerts/", json=body)

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {
            "field": "resolved_at",
            "message": "resolved_at: 2999-01-01T00:00:00+00:00 is in the future",
        }
    ]


def test_created_closed_alert_gets_a_resolution_time_and_numeric_amount_is_exact(
    client: TestClient, services: Services
) -> None:
    body = {
        "alert_id": "c-1",
        "company_name": "Initech",
        "violation_type": "fraud",
        "severity": "LOW",
        "detected_at": "2026-01-02",
        "status": "resolved",
        "amount": 12.5,
    }

    created = client.post("/api/alerts/", json=body).json()[0]

    assert created["status"] == "RESOLVED" and created["resolved_at"] is not None
    assert created["amount"] == "12.50"


def test_amount_with_three_decimals_is_refused_with_a_readable_rule(
    client: TestClient, services: Services
) -> None:
    body = {
        "alert_id": "a-1",
        "company_name": "Initech",
        "violation_type": "fraud",
        "severity": "LOW",
        "detected_at": "2026-01-02",
        "amount": "1.005",
    }

    error = client.post("/api/alerts/", json=body).json()["errors"][0]

    assert error["field"] == "amount" and "2 decimals" in error["message"]


def test_status_change_takes_any_case_and_lists_statuses_when_unknown(
    client: TestClient, seeded: Services
) -> None:
    target = client.get("/api/alerts/?status=PENDING&page_size=1").json()["results"][0]
    path = f"/api/alerts/{target['alert_id']}/"

    moved = client.patch(path, json={"status": "reviewing"})
    unknown = client.patch(path, json={"status": "closed"})

    assert moved.status_code == 200 and moved.json()["status"] == "REVIEWING"
    assert unknown.status_code == 400 and "RESOLVED" in unknown.json()["allowed"]


def test_not_found_and_malformed_body_name_what_is_at_fault(
    client: TestClient, services: Services
) -> None:
    missing = client.get("/api/alerts/no-such/")
    malformed = client.post(
        "/api/alerts/", content=b"{not json", headers={"content-type": "application/json"}
    )

    assert missing.json()["errors"][0]["parameter"] == "alert_id"
    assert malformed.status_code == 400 and malformed.json()["errors"][0]["field"] == "body"


BAD_BODIES = [
    (b'{"status": "RESOLVED",', "body", "not valid JSON"),
    (b"", "body", "the request body is empty"),
    (b'{"stat": "RESOLVED"}', "stat", "not a field of this request body; its fields are status"),
    (b'{"note": "no status"}', "status", "required, but missing"),
    (b'{"status": "RESOLVED", "version": "x"}', "version", "Expected `int | null`"),
]


@pytest.mark.parametrize(("body", "field", "says"), BAD_BODIES, ids=lambda v: repr(v)[:30])
def test_a_bad_body_is_a_400_naming_the_field_and_the_problem(
    client: TestClient, seeded: Services, body: bytes, field: str, says: str
) -> None:
    response = client.patch(
        "/api/alerts/seed-1/", content=body, headers={"content-type": "application/json"}
    )

    problem = response.json()
    assert response.status_code == 400, problem
    assert problem["errors"][0]["field"] == field, problem
    assert says in problem["detail"] and says in problem["errors"][0]["message"], problem

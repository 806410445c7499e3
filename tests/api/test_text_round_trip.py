"""Awkward text reaches both stores and comes back exactly, or is refused naming the field."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from msd.runtime import Services

AWKWARD_NAMES = [
    'O\'Brien "Holdings" Ltd',
    "Back\\slash\\\\ Trust",
    "Line\nbreak\r\nCorp",
    "Tab\tand ; semicolon -- comment",
    "Robert'); DROP TABLE alerts;--",
    "💸 Emoji Capital 🏦",
    "شركة الرقابة المالية",  # right-to-left (Arabic)
    "בנק הפיקוח \u200f",  # right-to-left (Hebrew) with a right-to-left mark
    "株式会社 監督",
    "{name:String} $1 %s ? :param",
]


def new_alert(alert_id: str, company: str, **extra: str) -> dict[str, str]:
    return {
        "alert_id": alert_id,
        "company_name": company,
        "violation_type": extra.get("violation_type", "disclosure"),
        "severity": "CRITICAL",
        "detected_at": "2025-03-01T12:00:00Z",
        "amount": "1000.00",
    }


@pytest.mark.parametrize("store_kind", ["embedded", "server"])
def test_awkward_company_names_round_trip_through_postgres_and_clickhouse(
    client: TestClient, services: Services, store_kind: str
) -> None:
    alerts = [new_alert(f"t-{n}", name) for n, name in enumerate(AWKWARD_NAMES)]
    assert client.post("/api/alerts/", json=alerts).status_code == 201
    services.replicator.drain()

    stored = {client.get(f"/api/alerts/t-{n}/").json()["company_name"] for n in range(len(alerts))}
    top = client.get("/api/alerts/top_companies/", params={"since": "2025-01-01"}).json()
    by_severity = client.get(
        "/api/alerts/statistics/", params={"since": "2025-01-01", "severity": "CRITICAL"}
    ).json()

    assert stored == set(AWKWARD_NAMES)
    assert {row["company_name"] for row in top} == set(AWKWARD_NAMES)
    assert by_severity["total"] == len(AWKWARD_NAMES)


@pytest.mark.parametrize("field", ["company_name", "violation_type", "alert_id"])
def test_a_nul_byte_is_refused_naming_the_field_and_nothing_is_stored(
    client: TestClient, field: str
) -> None:
    alert = new_alert("nul-1", "Fine Corp")
    alert[field] = "bad\x00value"

    response = client.post("/api/alerts/", json=[new_alert("ok-1", "Good Corp"), alert])

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == f"[1].{field}"
    assert "NUL" in response.json()["detail"]
    assert client.get("/api/alerts/ok-1/").status_code == 404


def test_a_nul_byte_in_a_note_or_filter_is_refused(client: TestClient) -> None:
    note = client.patch("/api/alerts/x/", json={"status": "REVIEWING", "note": "a\x00b"})
    region = client.get("/api/alerts/", params={"region": "C\x00A"})

    assert note.status_code == 400 and "NUL" in note.json()["detail"]
    assert region.status_code == 400 and region.json()["errors"][0]["parameter"] == "region"

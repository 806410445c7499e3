"""Each explicit limit answers 413 or 400 as a problem that names the limit and where it applies."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from api.app import MAX_BODY_BYTES


def test_a_body_over_the_limit_is_413_naming_the_limit(client: TestClient) -> None:
    body = b'{"alert_ids": ["' + b"x" * MAX_BODY_BYTES + b'"]}'

    response = client.post(
        "/api/alerts/batch_process/", content=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")
    assert f"{MAX_BODY_BYTES:,} bytes" in response.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "payload", "status", "named", "limit"),
    [
        ("GET", "/api/alerts/?page_size=501", None, 400, "page_size", "500"),
        ("GET", "/api/alerts/?severity=" + ",".join(["LOW"] * 51), None, 400, "severity", "50"),
        ("GET", "/api/alerts/?region=" + "R" * 101, None, 400, "region", "100"),
        ("GET", "/api/alerts/statistics/?days=36601", None, 400, "days", "36600"),
        (
            "PATCH",
            "/api/alerts/x/",
            {"status": "REVIEWING", "note": "n" * 2001},
            400,
            "note",
            "2000",
        ),
        (
            "POST",
            "/api/alerts/batch_process/",
            {"alert_ids": ["a"] * 100_001},
            413,
            "alert_ids",
            "100,000",
        ),
        (
            "POST",
            "/api/alerts/batch_process/",
            {"alert_ids": ["a"], "note": "n" * 2001},
            400,
            "note",
            "2000",
        ),
        ("POST", "/api/alerts/", [{"alert_id": str(n)} for n in range(1001)], 413, "body", "1000"),
    ],
)
def test_each_limit_is_refused_naming_the_limit_and_the_place(
    client: TestClient,
    method: str,
    path: str,
    payload: object,
    status: int,
    named: str,
    limit: str,
) -> None:
    response = client.request(method, path, json=payload)

    problem = response.json()
    assert response.status_code == status, problem
    places = {e.get("parameter") or e.get("field") for e in problem.get("errors", [])}
    assert any(named in str(place) for place in places), problem
    assert limit in problem["detail"], problem

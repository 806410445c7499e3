"""The fast lane: repeated aggregate URLs answered from memory, exactly as the API answers them."""

from __future__ import annotations

import math
import time
from datetime import date, datetime, timezone

import pytest
from litestar.testing import TestClient

from api.app import create_app
from api.params import parse_window, window_expiry
from msd.runtime import Services
from msd.settings import load_settings
from tests.api.conftest import authorize, seed_alerts, start_early_in_a_minute
from workflow import accounts

STATISTICS = "/api/alerts/statistics/?severity=HIGH&severity=CRITICAL&region=CA"


@pytest.fixture
def seeded(services: Services) -> Services:
    seed_alerts(services.db, 60)
    services.replicator.drain()
    return services


def _lane_answers(client: TestClient) -> float:
    return client.app.state.metrics.value("fast_lane_answers")


def _without_date(headers: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name not in ("date", "x-cache")}


def test_a_repeated_url_is_answered_by_the_lane_as_the_api_answered_it(
    client: TestClient, seeded: Services
) -> None:
    first = client.get(STATISTICS)
    second = client.get(STATISTICS)
    third = client.get(STATISTICS)

    assert first.headers["x-cache"] == "miss"
    assert second.headers["x-cache"] == third.headers["x-cache"] == "hit"
    assert _lane_answers(client) == 2
    assert second.content == first.content
    assert _without_date(dict(second.headers)) == _without_date(dict(first.headers))


def test_the_lane_answers_again_only_after_the_api_computed_the_new_watermark(
    client: TestClient, seeded: Services
) -> None:
    before = client.get(STATISTICS).json()
    client.get(STATISTICS)
    with seeded.db.transaction(actor="t", source="test") as conn:
        conn.execute(
            "UPDATE alerts SET severity = 'CRITICAL', region = 'CA' WHERE alert_id = 'seed-1'"
        )
    seeded.replicator.drain()

    after = client.get(STATISTICS)
    again = client.get(STATISTICS)

    assert after.headers["x-cache"] == "miss"
    assert after.json()["critical"] == before["critical"] + 1
    assert again.headers["x-cache"] == "hit" and again.json() == after.json()
    assert _lane_answers(client) == 2


def test_unknown_credentials_on_a_remembered_url_get_the_api_refusal(
    client: TestClient, seeded: Services
) -> None:
    client.get(STATISTICS)
    client.get(STATISTICS)

    refused = client.get(STATISTICS, headers={"Authorization": "Bearer msd_not-a-token"})
    bare = client.get(STATISTICS, headers={"Authorization": ""})

    assert refused.status_code == 401 and "unknown, revoked or expired" in refused.text
    assert bare.status_code == 401
    assert _lane_answers(client) == 1


def test_a_malformed_host_on_a_remembered_url_gets_the_api_refusal(
    client: TestClient, seeded: Services
) -> None:
    client.get(STATISTICS)
    client.get(STATISTICS)

    refused = client.get(STATISTICS, headers={"Host": "bad host\x7f"})

    assert refused.status_code == 400
    assert _lane_answers(client) == 1


def test_requests_the_lane_answers_count_against_the_request_limit(seeded: Services) -> None:
    settings = load_settings(
        {"clickhouse_database": seeded.store.database, "rate_limit": "5/minute"}, environ={}
    )
    limited = Services(settings, seeded.db, seeded.store, seeded.replicator)
    with TestClient(create_app(limited)) as client:
        authorize(client, limited, "viewer")
        start_early_in_a_minute()
        statuses = [client.get(STATISTICS).status_code for _ in range(7)]

        assert statuses == [200] * 5 + [429] * 2
        assert _lane_answers(client) == 4


def test_a_session_cookie_rides_the_lane_and_a_signed_out_one_does_not(
    client: TestClient, seeded: Services
) -> None:
    accounts.add_user(seeded.db, "ada", "a long enough password", "viewer")
    del client.headers["Authorization"]
    signed_in = client.post(
        "/api/session/", json={"username": "ada", "password": "a long enough password"}
    )
    assert signed_in.status_code == 200, signed_in.text

    client.get(STATISTICS)
    answered = client.get(STATISTICS)
    client.cookies.clear()
    refused = client.get(STATISTICS)

    assert answered.status_code == 200 and answered.headers["x-cache"] == "hit"
    assert refused.status_code == 401
    assert _lane_answers(client) == 1


def test_an_expired_url_takes_the_framework_way(client: TestClient, seeded: Services) -> None:
    lane = client.app.state.fast_lane
    client.get(STATISTICS)
    client.get(STATISTICS)
    assert _lane_answers(client) == 1
    for key, route in list(lane._routes.items()):  # as if the window's midnight had passed
        lane._routes[key] = type(route)(route.question, route.role, route.window_header, 0.0)

    answer = client.get(STATISTICS)

    assert answer.status_code == 200 and answer.headers["x-cache"] == "hit"
    assert _lane_answers(client) == 1


def test_a_window_relative_to_today_expires_at_its_local_midnight() -> None:
    query = {"days": ["7"], "tz": ["Asia/Tokyo"]}
    window = parse_window(query, "UTC")

    expiry = window_expiry(query, window)

    assert expiry == window.end.timestamp()
    midnight = datetime.fromtimestamp(expiry, timezone.utc).astimezone(window.end.tzinfo)
    assert expiry > time.time() and (midnight.hour, midnight.minute) == (15, 0)  # Tokyo 00:00


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, "end"),
        ({"since": ["2024-01-01"]}, "end"),
        ({"until": ["2024-01-31"]}, math.inf),
        ({"since": ["2024-01-01"], "until": ["2024-01-31"]}, math.inf),
        ({"since": ["2024-01-01T00:00:00Z"], "until": ["2024-01-02T00:00:00Z"]}, math.inf),
        ({"since": ["2024-01-01T06:00:00Z"]}, None),
        ({"until": ["2030-01-02T06:00:00Z"]}, None),
    ],
)
def test_window_expiry_follows_what_the_parameters_leave_to_now(
    query: dict[str, list[str]], expected: object
) -> None:
    window = parse_window(query, "UTC")

    expiry = window_expiry(query, window)

    assert expiry == (window.end.timestamp() if expected == "end" else expected)


def test_a_day_range_in_the_past_never_expires() -> None:
    query = {"since": ["2020-02-01"], "until": ["2020-02-29"]}
    window = parse_window(query, "Europe/Paris")

    assert window.last_day == date(2020, 2, 29) and window_expiry(query, window) == math.inf

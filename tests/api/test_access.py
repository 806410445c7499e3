"""Credentials and roles: no endpoint answers without them, and each role is refused the rest.

The role tests walk the OpenAPI schema, so an endpoint added later is covered without a change
here. A refusal is asserted on the status alone: the guard runs before any handler, so a 401 or
403 means the request reached nothing.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Iterator

import psycopg
import pytest
from litestar.testing import TestClient

from api.app import create_app
from api.auth import forget_credentials
from msd.runtime import Services
from msd.settings import SettingsError, load_settings
from tests.api.conftest import seed_alerts, start_early_in_a_minute
from workflow import accounts

# OpenAPI names paths without the trailing slash the routes also answer with.
PUBLIC = {
    ("GET", "/health"),
    ("GET", "/health/live"),
    ("GET", "/metrics"),
    ("GET", "/"),
    ("POST", "/api/session"),
}
SAFE = {"GET", "HEAD", "OPTIONS"}
# Answered with a stream that never ends when admitted: checked for refusals only.
STREAMS = {("GET", "/api/live")}


def operations(client: TestClient) -> list[tuple[str, str, str | None]]:
    """Every (method, concrete path, required role) the OpenAPI schema lists."""
    schema = client.get("/schema/openapi.json").json()
    found = []
    for template, item in schema["paths"].items():
        path = re.sub(r"\{(\w+)\}", lambda m: "987654" if "id" in m.group(1) else "x", template)
        for method in item:
            method = method.upper()
            if (method, template) in PUBLIC:
                continue
            admin = template.startswith(("/api/users", "/api/tokens"))
            role = "admin" if admin else ("viewer" if method in SAFE else "analyst")
            if (method, template) == ("DELETE", "/api/session"):
                role = "viewer"
            found.append((method, path, role))
    return found


@pytest.fixture
def bare(services: Services) -> Iterator[TestClient]:
    """A client that sends no credentials unless a test adds them."""
    with TestClient(create_app(services)) as test_client:
        yield test_client


def token_for(services: Services, role: str) -> str:
    return accounts.create_token(services.db, f"{role} test", role)[1]


def test_every_endpoint_but_health_metrics_and_sign_in_needs_credentials(bare: TestClient):
    walked = operations(bare)

    answers = {(m, p): bare.request(m, p, json={}).status_code for m, p, _ in walked}

    assert len(walked) >= 15, "the schema lists the API's endpoints"
    assert {key: code for key, code in answers.items() if code != 401} == {}
    assert bare.get("/health").status_code == 200
    assert bare.get("/metrics").status_code == 200


@pytest.mark.parametrize("role", ["viewer", "analyst"])
def test_each_role_is_refused_what_it_may_not_do_and_allowed_the_rest(
    bare: TestClient, services: Services, role: str
) -> None:
    bare.headers["Authorization"] = f"Bearer {token_for(services, role)}"
    walked = operations(bare)

    refused, allowed = [], []
    for method, path, needed in walked:
        may = accounts.rank(role) >= accounts.rank(needed)
        if may and (method, path) in STREAMS:
            continue
        code = bare.request(method, path, json={}).status_code
        (allowed if may else refused).append((method, path, code))

    assert refused and all(code == 403 for *_, code in refused), refused
    assert allowed and all(code not in (401, 403) for *_, code in allowed), allowed


def test_admin_is_refused_nothing(bare: TestClient, services: Services) -> None:
    bare.headers["Authorization"] = f"Bearer {token_for(services, 'admin')}"

    codes = [
        bare.request(m, p, json={}).status_code
        for m, p, _ in operations(bare)
        if (m, p) not in STREAMS
    ]

    assert codes and not {401, 403} & set(codes)


def test_a_wrong_or_malformed_authorization_is_401_saying_what_to_send(bare: TestClient):
    wrong = bare.get("/api/alerts/", headers={"Authorization": "Bearer msd_not-a-token"})
    basic = bare.get("/api/alerts/", headers={"Authorization": "Basic dXNlcjpwYXNz"})

    assert wrong.status_code == basic.status_code == 401
    assert wrong.headers["content-type"].startswith("application/problem+json")
    assert "Bearer" in basic.json()["detail"] and wrong.headers["www-authenticate"]
    assert "unknown, revoked or expired" in wrong.json()["detail"]
    assert wrong.json()["errors"][0]["header"] == "Authorization"
    assert wrong.json()["title"] == "Unauthorized"


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer msd_not-a-token", "Basic dXNlcjpwYXNz", "Bearer ", "abc"],
)
def test_every_401_names_the_authorization_header_in_its_errors(
    bare: TestClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    refused = bare.get("/api/alerts/", headers=headers)

    assert refused.status_code == 401
    (error,) = refused.json()["errors"]
    assert error["header"] == "Authorization" and error["message"]


def test_tokens_are_stored_as_digests_and_stop_working_when_revoked_or_expired(
    bare: TestClient, services: Services
) -> None:
    revoked_id, revoked = accounts.create_token(services.db, "to revoke", "viewer")
    expiring_id, expiring = accounts.create_token(
        services.db, "to expire", "viewer", expires_at=datetime.now(timezone.utc) + timedelta(1)
    )
    assert bare.get("/api/alerts/", headers={"Authorization": f"Bearer {revoked}"}).is_success

    accounts.revoke_token(services.db, revoked_id)
    with services.db.transaction() as conn:
        conn.execute(
            "UPDATE api_tokens SET expires_at = now() - interval '1 s' WHERE token_id = %s",
            (expiring_id,),
        )
        stored = conn.execute("SELECT string_agg(token_digest, ' ') FROM api_tokens").fetchone()
    forget_credentials()  # lookups are remembered for 2 s; revocation here was outside the app

    for secret in (revoked, expiring):
        assert (
            bare.get("/api/alerts/", headers={"Authorization": f"Bearer {secret}"}).status_code
            == 401
        )
        assert secret not in stored[0]


def test_revoking_through_the_api_takes_effect_at_once(bare: TestClient, services: Services):
    admin = {"Authorization": f"Bearer {token_for(services, 'admin')}"}
    made = bare.post("/api/tokens/", json={"name": "ci", "role": "viewer"}, headers=admin)
    viewer = {"Authorization": f"Bearer {made.json()['token']}"}
    assert made.status_code == 201 and bare.get("/api/alerts/", headers=viewer).is_success

    revoked = bare.delete(f"/api/tokens/{made.json()['token_id']}/", headers=admin)

    assert revoked.status_code == 200
    assert bare.get("/api/alerts/", headers=viewer).status_code == 401


def test_a_token_for_a_user_cannot_outrank_the_user(services: Services) -> None:
    accounts.add_user(services.db, "vera", "a long enough password", "viewer")

    with pytest.raises(accounts.AccountError, match="cannot be analyst"):
        accounts.create_token(services.db, "too much", "analyst", username="vera")


def sign_in(client: TestClient, services: Services, role: str = "analyst", **headers: str):
    accounts.add_user(services.db, f"{role}-user", "correct horse battery", role)
    return client.post(
        "/api/session/",
        json={"username": f"{role}-user", "password": "correct horse battery"},
        headers=headers,
    )


def test_sign_in_sets_an_httponly_strict_session_and_a_readable_csrf_cookie(
    bare: TestClient, services: Services
) -> None:
    response = sign_in(bare, services)

    cookies = response.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("msd_session="))
    csrf = next(c for c in cookies if c.startswith("msd_csrf="))
    assert response.status_code == 200 and response.json()["role"] == "analyst"
    assert (
        "HttpOnly" in session and "samesite=strict" in session.lower() and "Secure" not in session
    )
    assert "HttpOnly" not in csrf and response.json()["csrf_token"] in csrf
    assert bare.get("/api/session/").json()["name"] == "analyst-user"


def test_cookies_are_secure_behind_a_tls_proxy(bare: TestClient, services: Services) -> None:
    response = sign_in(bare, services, **{"X-Forwarded-Proto": "https"})

    assert all("Secure" in c for c in response.headers.get_list("set-cookie"))


def test_a_signed_in_change_needs_the_csrf_header(bare: TestClient, services: Services) -> None:
    seed_alerts(services.db, 8)
    csrf = sign_in(bare, services).json()["csrf_token"]
    change = {"status": "REVIEWING", "note": "looked at it"}
    pending = bare.get("/api/alerts/?status=PENDING").json()["results"][0]["alert_id"]

    forged = bare.patch(f"/api/alerts/{pending}/", json=change)
    wrong = bare.patch(f"/api/alerts/{pending}/", json=change, headers={"X-CSRF-Token": "x"})
    right = bare.patch(f"/api/alerts/{pending}/", json=change, headers={"X-CSRF-Token": csrf})

    assert forged.status_code == wrong.status_code == 403
    assert "X-CSRF-Token" in forged.json()["detail"]
    assert right.status_code == 200 and right.json()["status"] == "REVIEWING"
    history = bare.get(f"/api/alerts/{pending}/history/").json()
    assert (history[-1]["actor"], history[-1]["source"]) == ("analyst-user", "api session")


def test_sign_out_ends_the_session(bare: TestClient, services: Services) -> None:
    csrf = sign_in(bare, services, "viewer").json()["csrf_token"]

    out = bare.delete("/api/session/", headers={"X-CSRF-Token": csrf})

    assert out.status_code == 200
    assert bare.get("/api/alerts/").status_code == 401


def test_wrong_passwords_are_401_then_429_after_ten(bare: TestClient, services: Services):
    accounts.add_user(services.db, "target", "the right password", "viewer")
    wrong = {"username": "target", "password": "not the password"}

    codes = [bare.post("/api/session/", json=wrong).status_code for _ in range(11)]
    right = bare.post("/api/session/", json={"username": "target", "password": "x" * 12})

    assert codes[:10] == [401] * 10 and codes[10] == 429
    assert right.status_code == 429 and int(right.headers["retry-after"]) > 0


def test_changes_through_a_token_name_the_token_in_the_audit_trail(
    bare: TestClient, services: Services
) -> None:
    seed_alerts(services.db, 8)
    accounts.add_user(services.db, "ana", "a long enough password", "analyst")
    token_id, secret = accounts.create_token(services.db, "ana's", "analyst", username="ana")
    bare.headers["Authorization"] = f"Bearer {secret}"
    pending = bare.get("/api/alerts/?status=PENDING").json()["results"][0]["alert_id"]

    bare.patch(f"/api/alerts/{pending}/", json={"status": "REVIEWING", "note": "why"})

    last = bare.get(f"/api/alerts/{pending}/history/").json()[-1]
    assert (last["actor"], last["source"], last["note"]) == ("ana", f"api token:{token_id}", "why")
    assert last["before"]["status"] == "PENDING" and last["after"]["status"] == "REVIEWING"


def test_the_audit_trail_refuses_updates_and_deletes_even_in_sql(services: Services) -> None:
    seed_alerts(services.db, 1)

    for statement in ("UPDATE alert_events SET note = 'rewritten'", "DELETE FROM alert_events"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            with services.db.transaction() as conn:
                conn.execute(statement)


def test_an_anonymous_role_lets_old_clients_read_but_not_change(services: Services) -> None:
    services.settings = load_settings({"anonymous_role": "viewer"}, environ={})
    seed_alerts(services.db, 2)
    with TestClient(create_app(services)) as old_client:
        listed = old_client.get("/api/alerts/")
        changed = old_client.patch("/api/alerts/seed-1/", json={"status": "REVIEWING"})

    assert listed.status_code == 200 and listed.json()["count"] == 2
    assert changed.status_code == 403


def test_an_anonymous_role_on_a_network_address_needs_confirmation() -> None:
    with pytest.raises(SettingsError, match="MSD_ANONYMOUS_ON_NETWORK=yes"):
        load_settings({"anonymous_role": "analyst", "host": "0.0.0.0"}, environ={})

    confirmed = load_settings(
        {"anonymous_role": "analyst", "host": "0.0.0.0", "anonymous_on_network": "yes"},
        environ={},
    )
    assert confirmed.anonymous_role == "analyst"


def test_over_the_rate_limit_is_429_with_retry_after_per_token(services: Services) -> None:
    services.settings = load_settings({"rate_limit": "3/minute"}, environ={})
    first, second = token_for(services, "viewer"), token_for(services, "viewer")
    start_early_in_a_minute()
    with TestClient(create_app(services)) as client:
        codes = [
            client.get("/api/alerts/", headers={"Authorization": f"Bearer {first}"}).status_code
            for _ in range(4)
        ]
        limited = client.get("/api/alerts/", headers={"Authorization": f"Bearer {first}"})
        other = client.get("/api/alerts/", headers={"Authorization": f"Bearer {second}"})

    assert codes == [200, 200, 200, 429]
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert "3 requests per 60 s" in limited.json()["detail"]
    assert other.status_code == 200

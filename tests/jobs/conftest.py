"""Fixtures for batch tasks: the API client over real services, seeded alerts, task polling."""

from __future__ import annotations

import time
from typing import Any

from litestar.testing import TestClient

from tests.api.conftest import client, services  # noqa: F401  (fixtures shared with tests/api)
from workflow.db import Database

STATUSES = ("PENDING", "REVIEWING", "RESOLVED", "DISMISSED")


def seed(db: Database, count: int, status: str = "PENDING", *, prefix: str = "b-") -> list[str]:
    """``count`` alerts ``<prefix>1``… in one status; their ids, in order."""
    with db.transaction(actor="seed", source="test") as conn:
        conn.execute(
            "INSERT INTO alerts (alert_id, company_name, violation_type, severity, status,"
            " detected_at, resolved_at)"
            " SELECT %s || g, 'Initech', 'type-1', 'HIGH', %s, now(),"
            "  CASE WHEN %s = 'RESOLVED' THEN now() END"
            " FROM generate_series(1, %s) AS g",
            (prefix, status, status, count),
        )
    return [f"{prefix}{n}" for n in range(1, count + 1)]


def statuses(db: Database, alert_ids: list[str]) -> dict[str, str]:
    with db.reading() as conn:
        rows = conn.execute(
            "SELECT alert_id, status FROM alerts WHERE alert_id = ANY(%s)", (alert_ids,)
        ).fetchall()
    return dict(rows)


def update_events(db: Database, prefix: str) -> dict[str, int]:
    """How many update events each alert whose id starts with ``prefix`` has."""
    with db.reading() as conn:
        rows = conn.execute(
            "SELECT alert_id, count(*) FROM alert_events WHERE op = 'U' AND alert_id LIKE %s"
            " GROUP BY alert_id",
            (prefix + "%",),
        ).fetchall()
    return dict(rows)


def wait_done(api: TestClient, task_id: str, timeout: float = 30) -> dict[str, Any]:
    """Poll the task until it is finished; its last body."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = api.get(f"/api/tasks/{task_id}/").json()
        if body["state"] in ("done", "failed"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} not finished after {timeout}s: {body}")


def deliveries_waiting(db: Database, task_id: str) -> int:
    """How many connections wait for the advisory lock a run of ``task_id`` holds."""
    with db.reading() as conn:
        return conn.execute(
            "WITH k AS (SELECT hashtextextended(%s, 7201) AS key) SELECT count(*) FROM pg_locks, k"
            " WHERE locktype = 'advisory' AND NOT granted"
            " AND classid::bigint = (key >> 32) & 4294967295 AND objid::bigint = key & 4294967295",
            (task_id,),
        ).fetchone()[0]


def url_for_subprocess(pg_server_url: str, pg_url: str) -> str:
    """The test's schema as a postgresql:// URL, the form MSD_DATABASE_URL takes."""
    from urllib.parse import quote

    from psycopg.conninfo import conninfo_to_dict

    options = conninfo_to_dict(pg_url)["options"]
    joiner = "&" if "?" in pg_server_url else "?"
    return f"{pg_server_url}{joiner}options={quote(str(options))}"

"""Reconciliation finds every kind of gap between ClickHouse and PostgreSQL, and a repair through
the replication path makes every aggregate equal PostgreSQL's, once, however often it runs.

Gaps are planted the ways they happen: an event lost before replication (written in PostgreSQL,
its event row deleted), a delete that never replicated, stray rows in ClickHouse itself.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from litestar.testing import TestClient

from jobs.reconcile import reconcile
from msd.runtime import Services
from olap.reconcile import compare
from tests.api.conftest import seed_alerts
from tests.jobs.conftest import url_for_subprocess
from tests.olap.truth import clickhouse_aggregates, postgres_aggregates
from workflow.db import Database

REPO = Path(__file__).resolve().parents[2]


def _without_event(db: Database, sql: str, params: tuple, alert_id: str) -> None:
    """Change alerts and lose the change's event, as if replication never saw it."""
    with db.transaction(actor="test", source="test") as conn:
        before = conn.execute("SELECT coalesce(max(event_id), 0) FROM alert_events").fetchone()
        conn.execute(sql, params)
        # The audit trail is append-only; losing an event takes lifting its guard.
        conn.execute("ALTER TABLE alert_events DISABLE TRIGGER alert_events_no_rewrite")
        conn.execute(
            "DELETE FROM alert_events WHERE alert_id = %s AND event_id > %s",
            (alert_id, before[0]),
        )
        conn.execute("ALTER TABLE alert_events ENABLE TRIGGER alert_events_no_rewrite")


def _plant_gaps(services: Services) -> set[date]:
    """Five gaps, one per alert; the UTC days they fall on."""
    db, store = services.db, services.store
    with db.reading() as conn:
        days = {
            row[0]
            for row in conn.execute(
                "SELECT (detected_at AT TIME ZONE 'UTC')::date FROM alerts WHERE alert_id ="
                " ANY(ARRAY['seed-5', 'seed-7', 'seed-9', 'seed-11'])"
                " UNION SELECT ((now() - interval '3 days') AT TIME ZONE 'UTC')::date"
            )
        }
    _without_event(
        db,
        "INSERT INTO alerts (alert_id, company_name, violation_type, severity, amount,"
        " detected_at) VALUES ('never-replicated', 'Initech', 'type-1', 'CRITICAL', 999.99,"
        " now() - interval '3 days')",
        (),
        "never-replicated",
    )
    # Only the region: the counts of its day stay the same, the fingerprint does not.
    _without_event(
        db,
        "UPDATE alerts SET region = 'ZZ' WHERE alert_id = %s",
        ("seed-5",),
        "seed-5",
    )
    _without_event(db, "DELETE FROM alerts WHERE alert_id = %s", ("seed-7",), "seed-7")
    # A stray alert ClickHouse holds that PostgreSQL never had, and a stray -1 row that takes
    # an alert out of every table and view, as a lost part would.
    columns = (
        "version, sign, event_id, company_key, company_name, violation_type, severity, status,"
        " region, amount, detected_at, resolved_at, resolution_seconds"
    )
    store.command(
        f"INSERT INTO {store.database}.alert_changes (alert_pk, alert_id, {columns})"
        f" SELECT 900000001, 'ghost-1', {columns} FROM {store.database}.alert_changes"
        " WHERE alert_id = 'seed-9' AND sign = 1 LIMIT 1"
    )
    # Unaliased: an alias named sign would stand for the column in the WHERE clause too.
    cancelling = columns.replace("sign,", "-1,")
    store.command(
        f"INSERT INTO {store.database}.alert_changes (alert_pk, alert_id, {columns})"
        f" SELECT alert_pk, alert_id, {cancelling} FROM {store.database}.alert_changes"
        " WHERE alert_id = 'seed-11' AND sign = 1 LIMIT 1"
    )
    return days


@pytest.fixture
def replicated(services: Services) -> Services:
    seed_alerts(services.db, 240, hours_apart=3)
    services.replicator.drain()
    return services


def test_a_faithful_copy_is_clean(replicated: Services) -> None:
    found = compare(replicated.db, replicated.store)

    assert found.clean and found.days_compared >= 30
    assert found.alerts_difference == 0


def test_pending_events_are_not_reported_as_gaps(replicated: Services) -> None:
    db = replicated.db
    with db.transaction(actor="test", source="test") as conn:
        conn.execute("UPDATE alerts SET status = 'RESOLVED' WHERE alert_id LIKE 'seed-1%%'")
        conn.execute("DELETE FROM alerts WHERE alert_id LIKE 'seed-2%%'")

    found = compare(db, replicated.store)

    assert found.clean


def test_every_planted_gap_is_found_and_logged_by_day(
    replicated: Services, caplog: pytest.LogCaptureFixture
) -> None:
    days = _plant_gaps(replicated)
    caplog.set_level(logging.WARNING, logger="jobs.reconcile")

    run = reconcile(replicated.db, replicated.store)

    assert not run.clean
    assert {difference.day for difference in run.found.differing} == days
    lines = [r.getMessage() for r in caplog.records if "differs" in r.getMessage()]
    assert len(lines) == len(run.found.differing)
    assert all("PostgreSQL" in line and "ClickHouse" in line for line in lines)
    assert run.final.alerts_difference > 0 and run.final.amount_difference > 0


def test_repair_makes_every_aggregate_equal_postgresql_and_a_second_run_is_clean(
    replicated: Services,
) -> None:
    _plant_gaps(replicated)

    repaired = reconcile(replicated.db, replicated.store, repair=True)
    replicated.replicator.drain()
    again = reconcile(replicated.db, replicated.store)

    assert repaired.repaired.alerts == 5 and repaired.clean
    assert again.clean and again.found.clean
    assert clickhouse_aggregates(replicated.store) == postgres_aggregates(replicated.db)


def test_repair_writes_events_not_clickhouse_and_twice_before_replication_writes_them_once(
    replicated: Services,
) -> None:
    _plant_gaps(replicated)
    replicated.replicator.acquire()  # hold replication back: corrections stay pending
    gapped = clickhouse_aggregates(replicated.store)

    first = reconcile(replicated.db, replicated.store, repair=True)
    second = reconcile(replicated.db, replicated.store, repair=True)
    # The repair wrote events only: ClickHouse is untouched until replication applies them.
    untouched = clickhouse_aggregates(replicated.store)
    replicated.replicator.drain()

    assert first.repaired.events >= 5 and second.repaired.events == 0
    assert untouched == gapped != postgres_aggregates(replicated.db)
    assert clickhouse_aggregates(replicated.store) == postgres_aggregates(replicated.db)


def test_views_that_disagree_with_the_change_rows_are_reported_not_repaired(
    replicated: Services,
) -> None:
    store = replicated.store
    store.command(
        f"ALTER TABLE {store.database}.alert_changes DELETE WHERE alert_id = 'seed-13'"
        " SETTINGS mutations_sync = 2"
    )

    run = reconcile(replicated.db, store, repair=True)

    assert not run.clean and run.found.unrepairable_cells
    assert run.repaired.events == 0


def test_metrics_show_the_last_run(replicated: Services, client: TestClient) -> None:
    _plant_gaps(replicated)
    run = reconcile(replicated.db, replicated.store)

    body = client.get("/metrics").text

    assert f"msd_reconcile_days_differing {len(run.final.differing)}" in body
    assert f"msd_reconcile_alerts_difference {run.final.alerts_difference}" in body
    assert "msd_reconcile_last_run_timestamp_seconds 1" in body  # a Unix time of this era

    reconcile(replicated.db, replicated.store, repair=True)
    assert "msd_reconcile_days_differing 0" in client.get("/metrics").text


def test_msd_reconcile_exits_1_on_gaps_and_0_once_repaired(
    replicated: Services, clickhouse_http, pg_server_url: str, pg_url: str, tmp_path
) -> None:
    _plant_gaps(replicated)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSD_")}
    env |= {
        "MSD_DATABASE_URL": url_for_subprocess(pg_server_url, pg_url),
        "MSD_CLICKHOUSE_URL": clickhouse_http.url,
        "MSD_CLICKHOUSE_DATABASE": replicated.store.database,
        "MSD_DATA_DIR": str(tmp_path / "data"),
        "PYTHONPATH": str(REPO),
    }

    def msd_reconcile(*flags: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "msd.cli", "reconcile", *flags]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    found, repaired, after = msd_reconcile(), msd_reconcile("--repair"), msd_reconcile()

    assert found.returncode == 1 and "differs: PostgreSQL" in found.stderr
    assert repaired.returncode == 0, repaired.stderr
    assert after.returncode == 0 and "0 differed" in after.stdout
    # This process's replicator holds the lock, so the command left its corrections pending
    # (and counted them as such); they take effect once replicated.
    assert "another replicator is active" in repaired.stderr
    replicated.replicator.drain()
    assert clickhouse_aggregates(replicated.store) == postgres_aggregates(replicated.db)

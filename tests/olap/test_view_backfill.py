"""A view added to the schema after data replicated holds that data once it is created."""

from __future__ import annotations

from olap.replicator import Replicator
from olap.store import ClickHouseStore
from tests.api.conftest import seed_alerts
from tests.olap.truth import clickhouse_aggregates, postgres_aggregates
from workflow.db import Database


def test_migrate_fills_a_missing_daily_view_from_the_change_rows_once(
    db: Database, store: ClickHouseStore
) -> None:
    seed_alerts(db, 150, hours_apart=5)
    replicator = Replicator(db, store)
    replicator.drain()
    with db.transaction(actor="test", source="test") as conn:
        conn.execute("UPDATE alerts SET severity = 'CRITICAL' WHERE alert_id LIKE 'seed-1%'")
        conn.execute("DELETE FROM alerts WHERE alert_id LIKE 'seed-2%'")
    replicator.drain()
    # As a data folder of a release before the view looks.
    store.command(f"DROP TABLE {store.database}.company_daily_mv")
    store.command(f"DROP TABLE {store.database}.company_daily")

    store.migrate()
    filled = clickhouse_aggregates(store)["company_days"]
    store.migrate()
    again = clickhouse_aggregates(store)["company_days"]
    replicator.release()

    truth = postgres_aggregates(db)["company_days"]
    assert filled == truth and len(truth) > 20
    assert again == truth, "a second migrate adds nothing"

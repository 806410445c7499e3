"""Views added to the schema after data replicated hold that data once they are created."""

from __future__ import annotations

from olap.replicator import Replicator
from olap.store import ClickHouseStore
from tests.api.conftest import seed_alerts
from tests.olap.truth import clickhouse_aggregates, postgres_aggregates
from workflow.db import Database


def test_migrate_fills_missing_daily_views_from_the_change_rows_once(
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
    for view in ("company_daily", "stats_daily"):
        store.command(f"DROP TABLE {store.database}.{view}_mv")
        store.command(f"DROP TABLE {store.database}.{view}")

    store.migrate()
    filled = clickhouse_aggregates(store)
    store.migrate()
    again = clickhouse_aggregates(store)
    replicator.release()

    truth = postgres_aggregates(db)
    for part in ("company_days", "days"):
        assert filled[part] == truth[part] and len(truth[part]) > 20, part
        assert again[part] == truth[part], f"{part}: a second migrate adds nothing"

"""Bytes per alert on disk, in PostgreSQL and in ClickHouse, for generated demo alerts.

    python bench/storage.py [--alerts 200000]

Starts from an empty data folder with the embedded PostgreSQL and ClickHouse, loads generated
alerts (ingest/generate.py: the demo's distribution), replicates them, optimizes the ClickHouse
tables (merged parts, as after the background merges), and prints for each store the bytes per
alert of each table and of the whole: PostgreSQL's relation sizes with indexes and TOAST,
ClickHouse's compressed bytes on disk and uncompressed bytes of its active parts.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from ingest.generate import load_generated
from msd.runtime import open_services
from msd.settings import load_settings
from olap.store import REPLICATED_TABLES
from workflow.embedded import stop_embedded_postgres

POSTGRES_TABLES = ("alerts", "alert_events")


def measure(alerts: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="msd-bench-storage-"))
    settings = load_settings({"data_dir": str(folder)}, environ={})
    services = open_services(settings)
    try:
        load_generated(services.db, alerts, seed=7, now=datetime.now(timezone.utc))
        services.replicator.drain()
        _report_postgres(services, alerts)
        _report_clickhouse(services, alerts)
    finally:
        services.close()
        stop_embedded_postgres(folder)


def _report_postgres(services, alerts: int) -> None:
    total = 0
    with services.db.reading() as conn:
        for table in POSTGRES_TABLES:
            size, rows = conn.execute(
                f"SELECT pg_total_relation_size('{table}'), (SELECT count(*) FROM {table})"
            ).fetchone()
            total += size
            print(f"postgresql {table:<22} {rows:>10,} rows {size / alerts:>8.1f} B/alert")
    print(f"postgresql {'total':<22} {'':>15} {total / alerts:>8.1f} B/alert")


def _report_clickhouse(services, alerts: int) -> None:
    store = services.store
    for table in REPLICATED_TABLES:
        store.command(f"OPTIMIZE TABLE {store.database}.{table} FINAL")
    rows = store.query_rows(
        "SELECT table, sum(rows) AS rows, sum(data_compressed_bytes) AS compressed,"
        " sum(data_uncompressed_bytes) AS uncompressed, sum(bytes_on_disk) AS on_disk"
        " FROM system.parts WHERE database = {db:String} AND active GROUP BY table"
        " ORDER BY table",
        {"db": store.database},
    )
    on_disk = 0
    for row in rows:
        on_disk += row["on_disk"]
        print(
            f"clickhouse {row['table']:<22} {row['rows']:>10,} rows"
            f" {row['on_disk'] / alerts:>8.1f} B/alert on disk"
            f" ({row['uncompressed'] / alerts:.1f} uncompressed)"
        )
    print(f"clickhouse {'total':<22} {'':>15} {on_disk / alerts:>8.1f} B/alert on disk")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=200_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    measure(args.alerts)


if __name__ == "__main__":
    main()

"""What the list's ordering indexes (migration 0004) cost ingest, and what they buy deep pages.

    python bench/list_orderings.py [--url postgresql://root@127.0.0.1:5432/test] [--rows 200000]
                                   [--runs 3]

Each run loads ``--rows`` generated alerts into a fresh schema (the same COPY and set-wise upsert
as `msd ingest`), once with every migration and once with the four ordering indexes dropped,
alternating, and prints the fastest and the median load time of each (on a shared machine the
fastest run is the one least disturbed). Then it times a keyset page 90% deep in
every ordering, on a schema with the indexes and on one without.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import uuid
from datetime import datetime, timezone

import psycopg
from psycopg.conninfo import make_conninfo

from ingest.generate import load_generated
from workflow.alerts import ORDERINGS, ListFilters, encode_cursor, list_alerts
from workflow.db import Database, apply_migrations

ORDERING_INDEXES = (
    "alerts_by_amount",
    "alerts_by_severity",
    "alerts_by_company_name",
    "alerts_by_status",
)
NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)


def fresh_schema(server_url: str) -> tuple[str, str]:
    schema = f"msd_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = make_conninfo(server_url, options=f"-csearch_path={schema}")
    apply_migrations(url)
    return schema, url


def drop_schema(server_url: str, schema: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def load_seconds(server_url: str, rows: int, with_indexes: bool) -> tuple[float, str, str]:
    schema, url = fresh_schema(server_url)
    if not with_indexes:
        with psycopg.connect(url, autocommit=True) as conn:
            for index in ORDERING_INDEXES:
                conn.execute(f"DROP INDEX {index}")
    db = Database(url, max_size=2)
    try:
        started = time.perf_counter()
        load_generated(db, rows, now=NOW)
        return time.perf_counter() - started, schema, url
    finally:
        db.close()


def index_sizes(url: str) -> None:
    """What each load writes besides the table: the bytes of every index on alerts."""
    with psycopg.connect(url) as conn:
        sizes = conn.execute(
            "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid)"
            " FROM pg_index WHERE indrelid = 'alerts'::regclass ORDER BY 2 DESC"
        ).fetchall()
        table = conn.execute("SELECT pg_relation_size('alerts')").fetchone()[0]
    ordering = sum(size for name, size in sizes if name in ORDERING_INDEXES)
    print(
        f"table {table / 2**20:.1f} MiB; indexes: "
        + ", ".join(f"{name} {size / 2**20:.1f} MiB" for name, size in sizes)
    )
    print(
        f"the four ordering indexes: {ordering / 2**20:.1f} MiB of "
        f"{sum(size for _, size in sizes) / 2**20:.1f} MiB of indexes"
    )


def deep_pages(url: str, rows: int) -> None:
    db = Database(url, max_size=2)
    try:
        for ordering in ORDERINGS:
            # The row 90% deep, found once, stands for a cursor a client reached by paging.
            last = list_alerts(db, ListFilters(), limit=1, offset=rows * 9 // 10, ordering=ordering)
            cursor = encode_cursor(last[0], ordering)
            started = time.perf_counter()
            for _ in range(20):
                list_alerts(db, ListFilters(), limit=50, after=cursor, ordering=ordering)
            per_page = (time.perf_counter() - started) / 20
            print(
                f"  {ordering:14} page of 50 after row {rows * 9 // 10:,}: {per_page * 1000:.2f} ms"
            )
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://root@127.0.0.1:5432/test")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    times: dict[bool, list[float]] = {True: [], False: []}
    kept: dict[bool, tuple[str, str]] = {}
    for _ in range(args.runs):
        for with_indexes in (False, True):
            seconds, schema, url = load_seconds(args.url, args.rows, with_indexes)
            times[with_indexes].append(seconds)
            print(f"load {args.rows:,} rows, ordering indexes {with_indexes}: {seconds:.2f} s")
            if with_indexes not in kept:
                kept[with_indexes] = (schema, url)
            else:
                drop_schema(args.url, schema)
    for label, pick in (("fastest", min), ("median", statistics.median)):
        without, with_ = pick(times[False]), pick(times[True])
        print(
            f"{label}: without the ordering indexes {without:.2f} s"
            f" ({args.rows / without:,.0f} rows/s), with them {with_:.2f} s"
            f" ({args.rows / with_:,.0f} rows/s): {100 * (with_ / without - 1):+.1f}%"
        )
    for with_indexes, (schema, url) in sorted(kept.items()):
        print(f"deep keyset pages, ordering indexes {with_indexes}:")
        deep_pages(url, args.rows)
        if with_indexes:
            index_sizes(url)
        drop_schema(args.url, schema)


if __name__ == "__main__":
    main()

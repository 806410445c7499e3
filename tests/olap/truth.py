"""The same aggregates two ways: from ClickHouse's views and with GROUP BY in PostgreSQL."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from olap.store import ClickHouseStore
from workflow.db import Database

Aggregates = dict[str, Any]


def clickhouse_aggregates(store: ClickHouseStore) -> Aggregates:
    db = store.database
    hourly = store.query_rows(
        "SELECT toString(hour) AS hour, severity, status, region, violation_type,"
        " sum(alerts) AS alerts, toDecimal128(sum(amount), 2) AS amount, sum(resolved) AS resolved,"
        f" sum(resolution_seconds) AS seconds FROM {db}.stats_hourly"
        " GROUP BY hour, severity, status, region, violation_type HAVING alerts != 0"
    )
    companies = store.query_rows(
        "SELECT company_key, severity, sum(alerts) AS alerts, toDecimal128(sum(amount), 2)"
        f" AS amount FROM {db}.company_hourly GROUP BY company_key, severity HAVING alerts != 0"
    )
    days = store.query_rows(
        "SELECT toString(day) AS day, severity, status, sum(alerts) AS alerts,"
        " toDecimal128(sum(amount), 2) AS amount, sum(resolved) AS resolved,"
        f" sum(resolution_seconds) AS seconds FROM {db}.stats_daily"
        " GROUP BY day, severity, status HAVING alerts != 0"
    )
    daily = store.query_rows(
        "SELECT toString(day) AS day, company_key, severity, sum(alerts) AS alerts,"
        f" toDecimal128(sum(amount), 2) AS amount FROM {db}.company_daily"
        " GROUP BY day, company_key, severity HAVING alerts != 0"
    )
    names = store.query_rows(
        f"SELECT company_key, company_name, sum(alerts) AS alerts FROM {db}.company_names"
        " GROUP BY company_key, company_name HAVING alerts != 0"
    )
    current = store.query_rows(
        # A deleted and re-inserted alert restarts its version in a new row: the newer row wins.
        f"SELECT alert_id, argMax(status, (alert_pk, version)) AS status FROM {db}.alert_changes"
        " GROUP BY alert_id HAVING sum(sign) != 0"
    )
    return {
        "hourly": _keyed(hourly, 5),
        "companies": _keyed(companies, 2),
        "days": _keyed(days, 3),
        "company_days": _keyed(daily, 3),
        "names": _keyed(names, 2),
        "current": _keyed(current, 1),
    }


def postgres_aggregates(database: Database) -> Aggregates:
    with database.reading() as conn:
        hourly = _dicts(
            conn.execute(
                "SELECT to_char(date_trunc('hour', detected_at AT TIME ZONE 'UTC'),"
                " 'YYYY-MM-DD HH24:MI:SS') AS hour, severity, status, region, violation_type,"
                " count(*) AS alerts, coalesce(sum(amount), 0)::numeric(38, 2) AS amount,"
                " count(resolved_at) AS resolved,"
                " coalesce(sum(extract(epoch FROM resolved_at - detected_at)::bigint), 0)"
                " AS seconds"
                " FROM alerts GROUP BY 1, 2, 3, 4, 5"
            )
        )
        companies = _dicts(
            conn.execute(
                "SELECT company_key, severity, count(*) AS alerts,"
                " coalesce(sum(amount), 0)::numeric(38, 2) AS amount FROM alerts GROUP BY 1, 2"
            )
        )
        days = _dicts(
            conn.execute(
                "SELECT to_char(detected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, severity,"
                " status, count(*) AS alerts, coalesce(sum(amount), 0)::numeric(38, 2) AS amount,"
                " count(resolved_at) AS resolved,"
                " coalesce(sum(extract(epoch FROM resolved_at - detected_at)::bigint), 0)"
                " AS seconds"
                " FROM alerts GROUP BY 1, 2, 3"
            )
        )
        daily = _dicts(
            conn.execute(
                "SELECT to_char(detected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, company_key,"
                " severity, count(*) AS alerts, coalesce(sum(amount), 0)::numeric(38, 2) AS amount"
                " FROM alerts GROUP BY 1, 2, 3"
            )
        )
        names = _dicts(
            conn.execute(
                "SELECT company_key, company_name, count(*) AS alerts FROM alerts GROUP BY 1, 2"
            )
        )
        current = _dicts(conn.execute("SELECT alert_id, status FROM alerts"))
        conn.rollback()
    return {
        "hourly": _keyed(hourly, 5),
        "companies": _keyed(companies, 2),
        "days": _keyed(days, 3),
        "company_days": _keyed(daily, 3),
        "names": _keyed(names, 2),
        "current": _keyed(current, 1),
    }


def _dicts(cursor: Any) -> list[dict[str, Any]]:
    columns = [c.name for c in cursor.description]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]


def _keyed(rows: list[dict[str, Any]], key_columns: int) -> dict[tuple, tuple]:
    keyed = {}
    for row in rows:
        values = [_plain(v) for v in row.values()]
        keyed[tuple(values[:key_columns])] = tuple(values[key_columns:])
    return keyed


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return value.quantize(Decimal("0.01"))
    if isinstance(value, int):
        return int(value)
    return value

"""The aggregate endpoints' answers computed with plain SQL over PostgreSQL, for comparison."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from workflow.db import Database

# Written independently of the code under test: company by key computed here in SQL, free text
# as a plain substring of the lower-cased texts (no LIKE pattern, so no escaping to get wrong).
_FILTERS = (
    " AND (%(severity)s::text[] IS NULL OR severity = ANY(%(severity)s))"
    " AND (%(status)s::text[] IS NULL OR status = ANY(%(status)s))"
    " AND (%(region)s::text[] IS NULL OR region = ANY(%(region)s))"
    " AND (%(company)s::text[] IS NULL OR company_key IN"
    "      (SELECT msd_company_key(c) FROM unnest(%(company)s::text[]) c))"
    " AND (%(violation_type)s::text[] IS NULL OR violation_type = ANY(%(violation_type)s))"
    " AND (%(q)s::text IS NULL OR strpos(lower(company_name), lower(%(q)s)) > 0"
    "      OR strpos(lower(violation_type), lower(%(q)s)) > 0)"
)

_WINDOW = " (detected_at AT TIME ZONE %(tz)s)::date BETWEEN %(first)s AND %(last)s"


def _params(first: date, last: date, tz: str, **filters: list[str] | None) -> dict[str, Any]:
    return {
        "first": first,
        "last": last,
        "tz": tz,
        "severity": filters.get("severity"),
        "status": filters.get("status"),
        "region": filters.get("region"),
        "company": filters.get("company"),
        "violation_type": filters.get("violation_type"),
        "q": filters.get("q"),
    }


def sql_statistics(db: Database, first: date, last: date, tz: str, **filters: Any) -> dict:
    with db.reading() as conn:
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE severity = 'CRITICAL'),"
            " count(*) FILTER (WHERE severity = 'HIGH'),"
            " count(*) FILTER (WHERE status = 'PENDING'),"
            " coalesce(sum(amount), 0) FROM alerts WHERE" + _WINDOW + _FILTERS,
            _params(first, last, tz, **filters),
        ).fetchone()
        conn.rollback()
    assert row is not None
    return {
        "total": row[0],
        "critical": row[1],
        "high": row[2],
        "pending": row[3],
        "total_amount": float(row[4]),
    }


def sql_trends(db: Database, first: date, last: date, tz: str, **filters: Any) -> list[dict]:
    with db.reading() as conn:
        rows = conn.execute(
            "SELECT d::date, count(a.*), count(a.*) FILTER (WHERE severity = 'CRITICAL'),"
            " count(a.*) FILTER (WHERE severity = 'HIGH'),"
            " count(a.*) FILTER (WHERE severity = 'MEDIUM'),"
            " count(a.*) FILTER (WHERE severity = 'LOW'), coalesce(sum(amount), 0),"
            " round(avg(extract(epoch FROM resolved_at - detected_at)::bigint) / 3600, 4)"
            " FROM generate_series(%(first)s::date, %(last)s::date, '1 day') AS d"
            " LEFT JOIN alerts a ON (a.detected_at AT TIME ZONE %(tz)s)::date = d::date"
            + _FILTERS
            + " GROUP BY d ORDER BY d",
            _params(first, last, tz, **filters),
        ).fetchall()
        conn.rollback()
    return [
        {
            "date": r[0].isoformat(),
            "total_alerts": r[1],
            "critical_alerts": r[2],
            "high_alerts": r[3],
            "medium_alerts": r[4],
            "low_alerts": r[5],
            "total_amount": float(r[6]),
            "avg_resolution_time": None if r[7] is None else float(r[7]),
        }
        for r in rows
    ]


def sql_top_companies(db: Database, first: date, last: date, tz: str, **filters: Any) -> list:
    with db.reading() as conn:
        rows = conn.execute(
            "WITH w AS (SELECT * FROM alerts WHERE" + _WINDOW + _FILTERS + "),"
            " names AS (SELECT DISTINCT ON (company_key) company_key, company_name"
            "   FROM (SELECT company_key, company_name, count(*) AS n FROM alerts"
            "         GROUP BY 1, 2) s ORDER BY company_key, n DESC, company_name DESC)"
            " SELECT names.company_name, count(*), coalesce(sum(amount), 0),"
            " count(*) FILTER (WHERE severity = 'CRITICAL') * 10"
            "  + count(*) FILTER (WHERE severity = 'HIGH') * 5"
            "  + coalesce(sum(amount), 0) / 100000 AS risk,"
            " max((detected_at AT TIME ZONE %(tz)s)::date)"
            " FROM w JOIN names USING (company_key) GROUP BY w.company_key, names.company_name"
            ' ORDER BY risk DESC, count(*) DESC, w.company_key COLLATE "C" LIMIT 10',
            _params(first, last, tz, **filters),
        ).fetchall()
        conn.rollback()
    return [
        {
            "company_name": r[0],
            "total_violations": r[1],
            "total_amount": float(r[2]),
            "risk_score": float(round(Decimal(r[3]), 4)),
            "last_violation_date": r[4].isoformat(),
        }
        for r in rows
    ]


def sql_regions(db: Database, first: date, last: date, tz: str, **filters: Any) -> list[dict]:
    with db.reading() as conn:
        rows = conn.execute(
            "SELECT region, count(*), count(*) FILTER (WHERE severity = 'CRITICAL'),"
            " count(*) FILTER (WHERE severity = 'HIGH'),"
            " count(*) FILTER (WHERE status = 'PENDING'), coalesce(sum(amount), 0)"
            " FROM alerts WHERE" + _WINDOW + _FILTERS + " GROUP BY region"
            ' ORDER BY count(*) DESC, region COLLATE "C"',
            _params(first, last, tz, **filters),
        ).fetchall()
        conn.rollback()
    return [
        {
            "region": r[0],
            "alerts": r[1],
            "critical": r[2],
            "high": r[3],
            "pending": r[4],
            "amount": float(r[5]),
        }
        for r in rows
    ]


def start_empty(db) -> None:  # type: ignore[no-untyped-def]
    """Empty the alerts, their events and the replication state, between property examples.

    The audit trail refuses TRUNCATE; its guard is lifted for this statement only.
    """
    with db.transaction() as conn:
        conn.execute("ALTER TABLE alert_events DISABLE TRIGGER alert_events_no_truncate")
        conn.execute("TRUNCATE alerts, alert_events, replication_state")
        conn.execute("ALTER TABLE alert_events ENABLE TRIGGER alert_events_no_truncate")

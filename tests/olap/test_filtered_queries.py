"""The aggregate queries with company, violation type and free-text filters, after random
histories of changes (renames included), equal GROUP BY over PostgreSQL, in views and raw rows."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from olap import queries
from olap.queries import Filters, window_between
from olap.replicator import Replicator
from tests.conftest import StoreFactory
from tests.pg_truth import sql_regions, sql_statistics, sql_top_companies, sql_trends, start_empty
from workflow.alerts import company_keys
from workflow.db import Database

COMPANIES = ["ACME BANK, N.A.", "Acme Bank N.A.", "東京銀行", "🏦 Emoji_Bank", "100% Pure"]
TYPES = ["fraud, wire", "50% rule_breach", "back\\slash", "Ünïcode"]
TEXTS = ["acme", "%", "_", "\\", "銀", "ÜNÏ", "'", "n.a", "zzz"]
KEYS = st.integers(min_value=0, max_value=9)

OPERATIONS = st.one_of(
    st.tuples(
        st.just("insert"),
        KEYS,
        st.sampled_from(COMPANIES),
        st.sampled_from(TYPES),
        st.sampled_from(["LOW", "MEDIUM", "HIGH", "CRITICAL"]),
        st.integers(min_value=0, max_value=24 * 20),
    ),
    st.tuples(st.just("rename"), KEYS, st.sampled_from(COMPANIES)),
    st.tuples(st.just("retype"), KEYS, st.sampled_from(TYPES)),
    st.tuples(st.just("status"), KEYS, st.sampled_from(["PENDING", "RESOLVED"])),
    st.tuples(st.just("delete"), KEYS),
    st.tuples(st.just("replicate")),
)
FILTERS = st.fixed_dictionaries(
    {},
    optional={
        "company": st.lists(st.sampled_from(COMPANIES), min_size=1, max_size=2, unique=True),
        "violation_type": st.lists(st.sampled_from(TYPES), min_size=1, max_size=2, unique=True),
        "q": st.sampled_from(TEXTS),
        "severity": st.just(["HIGH", "CRITICAL"]),
    },
)


def _apply(db: Database, op: tuple[Any, ...]) -> None:
    with db.transaction(actor="property-test", source="test") as conn:
        if op[0] == "insert":
            _, key, company, kind, severity, hours_ago = op
            conn.execute(
                "INSERT INTO alerts (alert_id, company_name, violation_type, severity, amount,"
                " detected_at) VALUES (%s, %s, %s, %s, %s, now() - make_interval(hours => %s))"
                " ON CONFLICT (alert_id) DO NOTHING",
                (f"k{key}", company, kind, severity, key * 1000 + 0.5, hours_ago),
            )
        elif op[0] in ("rename", "retype", "status"):
            column = {"rename": "company_name", "retype": "violation_type", "status": "status"}
            conn.execute(
                f"UPDATE alerts SET {column[op[0]]} = %s WHERE alert_id = %s", (op[2], f"k{op[1]}")
            )
        elif op[0] == "delete":
            conn.execute("DELETE FROM alerts WHERE alert_id = %s", (f"k{op[1]}",))


def _as_json(rows: Any) -> Any:
    """Query results in the shape pg_truth gives, for comparison."""
    if isinstance(rows, list):
        return [_as_json(row) for row in rows]
    plain = asdict(rows)
    return {k: (float(v) if hasattr(v, "as_tuple") else v) for k, v in plain.items()}


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    operations=st.lists(OPERATIONS, min_size=1, max_size=25),
    asked=st.lists(FILTERS, min_size=1, max_size=3),
    tz=st.sampled_from(["UTC", "Asia/Kolkata"]),
)
def test_filtered_aggregates_equal_postgres_after_random_changes(
    db: Database,
    store_factory: StoreFactory,
    operations: list[tuple[Any, ...]],
    asked: list[dict[str, Any]],
    tz: str,
) -> None:
    start_empty(db)
    store = store_factory("msd_filtered")
    replicator = Replicator(db, store, batch_size=7)
    for op in operations:
        if op[0] == "replicate":
            replicator.drain()
        else:
            _apply(db, op)
    replicator.drain()
    replicator.release()

    last = datetime.now(ZoneInfo(tz)).date()
    first = last - timedelta(days=29)
    window = window_between(first, last, tz)
    for case in asked:
        names = tuple(case.get("company", ()))
        filters = Filters(
            severity=tuple(case.get("severity", ())),
            company=names,
            company_key=company_keys(db, names) if names else (),
            violation_type=tuple(case.get("violation_type", ())),
            q=case.get("q"),
        )
        stats = queries.statistics(store, window, filters)
        assert _as_json(stats) == sql_statistics(db, first, last, tz, **case), case
        assert _regions(store, window, filters) == sql_regions(db, first, last, tz, **case)
        assert _trend_counts(store, window, filters) == [
            {k: row[k] for k in ("date", "total_alerts", "critical_alerts", "total_amount")}
            for row in sql_trends(db, first, last, tz, **case)
        ], case
        companies = [
            (row.company_name, row.total_violations, float(row.total_amount))
            for row in queries.top_companies(store, window, filters)
        ]
        assert companies == [
            (row["company_name"], row["total_violations"], row["total_amount"])
            for row in sql_top_companies(db, first, last, tz, **case)
        ], case


def _regions(store: Any, window: Any, filters: Filters) -> list[dict[str, Any]]:
    return _as_json(queries.regions(store, window, filters))


def _trend_counts(store: Any, window: Any, filters: Filters) -> list[dict[str, Any]]:
    return [
        {
            "date": row.date.isoformat(),
            "total_alerts": row.total_alerts,
            "critical_alerts": row.critical_alerts,
            "total_amount": float(row.total_amount),
        }
        for row in queries.trends(store, window, filters)
    ]

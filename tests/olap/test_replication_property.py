"""Random histories of alert changes, replicated with random interruptions, leave every ClickHouse
aggregate equal to the same aggregate computed with GROUP BY over PostgreSQL."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from olap.replicator import Replicator
from olap.store import ClickHouseStore
from tests.conftest import StoreFactory
from tests.olap.truth import clickhouse_aggregates, postgres_aggregates
from tests.pg_truth import start_empty
from workflow.db import Database


class SimulatedCrash(Exception):
    """Stands in for the replicator process dying between two steps of a batch."""


class CrashingReplicator(Replicator):
    """A test double for a fault we cannot cause in-process: death at a chosen step."""

    crash_at: str | None = None

    def _step_done(self, step: str) -> None:
        if step == self.crash_at:
            raise SimulatedCrash(step)


KEYS = st.integers(min_value=0, max_value=11)
SEVERITY = st.sampled_from(["LOW", "MEDIUM", "HIGH", "CRITICAL"])
STATUS = st.sampled_from(["PENDING", "REVIEWING", "RESOLVED", "DISMISSED"])
AMOUNT = st.one_of(st.none(), st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False))
COMPANY = st.sampled_from(["ACME BANK, N.A.", "Acme Bank N.A.", "Globex LLC", "Initech"])
REGION = st.sampled_from(["CA", "NY", "", "TX"])

OPERATIONS = st.one_of(
    st.tuples(
        st.just("insert"),
        KEYS,
        SEVERITY,
        STATUS,
        AMOUNT,
        COMPANY,
        REGION,
        st.integers(min_value=0, max_value=24 * 40),
    ),
    st.tuples(st.just("status"), KEYS, STATUS),
    st.tuples(st.just("severity"), KEYS, SEVERITY),
    st.tuples(st.just("amount"), KEYS, AMOUNT),
    st.tuples(st.just("delete"), KEYS),
    st.tuples(st.just("bulk_status"), STATUS, st.integers(min_value=2, max_value=4)),
    st.tuples(
        st.just("replicate"),
        st.sampled_from([None, "planned", "inserted", "recorded"]),
        st.integers(min_value=1, max_value=9),
    ),
)


def apply_operation(db: Database, op: tuple[Any, ...]) -> None:
    kind = op[0]
    with db.transaction(actor="property-test", source="test") as conn:
        if kind == "insert":
            _, key, severity, status, amount, company, region, hours_ago = op
            conn.execute(
                "INSERT INTO alerts (alert_id, company_name, violation_type, severity, status,"
                " amount, region, detected_at, resolved_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, now() - make_interval(hours => %s),"
                " CASE WHEN %s IN ('RESOLVED', 'DISMISSED')"
                "      THEN now() - make_interval(hours => %s) / 2 END)"
                " ON CONFLICT (alert_id) DO NOTHING",
                (
                    f"k{key}",
                    company,
                    f"type-{key % 3}",
                    severity,
                    status,
                    amount,
                    region,
                    hours_ago,
                    status,
                    hours_ago,
                ),
            )
        elif kind in ("status", "severity", "amount"):
            _, key, value = op
            conn.execute(f"UPDATE alerts SET {kind} = %s WHERE alert_id = %s", (value, f"k{key}"))
        elif kind == "delete":
            conn.execute("DELETE FROM alerts WHERE alert_id = %s", (f"k{op[1]}",))
        elif kind == "bulk_status":
            conn.execute("UPDATE alerts SET status = %s WHERE id %% %s = 0", (op[1], op[2]))


def replicate(db: Database, store: ClickHouseStore, crash_at: str | None, batch: int) -> None:
    replicator = CrashingReplicator(db, store, batch_size=batch)
    replicator.crash_at = crash_at
    try:
        replicator.drain()
    except SimulatedCrash:
        pass
    finally:
        replicator.release()  # a dead process's connection, and its lock, go with it


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=st.lists(OPERATIONS, min_size=1, max_size=40))
def test_aggregates_equal_postgres_after_random_changes_and_crashes(
    db: Database, store_factory: StoreFactory, operations: list[tuple[Any, ...]]
) -> None:
    start_empty(db)
    store = store_factory("msd_prop")

    for op in operations:
        if op[0] == "replicate":
            replicate(db, store, op[1], op[2])
        else:
            apply_operation(db, op)
    replicate(db, store, None, 50)

    assert clickhouse_aggregates(store) == postgres_aggregates(db)


def test_update_cancels_old_contribution_instead_of_double_counting(
    db: Database, store: ClickHouseStore
) -> None:
    apply_operation(db, ("insert", 1, "LOW", "PENDING", Decimal("10.00"), "Initech", "CA", 5))
    replicate(db, store, None, 10)
    apply_operation(db, ("severity", 1, "CRITICAL"))
    apply_operation(db, ("amount", 1, Decimal("99.50")))
    replicate(db, store, None, 10)

    rows = store.query_rows(
        f"SELECT severity, sum(alerts) AS n, sum(amount) AS amount FROM {store.database}"
        ".stats_hourly GROUP BY severity HAVING n != 0"
    )
    assert rows == [{"severity": "CRITICAL", "n": 1, "amount": Decimal("99.50")}]


@pytest.mark.parametrize("crash_at", ["planned", "inserted", "recorded"])
def test_batch_interrupted_at_any_step_lands_exactly_once(
    db: Database, store: ClickHouseStore, crash_at: str
) -> None:
    for key in range(5):
        apply_operation(db, ("insert", key, "HIGH", "PENDING", Decimal("1.00"), "Globex", "NY", 1))

    replicate(db, store, crash_at, 100)
    replicate(db, store, None, 100)

    assert clickhouse_aggregates(store) == postgres_aggregates(db)
    batches = store.query_rows(
        f"SELECT count() AS n FROM {store.database}.replication_batches FINAL"
    )
    assert batches == [{"n": 1}]

"""Events are replicated in commit-safe order, whatever order their ids were handed out in."""

from __future__ import annotations

import psycopg

from olap.replicator import Replicator
from olap.store import ClickHouseStore
from workflow.db import Database, attributed

INSERT = (
    "INSERT INTO alerts (alert_id, company_name, violation_type, severity, detected_at)"
    " VALUES (%s, 'Initech', 'fraud', 'HIGH', now())"
)


def replicated_ids(store: ClickHouseStore) -> set[str]:
    rows = store.query_rows(
        f"SELECT alert_id FROM {store.database}.alert_changes GROUP BY alert_id"
        " HAVING sum(sign) > 0"
    )
    return {row["alert_id"] for row in rows}


def test_smaller_event_id_committed_late_is_not_skipped_nor_blocking(
    db: Database, store: ClickHouseStore, pg_url: str
) -> None:
    replicator = Replicator(db, store)
    early = psycopg.connect(pg_url)
    late = psycopg.connect(pg_url)
    try:
        attributed(early, actor="t1", source="test")
        early.execute(INSERT, ("written-first",))
        attributed(late, actor="t2", source="test")
        late.execute(INSERT, ("written-second",))
        late.commit()

        replicator.drain()
        while_first_runs = replicated_ids(store)

        early.commit()
        replicator.drain()
    finally:
        early.close()
        late.close()
        replicator.release()

    with db.reading() as conn:
        ids = [r[0] for r in conn.execute("SELECT alert_id FROM alert_events ORDER BY event_id")]
    assert ids == ["written-first", "written-second"]
    assert while_first_runs == {"written-second"}, "a committed change waits for nothing"
    assert replicated_ids(store) == {"written-first", "written-second"}


def test_rolled_back_transaction_leaves_no_trace(
    db: Database, store: ClickHouseStore, pg_url: str
) -> None:
    replicator = Replicator(db, store)
    with psycopg.connect(pg_url) as conn:
        attributed(conn, actor="t", source="test")
        conn.execute(INSERT, ("rolled-back",))
        conn.rollback()
    with db.transaction() as conn:
        conn.execute(INSERT, ("kept",))

    replicator.drain()
    replicator.release()

    assert replicated_ids(store) == {"kept"}
    assert replicator.watermark().events == 1


class LockLostReplicator(Replicator):
    """A test double for a replicator whose advisory lock silently died with its session.

    That fault cannot be caused on cue, so the lock is skipped: two of these run at once.
    """

    def acquire(self, *, wait: bool = True) -> bool:
        return True


def test_two_replicators_at_once_still_apply_each_change_once(
    db: Database, store: ClickHouseStore
) -> None:
    import threading

    from tests.olap.truth import clickhouse_aggregates, postgres_aggregates

    stop = threading.Event()

    def replicate_until_stopped() -> None:
        replicator = LockLostReplicator(db, store, batch_size=7)
        while not stop.is_set():
            replicator.drain()

    workers = [threading.Thread(target=replicate_until_stopped) for _ in range(2)]
    for worker in workers:
        worker.start()
    for round_number in range(30):
        with db.transaction(actor="t", source="test") as conn:
            conn.execute(
                "INSERT INTO alerts (alert_id, company_name, violation_type, severity,"
                " detected_at) SELECT 'r' || %s || '-' || g, 'Initech', 'fraud', 'LOW', now()"
                " FROM generate_series(1, 5) AS g",
                (round_number,),
            )
            conn.execute(
                "UPDATE alerts SET severity = 'HIGH' WHERE id %% 3 = %s", (round_number % 3,)
            )
    stop.set()
    for worker in workers:
        worker.join()
    Replicator(db, store).drain()

    assert clickhouse_aggregates(store) == postgres_aggregates(db)


def test_clickhouse_that_lost_its_data_is_rebuilt_from_the_events(
    db: Database, store: ClickHouseStore
) -> None:
    from tests.olap.truth import clickhouse_aggregates, postgres_aggregates

    with db.transaction() as conn:
        conn.execute(INSERT, ("kept-1",))
        conn.execute(INSERT, ("kept-2",))
        conn.execute("UPDATE alerts SET severity = 'LOW' WHERE alert_id = 'kept-1'")
    first = Replicator(db, store)
    first.drain()
    first.release()
    before = first.watermark()
    for table in (
        "alert_changes",
        "stats_hourly",
        "company_hourly",
        "company_names",
        "replication_batches",
    ):
        store.command(f"TRUNCATE TABLE {store.database}.{table}")

    rebuilt = Replicator(db, store)
    rebuilt.drain()
    rebuilt.release()

    assert clickhouse_aggregates(store) == postgres_aggregates(db)
    assert rebuilt.watermark().position != before.position
    assert rebuilt.watermark().events == before.events == 3

"""The watermark known in memory: exact, because only this process can move it when it is used.

Each test runs with the embedded ClickHouse and with a ClickHouse server (the stand-in): only
the first may answer from memory; with a server another process may replicate at any moment.
"""

from __future__ import annotations

from olap.replicator import Replicator
from olap.store import ClickHouseStore, EmbeddedStore
from tests.api.conftest import seed_alerts
from workflow.db import Database


def _move_watermark_behind_its_back(db: Database, target: str) -> None:
    """What another process's replicator would do: commit a new position to PostgreSQL."""
    with db.pool.connection() as conn:
        conn.execute(
            "UPDATE replication_state SET events_applied = events_applied + 1 WHERE target = %s",
            (target,),
        )
        conn.commit()


def test_watermark_moves_the_moment_a_batch_commits(db: Database, store: ClickHouseStore):
    replicator = Replicator(db, store)
    seed_alerts(db, 20)
    replicator.drain()
    replicated = replicator.watermark()

    late = 5
    with db.transaction(actor="test", source="test") as conn:
        conn.execute(
            "INSERT INTO alerts (alert_id, company_name, violation_type, severity, status,"
            " region, detected_at) SELECT 'late-' || g, 'Initech', 'fraud', 'HIGH', 'PENDING',"
            " 'CA', now() FROM generate_series(1, %s) AS g",
            (late,),
        )
    unreplicated = replicator.watermark()
    replicator.drain()
    after = replicator.watermark()
    replicator.release()

    assert unreplicated == replicated
    assert after.events == replicated.events + late
    assert after == replicator.read_watermark_now()


def test_only_the_embedded_store_lets_the_lock_holder_answer_from_memory(
    db: Database, store: ClickHouseStore
) -> None:
    replicator = Replicator(db, store)
    replicator.drain()  # takes the replicator lock
    known = replicator.watermark()

    _move_watermark_behind_its_back(db, store.database)
    seen = replicator.watermark()
    remembered = replicator.remembered_watermark()
    replicator.release()

    if isinstance(store, EmbeddedStore):
        # No other process can have written this ClickHouse: a move like this one cannot happen.
        assert (seen, remembered) == (known, known)
    else:
        assert seen.events == known.events + 1 and remembered is None


def test_without_the_replicator_lock_every_read_goes_to_postgresql(
    db: Database, store: ClickHouseStore
) -> None:
    replicator = Replicator(db, store)
    known = replicator.watermark()

    _move_watermark_behind_its_back(db, store.database)

    assert replicator.watermark().events == known.events + 1
    assert replicator.remembered_watermark() is None

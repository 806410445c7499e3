"""One reconciliation run: drain if no one else replicates, compare, repair if asked, record.

The comparison and the repair are in ``olap.reconcile`` and ``olap.repair``; this module puts them
in order, logs one line per differing day and keeps the outcome in PostgreSQL
(``reconcile_runs``), where ``/metrics`` of any API process reads it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

from psycopg.types.json import Jsonb

from olap.reconcile import Comparison, compare
from olap.repair import RepairResult, repair_cells
from olap.replicator import Replicator
from olap.store import ClickHouseStore
from workflow.db import Database

__all__ = ["ReconcileRun", "reconcile", "reconcile_gauges"]

logger = logging.getLogger(__name__)

MAX_RECORDED_DAYS = 1_000


@dataclass(frozen=True)
class ReconcileRun:
    found: Comparison
    final: Comparison
    repaired: RepairResult

    @property
    def clean(self) -> bool:
        return self.final.clean


def reconcile(db: Database, store: ClickHouseStore, *, repair: bool = False) -> ReconcileRun:
    """Compare ClickHouse with PostgreSQL; with ``repair``, correct what differs; record it."""
    started = datetime.now(timezone.utc)
    drained = drain_if_free(db, store)
    found = compare(db, store)
    _log(found, drained)

    repaired = RepairResult(0, 0)
    final = found
    repairable = [c for c in found.differing_cells if c not in set(found.unrepairable_cells)]
    if repair and repairable:
        repaired = repair_cells(db, store, repairable)
        drain_if_free(db, store)
        final = compare(db, store)
        if final.clean:
            logger.info(
                "reconcile: repaired %d days (%d alerts, %d events); ClickHouse now equals"
                " PostgreSQL",
                len(found.differing),
                repaired.alerts,
                repaired.events,
            )
        else:
            for day in final.differing:
                logger.error("reconcile: after repair still %s", day.line())
    _record(db, store.database, started, repair, found, final, repaired)
    return ReconcileRun(found, final, repaired)


def drain_if_free(db: Database, store: ClickHouseStore) -> int | None:
    """Replicate what is pending unless another replicator holds the target (None then)."""
    replicator = Replicator(db, store)
    if not replicator.acquire(wait=False):
        return None
    try:
        return replicator.drain()
    finally:
        replicator.release()


def _log(found: Comparison, drained: int | None) -> None:
    how = (
        "another replicator is active, pending events counted as pending"
        if drained is None
        else f"drained {drained} events first"
    )
    logger.info(
        "reconcile at watermark %s (%s): %d days compared, %d differ, in %.2fs",
        found.watermark,
        how,
        found.days_compared,
        len(found.differing),
        found.seconds,
    )
    for day in found.differing:
        logger.warning("reconcile: %s", day.line())
    for day in sorted({cell[0] for cell in found.unrepairable_cells}):
        logger.error(
            "reconcile: on %s ClickHouse's hourly views disagree with its own change rows; no"
            " event can repair that: rebuild ClickHouse from the events (README, Reconciliation)",
            day.isoformat(),
        )


def _record(
    db: Database,
    target: str,
    started: datetime,
    repair: bool,
    found: Comparison,
    final: Comparison,
    repaired: RepairResult,
) -> None:
    with db.transaction(actor="msd reconcile", source="reconcile") as conn:
        conn.execute(
            "INSERT INTO reconcile_runs (target, started_at, watermark, repair, days_compared,"
            " days_found, days_differing, alerts_difference, amount_difference,"
            " repaired_alerts, repair_events, days)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                target,
                started,
                final.watermark,
                repair,
                final.days_compared,
                len(found.differing),
                len(final.differing),
                final.alerts_difference,
                final.amount_difference,
                repaired.alerts,
                repaired.events,
                Jsonb([day.as_record() for day in final.differing[:MAX_RECORDED_DAYS]]),
            ),
        )


_GAUGES = {
    "reconcile_last_run_timestamp_seconds": "When the last reconciliation ended (Unix time).",
    "reconcile_days_compared": "Days the last reconciliation compared.",
    "reconcile_days_differing": "Days whose figures still differed after the last reconciliation.",
    "reconcile_days_found": "Days found differing when the last reconciliation began.",
    "reconcile_alerts_difference": (
        "Sum of |PostgreSQL - ClickHouse| alert counts over differing day/severity/status cells."
    ),
    "reconcile_amount_difference": "The same sum for amounts.",
    "reconcile_repair_events": "Correction events the last reconciliation wrote.",
}


def reconcile_gauges(db: Database, target: str) -> dict[str, tuple[float, str]]:
    """The last run's figures as /metrics gauges (none before the first run)."""
    with db.reading() as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM finished_at), days_compared, days_differing, days_found,"
            " alerts_difference, amount_difference, repair_events FROM reconcile_runs"
            " WHERE target = %s ORDER BY run_id DESC LIMIT 1",
            (target,),
        ).fetchone()
    if row is None:
        return {}
    values = [float(v) if isinstance(v, Decimal) else float(v) for v in row]
    return {name: (value, _GAUGES[name]) for name, value in zip(_GAUGES, values)}

"""Reconciliation: do ClickHouse's figures equal PostgreSQL's, day by day?

What is compared. For each UTC day of ``detected_at`` and each severity and status, PostgreSQL's
alerts against ClickHouse three ways: the signed change rows (``alert_changes``), the hourly
statistics view and the per-company hourly view. The figures are the alert count, the amount, the
resolved count and the resolution seconds, and for the change rows also a fingerprint: the sum of
a 64-bit hash of every alert's whole replicated state (id, version, company, type, region,
amount, times), which both databases compute alike (MD5 of the same text). Equal fingerprints
mean the same alerts in the same states, so a change of region or company that leaves the counts
alone is still found.

At which point. The alerts are read in one REPEATABLE READ transaction at snapshot P, while
ClickHouse holds exactly the events ``replication_state`` says were applied. Events committed by
P and not yet applied ("pending") are not gaps: replication will apply them. So PostgreSQL's side
is taken as the state at P minus what the pending events will still add (each event adds its
after-state and takes away its before-state, the same telescoping sums the replicator relies
on), which is what ClickHouse must hold now. That needs no draining and no lock, and it stays
right while a replicator is running: ClickHouse is read between two reads of the replication
state, and the comparison counts only when nothing was applied in between and no batch was in
flight (a planned batch may or may not be in ClickHouse yet); otherwise it is taken again. The
command drains first when no other replicator is active, only so that the comparison covers
everything committed up to then. A day reported differs in a way replication itself will never
fix.

Every figure goes through the replicator's own expressions (amount NULL as 0, times rounded to
milliseconds, resolution in whole seconds), so PostgreSQL's side is what replication would write.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Callable, TypeVar

import psycopg

from olap.store import ClickHouseStore
from workflow.db import Database

__all__ = [
    "AppliedState",
    "Comparison",
    "DayDifference",
    "Figures",
    "ReconcileError",
    "at_consistent_point",
    "compare",
]

logger = logging.getLogger(__name__)

CONSISTENT_READ_ATTEMPTS = 20
RETRY_PAUSE_SECONDS = 0.25

T = TypeVar("T")

# The fields of an alert as the replicator reads them from an event (jsonb_to_record).
FIELDS = (
    "id bigint, alert_id text, version integer, company_key text, company_name text,"
    " violation_type text, severity text, status text, region text, amount numeric,"
    " detected_at timestamptz, resolved_at timestamptz"
)
_COLUMNS = (
    "id, alert_id, version, company_key, company_name, violation_type, severity, status,"
    " region, amount, detected_at, resolved_at"
)

# An alert's row as replication writes it to ClickHouse, from columns named as in FIELDS. The
# expressions are the replicator's, so rounding is the same on both sides.
PROJECTION = """
SELECT sign, id AS alert_pk, alert_id, version, company_key, company_name, violation_type,
       severity, status, region, coalesce(amount, 0)::numeric(15, 2) AS amount,
       (extract(epoch FROM detected_at) * 1000)::bigint AS detected_ms,
       (extract(epoch FROM resolved_at) * 1000)::bigint AS resolved_ms,
       coalesce(extract(epoch FROM resolved_at - detected_at)::bigint, 0) AS resolution_seconds
FROM ({source}) AS source_rows
"""

# The text both databases hash for the fingerprint, field by field in the same format.
_PG_FINGERPRINT = (
    "('x' || substr(md5(concat_ws(chr(31), alert_pk, alert_id, version, company_key,"
    " company_name, violation_type, severity, status, region, (amount * 100)::bigint,"
    " detected_ms, coalesce(resolved_ms::text, '-'), resolution_seconds)), 1, 16))"
    "::bit(64)::bigint"
)
CH_FINGERPRINT = (
    "reinterpretAsInt64(reverse(substring(MD5(concatWithSeparator(char(31), toString(alert_pk),"
    " alert_id, toString(version), company_key, company_name, toString(violation_type),"
    " toString(severity), toString(status), toString(region), toString(toInt64(amount * 100)),"
    " toString(toUnixTimestamp64Milli(detected_at)),"
    " ifNull(toString(toUnixTimestamp64Milli(resolved_at)), '-'),"
    " toString(resolution_seconds))), 1, 8)))"
)

# Events committed as of this transaction's snapshot that ClickHouse does not hold yet: not in
# the base snapshot, and not among the applied part of the round in progress.
PENDING = """e.tx_id >= pg_snapshot_xmin(%(base)s::pg_snapshot)
  AND NOT pg_visible_in_snapshot(e.tx_id, %(base)s::pg_snapshot)
  AND NOT (%(target)s::pg_snapshot IS NOT NULL
           AND pg_visible_in_snapshot(e.tx_id, %(target)s::pg_snapshot)
           AND (e.tx_id, e.event_id) <= (%(applied_tx)s::xid8, %(applied_event)s))"""


def expected_rows(alert_filter: str = "TRUE", event_filter: str = "TRUE") -> str:
    """Signed rows whose sum is what ClickHouse must hold now: the alerts at this snapshot,
    minus the pending events' effect (their before-states back in, their after-states out)."""
    source = (
        f"SELECT 1 AS sign, {_COLUMNS} FROM alerts a WHERE {alert_filter}"
        " UNION ALL"
        f" SELECT 1 AS sign, r.* FROM alert_events e, jsonb_to_record(e.before) AS r({FIELDS})"
        f" WHERE e.before IS NOT NULL AND {PENDING} AND {event_filter}"
        " UNION ALL"
        f" SELECT -1 AS sign, r.* FROM alert_events e, jsonb_to_record(e.after) AS r({FIELDS})"
        f" WHERE e.after IS NOT NULL AND {PENDING} AND {event_filter}"
    )
    return PROJECTION.format(source=source)


class ReconcileError(RuntimeError):
    """The comparison could not be made; the message says why and what to do."""


@dataclass(frozen=True)
class AppliedState:
    """What ``replication_state`` says ClickHouse holds."""

    watermark: str
    epoch: int
    batches_applied: int
    base: str
    target: str | None
    applied_tx: str
    applied_event: int
    in_flight: bool

    def params(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "target": self.target,
            "applied_tx": self.applied_tx,
            "applied_event": self.applied_event,
        }

    def same_applied(self, other: AppliedState) -> bool:
        return (self.epoch, self.batches_applied, self.in_flight) == (
            other.epoch,
            other.batches_applied,
            other.in_flight,
        )


def read_applied_state(conn: psycopg.Connection, target: str) -> AppliedState:
    row = conn.execute(
        "SELECT epoch || '.' || batches_applied || '.' || events_applied, epoch,"
        " batches_applied, base_snapshot::text, target_snapshot::text, applied_tx::text,"
        " applied_event, pending_tx IS NOT NULL FROM replication_state WHERE target = %s",
        (target,),
    ).fetchone()
    if row is None:
        raise ReconcileError(
            f"nothing was ever replicated to ClickHouse database {target!r}: run `msd replicate"
            " --once` (or `msd serve`) first"
        )
    return AppliedState(*row)


def at_consistent_point(
    db: Database, store: ClickHouseStore, read: Callable[[psycopg.Connection, AppliedState], T]
) -> tuple[T, AppliedState]:
    """Run ``read`` (PostgreSQL in a snapshot transaction, and ClickHouse) while replication
    applies nothing; retried until ClickHouse provably did not change during it."""
    for _ in range(CONSISTENT_READ_ATTEMPTS):
        with db.pool.connection() as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            before = read_applied_state(conn, store.database)
            if before.in_flight:
                conn.rollback()
                time.sleep(RETRY_PAUSE_SECONDS)
                continue
            result = read(conn, before)
            conn.rollback()
        with db.pool.connection() as conn:
            after = read_applied_state(conn, store.database)
            conn.rollback()
        if before.same_applied(after):
            return result, before
        logger.debug("replication applied a batch during the comparison; comparing again")
        time.sleep(RETRY_PAUSE_SECONDS)
    raise ReconcileError(
        f"replication applied new batches during each of {CONSISTENT_READ_ATTEMPTS} attempts to"
        " compare; run reconcile again when writes are quieter"
    )


@dataclass(frozen=True)
class Figures:
    alerts: int = 0
    amount: Decimal = Decimal("0.00")
    resolved: int = 0
    resolution_seconds: int = 0
    fingerprint: int = 0

    def __add__(self, other: Figures) -> Figures:
        return Figures(
            self.alerts + other.alerts,
            self.amount + other.amount,
            self.resolved + other.resolved,
            self.resolution_seconds + other.resolution_seconds,
            self.fingerprint + other.fingerprint,
        )

    def is_zero(self) -> bool:
        return self == Figures()

    def without_fingerprint(self) -> Figures:
        return Figures(self.alerts, self.amount, self.resolved, self.resolution_seconds)

    def counted(self) -> Figures:
        """The figures the per-company view has: alerts and amount."""
        return Figures(self.alerts, self.amount)

    def text(self) -> str:
        return (
            f"{self.alerts} alerts, amount {self.amount:.2f}, {self.resolved} resolved,"
            f" {self.resolution_seconds} s to resolve"
        )


Cell = tuple[date, str, str]  # UTC day, severity, status


@dataclass
class DayDifference:
    """One day whose figures differ: PostgreSQL's and each of ClickHouse's sources, in total."""

    day: date
    postgres: Figures
    changes: Figures
    views: Figures
    companies: Figures
    cells: list[tuple[str, str]]

    def line(self) -> str:
        same_totals = self.postgres.without_fingerprint() == self.changes.without_fingerprint()
        note = " (same totals; the alerts' states differ)" if same_totals else ""
        return (
            f"day {self.day.isoformat()} differs: PostgreSQL {self.postgres.text()};"
            f" ClickHouse hourly view {self.views.text()}, change rows {self.changes.text()},"
            f" company view {self.companies.alerts} alerts, amount"
            f" {self.companies.amount:.2f}{note}; severity/status cells differing:"
            f" {', '.join(f'{sev}/{st}' for sev, st in self.cells)}"
        )

    def as_record(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "postgres": {"alerts": self.postgres.alerts, "amount": str(self.postgres.amount)},
            "clickhouse": {"alerts": self.views.alerts, "amount": str(self.views.amount)},
            "change_rows": {"alerts": self.changes.alerts, "amount": str(self.changes.amount)},
        }


@dataclass
class Comparison:
    """The outcome of one comparison at one consistent point."""

    watermark: str
    days_compared: int
    differing: list[DayDifference]
    differing_cells: list[Cell]
    alerts_difference: int
    amount_difference: Decimal
    # Cells where ClickHouse's views disagree with its own change rows: new events add to both
    # alike, so no event can repair them (a rebuild from the events can; see the README).
    unrepairable_cells: list[Cell] = field(default_factory=list)
    seconds: float = 0.0
    state: AppliedState | None = field(default=None, repr=False)

    @property
    def clean(self) -> bool:
        return not self.differing


def compare(db: Database, store: ClickHouseStore) -> Comparison:
    """Compare every day's figures at one consistent point (see the module's docstring)."""
    started = time.perf_counter()
    (expected, changes, views, companies), state = at_consistent_point(
        db, store, lambda conn, applied: _read_all(conn, applied, store)
    )
    comparison = _differences(expected, changes, views, companies)
    comparison.watermark = state.watermark
    comparison.state = state
    comparison.seconds = time.perf_counter() - started
    return comparison


def _read_all(conn: psycopg.Connection, state: AppliedState, store: ClickHouseStore) -> tuple:
    return (
        _postgres_cells(conn, state),
        _change_cells(store),
        _view_cells(store, "stats_hourly"),
        _view_cells(store, "company_hourly"),
    )


def _postgres_cells(conn: psycopg.Connection, state: AppliedState) -> dict[Cell, Figures]:
    rows = conn.execute(
        "SELECT date '1970-01-01' + floor(detected_ms / 86400000.0)::int AS day, severity,"
        " status, sum(sign), sum(sign * amount), sum(sign * (resolved_ms IS NOT NULL)::int),"
        f" sum(sign * resolution_seconds), sum(sign::numeric * {_PG_FINGERPRINT})"
        f" FROM ({expected_rows()}) AS expected GROUP BY 1, 2, 3",
        state.params(),
    ).fetchall()
    return _cells(rows)


def _change_cells(store: ClickHouseStore) -> dict[Cell, Figures]:
    # Aliases differ from the column names: ClickHouse would read an alias in their place.
    rows = store.query_rows(
        "SELECT toDate(detected_at) AS d, toString(severity) AS sev, toString(status) AS st,"
        " sum(sign) AS n, toString(sum(sign * amount)) AS amt,"
        " sum(sign * (resolved_at IS NOT NULL)) AS res,"
        " sum(sign * resolution_seconds) AS secs,"
        f" toString(sum(toInt128(sign) * {CH_FINGERPRINT})) AS fp"
        f" FROM {store.database}.alert_changes GROUP BY d, sev, st"
    )
    return _cells([tuple(row.values()) for row in rows])


def _view_cells(store: ClickHouseStore, view: str) -> dict[Cell, Figures]:
    resolved = "sum(resolved)" if view == "stats_hourly" else "0"
    seconds = "sum(resolution_seconds)" if view == "stats_hourly" else "0"
    rows = store.query_rows(
        "SELECT toDate(hour) AS d, toString(severity) AS sev, toString(status) AS st,"
        f" sum(alerts) AS n, toString(sum(amount)) AS amt, {resolved} AS res,"
        f" {seconds} AS secs, 0 AS fp FROM {store.database}.{view}"
        " GROUP BY d, sev, st"
    )
    return _cells([tuple(row.values()) for row in rows])


def _cells(rows: list[tuple]) -> dict[Cell, Figures]:
    cells: dict[Cell, Figures] = {}
    for day, severity, status, alerts, amount, resolved, seconds, fingerprint in rows:
        figures = Figures(
            int(alerts),
            Decimal(str(amount)).quantize(Decimal("0.01")),
            int(resolved),
            int(seconds),
            int(fingerprint),
        )
        if not figures.is_zero():
            cells[(day, str(severity), str(status))] = figures
    return cells


def _differences(
    expected: dict[Cell, Figures],
    changes: dict[Cell, Figures],
    views: dict[Cell, Figures],
    companies: dict[Cell, Figures],
) -> Comparison:
    every_cell = set(expected) | set(changes) | set(views) | set(companies)
    differing_cells = sorted(
        cell
        for cell in every_cell
        if _cell_differs(
            expected.get(cell, Figures()),
            changes.get(cell, Figures()),
            views.get(cell, Figures()),
            companies.get(cell, Figures()),
        )
    )
    by_day: dict[date, list[tuple[str, str]]] = defaultdict(list)
    for day, severity, status in differing_cells:
        by_day[day].append((severity, status))

    differing = [
        DayDifference(
            day,
            _day_total(expected, day),
            _day_total(changes, day),
            _day_total(views, day),
            _day_total(companies, day),
            cells,
        )
        for day, cells in sorted(by_day.items())
    ]
    alerts_difference = sum(
        abs(expected.get(c, Figures()).alerts - views.get(c, Figures()).alerts)
        for c in differing_cells
    )
    amount_difference = sum(
        (abs(expected.get(c, Figures()).amount - views.get(c, Figures()).amount))
        for c in differing_cells
    )
    unrepairable = [
        cell
        for cell in differing_cells
        if _views_disagree(
            changes.get(cell, Figures()), views.get(cell, Figures()), companies.get(cell, Figures())
        )
    ]
    return Comparison(
        watermark="",
        days_compared=len({cell[0] for cell in every_cell}),
        differing=differing,
        differing_cells=differing_cells,
        alerts_difference=alerts_difference,
        amount_difference=Decimal(amount_difference).quantize(Decimal("0.01")),
        unrepairable_cells=unrepairable,
    )


def _cell_differs(expected: Figures, changes: Figures, views: Figures, companies: Figures) -> bool:
    return (
        expected != changes
        or expected.without_fingerprint() != views
        or expected.counted() != companies
    )


def _views_disagree(changes: Figures, views: Figures, companies: Figures) -> bool:
    return changes.without_fingerprint() != views or changes.counted() != companies


def _day_total(cells: dict[Cell, Figures], day: date) -> Figures:
    total = Figures()
    for (cell_day, _, _), figures in cells.items():
        if cell_day == day:
            total = total + figures
    return total

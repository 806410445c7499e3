"""Moves committed alert changes from PostgreSQL's ``alert_events`` into ClickHouse, exactly once.

Order and bounds. Event ids and transaction ids are handed out when a transaction writes, not when
it commits, so a smaller id can commit after a larger one was read. The replicator therefore only
reads events whose transaction id is below the oldest transaction still running
(``pg_snapshot_xmin``): every such transaction has ended, so the set of events below that bound can
no longer change. It walks them in (tx_id, event_id) order.

Exactly once. A batch is first planned (its upper bound written to ``replication_state``), then
inserted into ClickHouse as one block with a deduplication token naming its bounds, then marked
applied. After a crash at any point the same planned batch is replayed with the same token;
ClickHouse drops whatever part of it had already landed, in the table and in every view.

Cancelling. An update becomes a -1 row with the old state and a +1 row with the new one, a delete a
-1 row, so every sum in the views stays exact whatever the order of merges.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Iterator

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv

from olap.store import ClickHouseStore
from workflow.db import Database

__all__ = ["BatchResult", "Replicator", "Watermark", "read_watermark"]

logger = logging.getLogger(__name__)

_FIELDS = (
    "id bigint, alert_id text, version integer, company_key text, company_name text,"
    " violation_type text, severity text, status text, region text, amount numeric,"
    " detected_at timestamptz, resolved_at timestamptz"
)

# One side (before or after) of each event in the batch, flattened by PostgreSQL itself so that
# the rows reach Python as CSV that Arrow parses in C++.
_SIDE = """
SELECT e.event_id, {sign} AS sign, r.id AS alert_pk, r.alert_id, r.version, r.company_key,
       r.company_name, r.violation_type, r.severity, r.status, r.region,
       coalesce(r.amount, 0) AS amount,
       (extract(epoch FROM r.detected_at) * 1000)::bigint AS detected_at,
       (extract(epoch FROM r.resolved_at) * 1000)::bigint AS resolved_at,
       coalesce(extract(epoch FROM r.resolved_at - r.detected_at)::bigint, 0)
           AS resolution_seconds
FROM alert_events e, jsonb_to_record(e.{side}) AS r({fields})
WHERE (e.tx_id, e.event_id) > (%(lo_tx)s::xid8, %(lo_event)s)
  AND (e.tx_id, e.event_id) <= (%(hi_tx)s::xid8, %(hi_event)s)
  AND e.{side} IS NOT NULL
"""

_BATCH_ROWS_SQL = (
    "COPY ("
    + _SIDE.format(sign=-1, side="before", fields=_FIELDS)
    + " UNION ALL "
    + _SIDE.format(sign=1, side="after", fields=_FIELDS)
    + ") TO STDOUT WITH (FORMAT csv, HEADER true)"
)

_CSV_TYPES = {
    "event_id": pa.int64(),
    "sign": pa.int8(),
    "alert_pk": pa.int64(),
    "alert_id": pa.string(),
    "version": pa.uint32(),
    "company_key": pa.string(),
    "company_name": pa.string(),
    "violation_type": pa.string(),
    "severity": pa.string(),
    "status": pa.string(),
    "region": pa.string(),
    "amount": pa.decimal128(15, 2),
    "detected_at": pa.int64(),
    "resolved_at": pa.int64(),
    "resolution_seconds": pa.int64(),
}

# The upper bound of the next batch: at most `limit` events past the applied position, all of
# them from transactions that have ended. One statement, so one snapshot.
_PLAN_SQL = """
SELECT tx_id::text, event_id, count(*) OVER () AS events FROM (
    SELECT tx_id, event_id FROM alert_events
    WHERE (tx_id, event_id) > (%(lo_tx)s::xid8, %(lo_event)s)
      AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY tx_id, event_id
    LIMIT %(limit)s
) AS next_events
ORDER BY tx_id DESC, event_id DESC
LIMIT 1
"""


@dataclass(frozen=True)
class Position:
    tx: str
    event: int

    def token_part(self) -> str:
        return f"{self.tx}.{self.event}"


@dataclass(frozen=True)
class BatchResult:
    events: int
    rows: int
    upper: Position
    replayed: bool
    seconds: float


@dataclass(frozen=True)
class Watermark:
    """How far replication has come: every change at or below ``position`` is in ClickHouse."""

    position: str
    events: int
    last_event_id: int
    last_change_at: datetime | None
    replicated_at: datetime | None

    def header(self) -> str:
        return f"{self.position};events={self.events}"


def read_watermark(conn: psycopg.Connection, target: str) -> Watermark:
    row = conn.execute(
        "SELECT applied_tx::text || '.' || applied_event, events_applied, last_event_id,"
        " last_change_at, updated_at FROM replication_state WHERE target = %s",
        (target,),
    ).fetchone()
    if row is None:
        return Watermark("0.0", 0, 0, None, None)
    return Watermark(*row)


class Replicator:
    """Replicates ``alert_events`` of one PostgreSQL database into one ClickHouse database."""

    def __init__(self, db: Database, store: ClickHouseStore, *, batch_size: int = 50_000) -> None:
        self.db = db
        self.store = store
        self.batch_size = batch_size
        self.target = store.database
        self._lock_conn: psycopg.Connection | None = None
        with db.pool.connection() as conn:
            conn.execute(
                "INSERT INTO replication_state (target) VALUES (%s) ON CONFLICT DO NOTHING",
                (self.target,),
            )
            conn.commit()
        self._rebuild_if_target_lost()

    def _rebuild_if_target_lost(self) -> None:
        """Start over when ClickHouse lacks the batch PostgreSQL says was applied last.

        That happens when the ClickHouse data was wiped or restored from an older copy; the events
        are all still in PostgreSQL, so replaying them from the start rebuilds every view exactly.
        """
        with self.db.pool.connection() as conn:
            row = conn.execute(
                "SELECT applied_tx::text, applied_event, batches_applied FROM replication_state"
                " WHERE target = %s", (self.target,),
            ).fetchone()
            conn.rollback()
        if row is None or row[2] == 0:
            return
        found = self.store.query_rows(
            f"SELECT count() AS n FROM {self.store.database}.replication_batches"
            " WHERE upper_tx = {tx:UInt64} AND upper_event = {event:Int64}",
            {"tx": int(row[0]), "event": int(row[1])},
        )
        if found[0]["n"] > 0:
            return
        logger.warning(
            "ClickHouse database %s does not hold the last applied batch (up to %s.%s): "
            "replicating every event again from the start", self.target, row[0], row[1],
        )
        for table in ("alert_changes", "stats_hourly", "company_hourly", "company_names",
                      "replication_batches"):
            self.store.command(f"TRUNCATE TABLE {self.store.database}.{table}")
        with self.db.pool.connection() as conn:
            conn.execute(
                "UPDATE replication_state SET applied_tx = '0', applied_event = 0,"
                " pending_tx = NULL, pending_event = NULL, events_applied = 0,"
                " batches_applied = 0, last_event_id = 0, updated_at = now() WHERE target = %s",
                (self.target,),
            )
            conn.commit()

    def watermark(self) -> Watermark:
        with self.db.pool.connection() as conn:
            watermark = read_watermark(conn, self.target)
            conn.rollback()
            return watermark

    def acquire(self, *, wait: bool = True) -> bool:
        """Become the one replicator for this target; False when another one is and not waiting."""
        if self._lock_conn is not None:
            return True
        conn = psycopg.connect(self.db.url, autocommit=True)
        sql = "SELECT pg_advisory_lock(hashtext(%s))" if wait else (
            "SELECT pg_try_advisory_lock(hashtext(%s))"
        )
        row = conn.execute(sql, ("msd-replicator:" + self.target,)).fetchone()
        if not wait and not (row and row[0]):
            conn.close()
            return False
        self._lock_conn = conn
        return True

    def release(self) -> None:
        if self._lock_conn is not None:
            self._lock_conn.close()
            self._lock_conn = None

    def run_once(self) -> BatchResult | None:
        """Apply one batch (a planned one first, if a crash left one); None when idle."""
        self.acquire()
        started = time.perf_counter()
        lower, upper, replayed = self._next_batch()
        if upper is None:
            return None

        self._step_done("planned")

        table, events, last_change = self._fetch(lower, upper)
        token = f"{self.target}-{lower.token_part()}-{upper.token_part()}"
        self.store.insert_arrow("alert_changes", table.drop_columns(["event_id"]),
                                dedup_token=token)
        self._step_done("inserted")

        self._record_in_clickhouse(token, upper, table, events, last_change)
        self._step_done("recorded")

        self._mark_applied(upper, events, table, last_change)

        result = BatchResult(events, len(table), upper, replayed, time.perf_counter() - started)
        logger.info(
            "replicated %d events (%d rows) up to %s in %.3fs%s",
            events, len(table), upper.token_part(), result.seconds,
            " (replayed after an interrupted batch)" if replayed else "",
        )
        return result

    def _step_done(self, step: str) -> None:
        """Called between the steps of a batch; tests override it to stop a batch there."""

    def drain(self, *, max_batches: int | None = None) -> int:
        """Replicate until no ended transaction's events are left; return the events moved."""
        moved = 0
        batches = 0
        while max_batches is None or batches < max_batches:
            result = self.run_once()
            if result is None:
                break
            moved += result.events
            batches += 1
        return moved

    def run_forever(self, stop: threading.Event, interval: float = 0.5) -> None:
        """Drain whenever PostgreSQL signals new events, and at least every ``interval`` seconds."""
        self.acquire()
        listener = psycopg.connect(self.db.url, autocommit=True)
        try:
            listener.execute("LISTEN msd_alert_events")
            while not stop.is_set():
                self._drain_logging_errors()
                for _ in listener.notifies(timeout=interval, stop_after=1):
                    pass
        finally:
            listener.close()
            self.release()

    def _drain_logging_errors(self) -> None:
        try:
            self.drain()
        except Exception:  # the loop must outlive a store outage; the batch is replayed later
            logger.exception("replication batch failed; it will be retried")
            time.sleep(1.0)

    def _next_batch(self) -> tuple[Position, Position | None, bool]:
        with self.db.pool.connection() as conn:
            row = conn.execute(
                "SELECT applied_tx::text, applied_event, pending_tx::text, pending_event"
                " FROM replication_state WHERE target = %s",
                (self.target,),
            ).fetchone()
            assert row is not None, "replication_state row is created in __init__"
            lower = Position(row[0], row[1])
            if row[2] is not None:
                conn.rollback()
                return lower, Position(row[2], row[3]), True

            planned = conn.execute(
                _PLAN_SQL, {"lo_tx": lower.tx, "lo_event": lower.event, "limit": self.batch_size}
            ).fetchone()
            if planned is None:
                conn.rollback()
                return lower, None, False
            upper = Position(planned[0], planned[1])
            conn.execute(
                "UPDATE replication_state SET pending_tx = %s::xid8, pending_event = %s,"
                " updated_at = now() WHERE target = %s",
                (upper.tx, upper.event, self.target),
            )
            conn.commit()
            return lower, upper, False

    def _fetch(self, lower: Position, upper: Position) -> tuple[pa.Table, int, datetime | None]:
        bounds = {
            "lo_tx": lower.tx, "lo_event": lower.event, "hi_tx": upper.tx, "hi_event": upper.event
        }
        with self.db.pool.connection() as conn:
            buffer = io.BytesIO()
            with conn.cursor().copy(_BATCH_ROWS_SQL, bounds) as copy:
                for chunk in copy:
                    buffer.write(chunk)
            summary = conn.execute(
                "SELECT count(*), max(occurred_at) FROM alert_events"
                " WHERE (tx_id, event_id) > (%(lo_tx)s::xid8, %(lo_event)s)"
                " AND (tx_id, event_id) <= (%(hi_tx)s::xid8, %(hi_event)s)",
                bounds,
            ).fetchone()
            conn.rollback()
        assert summary is not None
        return _parse_rows(buffer.getvalue()), int(summary[0]), summary[1]

    def _record_in_clickhouse(
        self, token: str, upper: Position, table: pa.Table, events: int, last_change: datetime | None
    ) -> None:
        last_event = int(pa.compute.max(table["event_id"]).as_py() or 0) if len(table) else 0
        record = pa.table({
            "token": [token],
            "upper_tx": pa.array([int(upper.tx)], pa.uint64()),
            "upper_event": pa.array([upper.event], pa.int64()),
            "last_event_id": pa.array([last_event], pa.int64()),
            "events": pa.array([events], pa.uint32()),
            "rows": pa.array([len(table)], pa.uint32()),
            "last_change_at": pa.array([last_change], pa.timestamp("ms", "UTC")),
        })
        self.store.insert_arrow("replication_batches", record, dedup_token=token)

    def _mark_applied(
        self, upper: Position, events: int, table: pa.Table, last_change: datetime | None
    ) -> None:
        last_event = int(pa.compute.max(table["event_id"]).as_py() or 0) if len(table) else 0
        with self.db.pool.connection() as conn:
            conn.execute(
                "UPDATE replication_state SET applied_tx = pending_tx, applied_event = pending_event,"
                " pending_tx = NULL, pending_event = NULL, events_applied = events_applied + %s,"
                " batches_applied = batches_applied + 1,"
                " last_event_id = greatest(last_event_id, %s),"
                " last_change_at = greatest(last_change_at, %s), updated_at = now()"
                " WHERE target = %s AND pending_tx = %s::xid8 AND pending_event = %s",
                (events, last_event, last_change, self.target, upper.tx, upper.event),
            )
            conn.commit()


def _parse_rows(data: bytes) -> pa.Table:
    table = pacsv.read_csv(
        io.BytesIO(data),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=_CSV_TYPES,
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            null_values=[""],
        ),
    )
    if table.num_rows == 0 and not table.column_names:
        table = pa.schema(_CSV_TYPES).empty_table()
    for name in ("detected_at", "resolved_at"):
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, table[name].cast(pa.timestamp("ms", "UTC")))
    return table


def batches_of(replicator: Replicator) -> Iterator[BatchResult]:
    """Each batch as it is applied, until idle (for progress displays)."""
    while (result := replicator.run_once()) is not None:
        yield result

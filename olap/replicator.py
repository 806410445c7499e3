"""Moves committed alert changes from PostgreSQL's ``alert_events`` into ClickHouse, exactly once.

Order and bounds. Event ids and transaction ids are handed out when a transaction writes, not when
it commits, so a smaller id can commit after a larger one was read: no id is a safe cursor. The
replicator works in rounds between two PostgreSQL snapshots instead. Everything committed as of the
base snapshot is in ClickHouse; a round takes a new target snapshot and applies the events of the
transactions the target sees as committed and the base did not. That set can no longer change,
and a transaction still running at the target simply falls into a later round, so neither a
late commit nor a long-running transaction is ever skipped or blocks the others. Within a round
the events are applied in (tx_id, event_id) order, in batches.

Exactly once. A batch is first planned (its upper bound written to ``replication_state``), then
inserted into ClickHouse as one block with a deduplication token naming its round and bounds,
then marked applied. After a crash at any point the same planned batch is replayed with the same
token; ClickHouse drops whatever part of it had already landed, in the table and in every view.

Cancelling. An update becomes a -1 row with the old state and a +1 row with the new one, a delete a
-1 row, so every sum in the views stays exact whatever the order of merges.

Watermark reads. Each aggregate request needs the current watermark. With the embedded
ClickHouse no other process can write this ClickHouse, so once this process's replicator holds
the replicator lock, only replicators in this process move the watermark: each commit to
``replication_state`` then bumps a per-process generation (after the commit, before the call
returns), and ``watermark()`` answers from memory until the generation moves. Anywhere else it
reads PostgreSQL every time, concurrent callers sharing one read that began after each of them
asked. ``read_watermark_now`` always reads PostgreSQL.

Outages. ``run_forever`` outlives both stores: while ClickHouse is down the planned batch waits
in PostgreSQL and is replayed (same token) when it answers; while PostgreSQL is down the loop
reconnects. Each outage is logged once when it starts and once when it ends, not per retry.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv

from olap.shared_read import SharedRead
from olap.store import REPLICATED_TABLES, ClickHouseStore, EmbeddedStore, StoreUnavailableError
from workflow.db import Database

__all__ = [
    "BatchResult",
    "LoopWatermarkReader",
    "Replicator",
    "Watermark",
    "read_watermark",
]

logger = logging.getLogger(__name__)

# The events of one round past the applied position: committed as of the target snapshot and not
# as of the base. The xmin/xmax bounds only narrow the index range. The plain tx_id bounds repeat
# the row comparisons for the planner, which estimates a row comparison at a third of the table
# and then reads all of alert_events in a parallel scan; a tx_id range it estimates from the
# column's statistics, and reads the index.
_ROUND = """e.tx_id >= pg_snapshot_xmin(%(base)s::pg_snapshot)
  AND e.tx_id < pg_snapshot_xmax(%(target)s::pg_snapshot)
  AND pg_visible_in_snapshot(e.tx_id, %(target)s::pg_snapshot)
  AND NOT pg_visible_in_snapshot(e.tx_id, %(base)s::pg_snapshot)
  AND (e.tx_id, e.event_id) > (%(lo_tx)s::xid8, %(lo_event)s) AND e.tx_id >= %(lo_tx)s::xid8"""

_EVENT_COLUMNS = "SELECT e.tx_id, e.event_id, e.occurred_at, e.before, e.after FROM alert_events e"

# A new batch: the round's next events in commit order, at most %(limit)s of them. Their keys are
# found first, in the replication index alone: ordering whole events instead, PostgreSQL scans
# and sorts the documents of every event in the round (on disk, at the start of a long one).
# Each event is then fetched by its key; the LIMIT keeps PostgreSQL from turning those lookups
# into a hash join over every event ever recorded.
_NEXT_EVENTS = f"""SELECT b.tx_id, b.event_id, b.occurred_at, b.before, b.after
FROM (
  SELECT e.event_id FROM alert_events e WHERE {_ROUND}
  ORDER BY e.tx_id, e.event_id LIMIT %(limit)s
) AS k
CROSS JOIN LATERAL (
  SELECT x.tx_id, x.event_id, x.occurred_at, x.before, x.after FROM alert_events x
  WHERE x.event_id = k.event_id LIMIT 1
) AS b"""

# A planned batch again (after a crash): the round's events up to its upper bound.
_PLANNED_EVENTS = f"""{_EVENT_COLUMNS} WHERE {_ROUND}
  AND (e.tx_id, e.event_id) <= (%(hi_tx)s::xid8, %(hi_event)s) AND e.tx_id <= %(hi_tx)s::xid8"""

_FIELDS = (
    "id bigint, alert_id text, version integer, company_key text, company_name text,"
    " violation_type text, severity text, status text, region text, amount numeric,"
    " detected_at timestamptz, resolved_at timestamptz"
)

# Each side (before, after) of each event of a batch as one signed row, flattened by PostgreSQL
# itself in one scan of the events, so that the rows reach Python as CSV that Arrow parses in
# C++. Every event has at least one side; the event columns say what the batch covers.
_ROWS_SQL = """COPY (
SELECT b.tx_id::text AS tx_id, b.event_id,
       (extract(epoch FROM b.occurred_at) * 1000000)::bigint AS occurred_at,
       s.sign, r.id AS alert_pk, r.alert_id, r.version, r.company_key,
       r.company_name, r.violation_type, r.severity, r.status, r.region,
       coalesce(r.amount, 0) AS amount,
       (extract(epoch FROM r.detected_at) * 1000)::bigint AS detected_at,
       (extract(epoch FROM r.resolved_at) * 1000)::bigint AS resolved_at,
       coalesce(extract(epoch FROM r.resolved_at - r.detected_at)::bigint, 0)
           AS resolution_seconds
FROM ({events}) AS b
CROSS JOIN LATERAL (VALUES (-1, b.before), (1, b.after)) AS s(sign, side)
CROSS JOIN LATERAL jsonb_to_record(s.side) AS r({fields})
WHERE s.side IS NOT NULL
) TO STDOUT WITH (FORMAT csv, HEADER true)"""

_NEXT_ROWS_SQL = _ROWS_SQL.format(events=_NEXT_EVENTS, fields=_FIELDS)
_PLANNED_ROWS_SQL = _ROWS_SQL.format(events=_PLANNED_EVENTS, fields=_FIELDS)

_CSV_TYPES = {
    "tx_id": pa.uint64(),
    "event_id": pa.int64(),
    "occurred_at": pa.int64(),
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
# What a batch's rows say about the batch, not about the alerts: left out of ClickHouse.
_EVENT_FIELDS = ["tx_id", "event_id", "occurred_at"]
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Position:
    tx: str
    event: int

    def token_part(self) -> str:
        return f"{self.tx}.{self.event}"


@dataclass(frozen=True)
class Round:
    """The snapshots a round runs between, and how far into it the applied batches reach."""

    base: str
    target: str
    applied: Position

    def bounds(self, upper: Position | None = None) -> dict[str, object]:
        """The query parameters of the round's events past the applied position (to ``upper``)."""
        lower = self._scan_start()
        bounds: dict[str, object] = {
            "base": self.base,
            "target": self.target,
            "lo_tx": lower.tx,
            "lo_event": lower.event,
        }
        if upper is not None:
            bounds |= {"hi_tx": upper.tx, "hi_event": upper.event}
        return bounds

    def _scan_start(self) -> Position:
        """The applied position, or the base's xmin at the start of a round.

        Both bound the same index scan, but PostgreSQL starts it at the row comparison: from
        (0, 0) it would walk every event ever recorded, in each query of each round. No event
        of the round is below the base's xmin (those were all visible to the base), and event
        ids start at 1, so (xmin, 0) excludes nothing the round holds.
        """
        base_xmin = int(self.base.split(":", 1)[0])
        if int(self.applied.tx) >= base_xmin:
            return self.applied
        return Position(str(base_xmin), 0)

    def token(self, target_name: str, upper: Position) -> str:
        snapshots = hashlib.sha1(f"{self.base}|{self.target}".encode()).hexdigest()[:16]
        return f"{target_name}-{snapshots}-{self.applied.token_part()}-{upper.token_part()}"


@dataclass(frozen=True)
class _Batch:
    """A batch's rows for ClickHouse, and what they cover."""

    rows: pa.Table
    events: int
    upper: Position | None
    last_event_id: int
    last_change: datetime | None

    @classmethod
    def from_csv(cls, data: bytes) -> _Batch:
        table = _parse_rows(data)
        if len(table) == 0:
            return cls(table.drop_columns(_EVENT_FIELDS), 0, None, 0, None)
        last_tx = pa.compute.max(table["tx_id"]).as_py()
        in_last_tx = pa.compute.equal(table["tx_id"], last_tx)
        last_of_tx = pa.compute.max(pa.compute.filter(table["event_id"], in_last_tx)).as_py()
        changed_at = pa.compute.max(table["occurred_at"]).as_py()
        return cls(
            rows=table.drop_columns(_EVENT_FIELDS),
            events=pa.compute.count_distinct(table["event_id"]).as_py(),
            upper=Position(str(last_tx), last_of_tx),
            last_event_id=pa.compute.max(table["event_id"]).as_py(),
            last_change=_EPOCH + timedelta(microseconds=changed_at),
        )


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


_WATERMARK_SQL = (
    "SELECT epoch || '.' || batches_applied || '.' || events_applied, events_applied,"
    " last_event_id, last_change_at, updated_at FROM replication_state WHERE target = %s"
)


def read_watermark(conn: psycopg.Connection, target: str) -> Watermark:
    """The position counts rebuilds, applied batches and events: it moves with every batch."""
    return _watermark(conn.execute(_WATERMARK_SQL, (target,)).fetchone())


def _watermark(row: tuple | None) -> Watermark:  # type: ignore[type-arg]
    return Watermark("0.0.0", 0, 0, None, None) if row is None else Watermark(*row)


class LoopWatermarkReader:
    """Reads the watermark on an event loop over a connection of its own, in autocommit.

    One round trip a read, with no worker thread and no pool checkout: for API processes that
    do not replicate, and so must ask PostgreSQL for every watermark they serve at. A failed or
    timed-out read closes the connection; the next read opens another.
    """

    def __init__(self, url: str, target: str, timeout: float) -> None:
        self.url = url
        self.target = target
        self.timeout = timeout
        self._conn: psycopg.AsyncConnection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def read(self) -> Watermark:
        try:
            return await asyncio.wait_for(self._read(), self.timeout)
        except (psycopg.Error, OSError, asyncio.TimeoutError) as error:
            await self._drop_connection()
            if isinstance(error, psycopg.OperationalError):
                raise
            raise psycopg.OperationalError(
                f"PostgreSQL did not give the replication watermark within {self.timeout:g}s"
                f" (MSD_DATABASE_TIMEOUT_SECONDS): {error or type(error).__name__}"
            ) from error

    async def _read(self) -> Watermark:
        loop = asyncio.get_running_loop()
        if self._conn is None or self._conn.closed or self._loop is not loop:
            self._conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
            self._loop = loop
        cursor = await self._conn.execute(_WATERMARK_SQL, (self.target,))
        return _watermark(await cursor.fetchone())

    async def close(self) -> None:
        await self._drop_connection()

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._loop is asyncio.get_running_loop():
            try:
                await conn.close()
            except Exception:  # already broken: nothing more to release
                pass


class _Generations:
    """How often ``replication_state`` of each (database, target) was committed in this process."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], int] = {}
        self._guard = threading.Lock()

    def current(self, key: tuple[str, str]) -> int:
        return self._counts.get(key, 0)

    def bump(self, key: tuple[str, str]) -> None:
        with self._guard:
            self._counts[key] = self._counts.get(key, 0) + 1


_generations = _Generations()


class Replicator:
    """Replicates ``alert_events`` of one PostgreSQL database into one ClickHouse database."""

    def __init__(self, db: Database, store: ClickHouseStore, *, batch_size: int = 50_000) -> None:
        self.db = db
        self.store = store
        self.batch_size = batch_size
        self.target = store.database
        self._lock_conn: psycopg.Connection | None = None
        self._outages = _Outages()
        self._state_key = (db.url, self.target)
        # Only this process can write an embedded ClickHouse (chdb locks its folder).
        self._store_is_ours = isinstance(store, EmbeddedStore)
        self._remembered: tuple[int, Watermark] | None = None
        self._shared_watermark = SharedRead(self._query_watermark)
        # The next batch's rows, read while the current batch goes into ClickHouse (see
        # ``_read_ahead``): the round position they follow, and their read.
        self._ahead: tuple[Round, Future[_Batch | None]] | None = None
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="replication-read")
        with db.pool.connection() as conn:
            conn.execute(
                "INSERT INTO replication_state (target) VALUES (%s) ON CONFLICT DO NOTHING",
                (self.target,),
            )
            conn.commit()
        self._state_committed()
        self._rebuild_if_target_lost()

    def _state_committed(self) -> None:
        """Called after every commit to ``replication_state``: remembered watermarks are void."""
        _generations.bump(self._state_key)

    def _rebuild_if_target_lost(self) -> None:
        """Start over when ClickHouse lacks the batch PostgreSQL says was applied last.

        That happens when the ClickHouse data was wiped or restored from an older copy; the events
        are all still in PostgreSQL, so replaying them from the start rebuilds every view exactly.
        """
        with self.db.pool.connection() as conn:
            row = conn.execute(
                "SELECT batches_applied FROM replication_state WHERE target = %s",
                (self.target,),
            ).fetchone()
            conn.rollback()
        if row is None or row[0] == 0:
            return
        found = self.store.query_rows(
            f"SELECT count() AS n FROM {self.store.database}.replication_batches FINAL"
        )
        if found[0]["n"] >= row[0]:
            return
        logger.warning(
            "ClickHouse database %s holds %d of the %d batches applied to it: replicating every "
            "event again from the start",
            self.target,
            found[0]["n"],
            row[0],
        )
        for table in REPLICATED_TABLES:
            self.store.truncate(table)
        with self.db.pool.connection() as conn:
            conn.execute(
                "UPDATE replication_state SET base_snapshot = '1:1:', target_snapshot = NULL,"
                " applied_tx = '0', applied_event = 0,"
                " pending_tx = NULL, pending_event = NULL, events_applied = 0,"
                " batches_applied = 0, last_event_id = 0, epoch = epoch + 1, updated_at = now()"
                " WHERE target = %s",
                (self.target,),
            )
            conn.commit()
        self._state_committed()

    def watermark(self) -> Watermark:
        """The current watermark: from memory while only this process can move it (see above)."""
        if self._lock_conn is None or not self._store_is_ours:
            return self.read_watermark_now()
        # The generation is read before PostgreSQL: a commit in between makes the next call read.
        generation = _generations.current(self._state_key)
        remembered = self.remembered_watermark()
        if remembered is not None:
            return remembered
        watermark = self.read_watermark_now()
        self._remembered = (generation, watermark)
        return watermark

    @property
    def remembers_watermark(self) -> bool:
        """True while ``watermark`` can keep the watermark in memory (this process replicates)."""
        return self._lock_conn is not None and self._store_is_ours

    def remembered_watermark(self) -> Watermark | None:
        """The current watermark if it is known without a query, else None (never a stale one)."""
        remembered = self._remembered
        if (
            remembered is None
            or self._lock_conn is None
            or remembered[0] != _generations.current(self._state_key)
        ):
            return None
        return remembered[1]

    def read_watermark_now(self) -> Watermark:
        """The watermark as PostgreSQL holds it, read after this call began.

        Callers at the same moment share one query (``SharedRead``): under load one round trip
        answers a whole group of requests, and none gets a watermark read before it asked.
        """
        return self._shared_watermark()

    def _query_watermark(self) -> Watermark:
        with self.db.pool.connection() as conn:
            watermark = read_watermark(conn, self.target)
            conn.rollback()
            return watermark

    def acquire(self, *, wait: bool = True) -> bool:
        """Become the one replicator for this target; False when another one is and not waiting."""
        if self._lock_conn is not None:
            return True
        conn = psycopg.connect(self.db.url, autocommit=True, connect_timeout=10)
        sql = (
            "SELECT pg_advisory_lock(hashtext(%s))"
            if wait
            else ("SELECT pg_try_advisory_lock(hashtext(%s))")
        )
        row = conn.execute(sql, ("msd-replicator:" + self.target,)).fetchone()
        if not wait and not (row and row[0]):
            conn.close()
            return False
        self._lock_conn = conn
        return True

    def release(self) -> None:
        self._forget_read_ahead()
        if self._lock_conn is not None:
            self._lock_conn.close()
            self._lock_conn = None

    def run_once(self) -> BatchResult | None:
        """Apply one batch (a planned one first, if a crash left one); None when idle."""
        self.acquire()
        started = time.perf_counter()
        current, upper, batch = self._next_batch()
        if current is None or upper is None:
            return None
        self._step_done("planned")

        replayed = batch is None
        if batch is None:
            batch = self._fetch_planned(current, upper)
        self._read_ahead(Round(current.base, current.target, upper))
        token = current.token(self.target, upper)
        self.store.insert_arrow("alert_changes", batch.rows, dedup_token=token)
        self._step_done("inserted")

        self._record_in_clickhouse(token, upper, batch)
        self._outages.ended("clickhouse")
        self._step_done("recorded")

        self._mark_applied(upper, batch)
        result = BatchResult(
            batch.events, len(batch.rows), upper, replayed, time.perf_counter() - started
        )
        logger.info(
            "replicated %d events (%d rows) up to %s in %.3fs%s",
            result.events,
            result.rows,
            upper.token_part(),
            result.seconds,
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
        """Drain whenever PostgreSQL signals new events, and at least every ``interval`` seconds.

        While another replicator holds the target this one stands by; when PostgreSQL goes away
        it reconnects, so one outage never ends replication for the life of the process.
        """
        while not stop.is_set():
            try:
                if self._wait_for_turn(stop, interval):
                    self._follow_events(stop, interval)
            except psycopg.OperationalError as error:
                self._outages.began("postgres", error, "reconnecting every 2s")
                self.release()
                stop.wait(2.0)
        self.release()

    def _wait_for_turn(self, stop: threading.Event, interval: float) -> bool:
        told = False
        while not stop.is_set():
            if self.acquire(wait=False):
                if told:
                    logger.info("this process now replicates to %s", self.target)
                return True
            if not told:
                logger.info("another replicator is active for %s; standing by", self.target)
                told = True
            stop.wait(max(interval, 1.0))
        return False

    def _follow_events(self, stop: threading.Event, interval: float) -> None:
        with psycopg.connect(self.db.url, autocommit=True, connect_timeout=10) as listener:
            listener.execute("LISTEN msd_alert_events")
            self._outages.ended("postgres")
            while not stop.is_set():
                self._check_lock()
                self._drain_logging_errors()
                for _ in listener.notifies(timeout=interval, stop_after=1):
                    pass

    def _check_lock(self) -> None:
        """Fail loudly if the session holding the advisory lock died (the lock died with it)."""
        assert self._lock_conn is not None
        self._lock_conn.execute("SELECT 1")

    def _drain_logging_errors(self) -> None:
        try:
            self.drain()
        except psycopg.OperationalError:
            raise  # PostgreSQL is away: run_forever reconnects
        except StoreUnavailableError as error:
            self._outages.began("clickhouse", error, "the planned batch waits in PostgreSQL")
            time.sleep(1.0)
        except Exception:  # the loop must outlive a failed batch; the batch is replayed later
            logger.exception("replication batch failed; it will be retried")
            time.sleep(1.0)

    def _next_batch(self) -> tuple[Round | None, Position | None, _Batch | None]:
        """The round and upper bound of the next batch: a pending one (its rows still to read),
        else a newly planned one with its rows, read in the scan that found its upper bound."""
        with self.db.pool.connection() as conn:
            row = conn.execute(
                "SELECT base_snapshot::text, target_snapshot::text, applied_tx::text,"
                " applied_event, pending_tx::text, pending_event"
                " FROM replication_state WHERE target = %s",
                (self.target,),
            ).fetchone()
            assert row is not None, "replication_state row is created in __init__"
            base, target, applied = row[0], row[1], Position(row[2], row[3])
            if row[4] is not None:
                conn.rollback()
                return Round(base, target, applied), Position(row[4], row[5]), None

            batch = self._read_next(conn, Round(base, target, applied)) if target else None
            if target is not None and batch is None:
                base, target = target, None  # the round is done: its target is the new base
            if target is None:
                target, applied = _current_snapshot(conn), Position("0", 0)
                batch = self._read_next(conn, Round(base, target, applied))
            if batch is None or batch.upper is None:
                self._close_round(conn, base, read=row) if base != row[0] else conn.rollback()
                return None, None, None
            upper = batch.upper

            # Compare-and-set on what was read: should another replicator have planned since,
            # this one plans nothing and picks up that batch on its next call.
            planned = conn.execute(
                "UPDATE replication_state SET base_snapshot = %s::pg_snapshot,"
                " target_snapshot = %s::pg_snapshot, applied_tx = %s::xid8, applied_event = %s,"
                " pending_tx = %s::xid8, pending_event = %s, updated_at = now()"
                " WHERE target = %s AND pending_tx IS NULL AND base_snapshot::text = %s"
                " AND target_snapshot::text IS NOT DISTINCT FROM %s"
                " AND applied_tx = %s::xid8 AND applied_event = %s",
                (
                    base,
                    target,
                    applied.tx,
                    applied.event,
                    upper.tx,
                    upper.event,
                    self.target,
                    row[0],
                    row[1],
                    row[2],
                    row[3],
                ),
            ).rowcount
            conn.commit()
            self._state_committed()
            if planned != 1:
                logger.info("another replicator planned the next batch first")
                return None, None, None
            return Round(base, target, applied), upper, batch

    def _close_round(self, conn: psycopg.Connection, base: str, *, read: tuple) -> None:
        """Record a finished round's target as the new base (if nobody moved the state since)."""
        conn.execute(
            "UPDATE replication_state SET base_snapshot = %s::pg_snapshot, target_snapshot = NULL,"
            " applied_tx = '0', applied_event = 0, updated_at = now()"
            " WHERE target = %s AND pending_tx IS NULL AND base_snapshot::text = %s"
            " AND target_snapshot::text IS NOT DISTINCT FROM %s",
            (base, self.target, read[0], read[1]),
        )
        conn.commit()
        self._state_committed()

    def _read_next(self, conn: psycopg.Connection, current: Round) -> _Batch | None:
        """The round's next events past the applied position, None when it has no more."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == current:
            try:
                return ahead[1].result()
            except Exception as error:  # read it again below, where a failure is reported
                logger.debug("reading ahead failed (%s); reading the batch now", error)
        return self._next_rows(conn, current)

    def _next_rows(self, conn: psycopg.Connection, current: Round) -> _Batch | None:
        batch = _copy_rows(conn, _NEXT_ROWS_SQL, current.bounds() | {"limit": self.batch_size})
        return batch if batch.events else None

    def _read_ahead(self, following: Round) -> None:
        """Start reading the batch after this one while this one goes into ClickHouse.

        The rows a round holds past a position are fixed (the round is bounded by two
        snapshots), so a read made early is the read the next batch would make: it is used only
        when the next batch starts from exactly that position, and planned by the same
        compare-and-set as any other. PostgreSQL (another process) and ClickHouse (which
        releases the GIL) then work at once, on both cores.
        """
        self._forget_read_ahead()

        def read() -> _Batch | None:
            with self.db.pool.connection() as conn:
                batch = self._next_rows(conn, following)
                conn.rollback()
            return batch

        self._ahead = (following, self._reader.submit(read))

    def _forget_read_ahead(self) -> None:
        ahead, self._ahead = self._ahead, None
        if ahead is not None and not ahead[1].cancel():
            ahead[1].exception()  # wait: its connection goes back to the pool first

    def _fetch_planned(self, current: Round, upper: Position) -> _Batch:
        """The rows of a batch planned before: the round's events up to ``upper``."""
        with self.db.pool.connection() as conn:
            batch = _copy_rows(conn, _PLANNED_ROWS_SQL, current.bounds(upper))
            conn.rollback()
        return batch

    def _record_in_clickhouse(self, token: str, upper: Position, batch: _Batch) -> None:
        record = pa.table(
            {
                "token": [token],
                "upper_tx": pa.array([int(upper.tx)], pa.uint64()),
                "upper_event": pa.array([upper.event], pa.int64()),
                "last_event_id": pa.array([batch.last_event_id], pa.int64()),
                "events": pa.array([batch.events], pa.uint32()),
                "rows": pa.array([len(batch.rows)], pa.uint32()),
                "last_change_at": pa.array([batch.last_change], pa.timestamp("ms", "UTC")),
            }
        )
        self.store.insert_arrow("replication_batches", record, dedup_token=token)

    def _mark_applied(self, upper: Position, batch: _Batch) -> None:
        with self.db.pool.connection() as conn:
            conn.execute(
                "UPDATE replication_state SET applied_tx = pending_tx,"
                " applied_event = pending_event,"
                " pending_tx = NULL, pending_event = NULL, events_applied = events_applied + %s,"
                " batches_applied = batches_applied + 1,"
                " last_event_id = greatest(last_event_id, %s),"
                " last_change_at = greatest(last_change_at, %s), updated_at = now()"
                " WHERE target = %s AND pending_tx = %s::xid8 AND pending_event = %s",
                (
                    batch.events,
                    batch.last_event_id,
                    batch.last_change,
                    self.target,
                    upper.tx,
                    upper.event,
                ),
            )
            conn.commit()
        self._state_committed()


class _Outages:
    """Which store is down since when, so that each outage is logged when it starts and ends."""

    _NAMES = {"postgres": "PostgreSQL", "clickhouse": "ClickHouse"}

    def __init__(self) -> None:
        self._since: dict[str, float] = {}

    def began(self, store: str, error: Exception, doing: str) -> None:
        if store in self._since:
            logger.debug("%s still unavailable: %s", self._NAMES[store], error)
            return
        self._since[store] = time.monotonic()
        reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        logger.warning(
            "replication paused: %s is unavailable (%s); %s", self._NAMES[store], reason, doing
        )

    def ended(self, store: str) -> None:
        since = self._since.pop(store, None)
        if since is not None:
            logger.warning(
                "replication resumed: %s answers again after %.1fs",
                self._NAMES[store],
                time.monotonic() - since,
            )


def _current_snapshot(conn: psycopg.Connection) -> str:
    snapshot = conn.execute("SELECT pg_current_snapshot()::text").fetchone()
    assert snapshot is not None
    return str(snapshot[0])


def _copy_rows(conn: psycopg.Connection, sql: str, bounds: dict[str, object]) -> _Batch:
    buffer = io.BytesIO()
    with conn.cursor().copy(sql, bounds) as copy:
        for chunk in copy:
            buffer.write(chunk)
    return _Batch.from_csv(buffer.getvalue())


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

"""The PostgreSQL side of a load: COPY into a temporary staging table, then one set-wise upsert.

A file's good rows are first copied, in chunks, into a session-local temporary table. Rows that
a later row of the same file supersedes (same alert_id) are then deleted there, so that the last
row wins however far apart the two are. The rest is upserted into ``alerts`` chunk by chunk,
each chunk in its own attributed transaction, so memory and transaction size stay bounded.

The upsert is nearly all of a first load's time, and all of it inside PostgreSQL, one core per
connection. So a load runs over ``PARALLEL_CONNECTIONS`` connections, each with a staging table
of its own: every alert_id goes to one of them (by its hash), so that each table holds all the
rows of its ids (the last still wins) and two connections never write the same alert.

Update rule (see ingest/README.md): the file's facts replace the stored ones, but the workflow
status that supervisors set is kept unless the file closes an alert that is still open.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from itertools import islice
from typing import Iterator

import psycopg

from ingest.progress import Progress
from workflow.db import Database, attributed

__all__ = ["STAGED_COLUMNS", "LoadOutcome", "StagedRow", "Staging", "load_rows"]

logger = logging.getLogger(__name__)

TABLE = "ingest_staging"
SOURCE = "ingest"
StagedRow = tuple[object, ...]
STAGED_COLUMNS = (
    "seq", "line", "alert_id", "company_name", "violation_type", "severity", "status", "amount",
    "region", "detected_at", "resolved_at", "assignee",
)
_ALERT_COLUMNS = STAGED_COLUMNS[2:]
# Binary COPY is about twice as fast as text here; it needs the PostgreSQL type of each column.
_STAGED_TYPES = (
    "int8", "int8", "text", "text", "text", "text", "text", "numeric", "text", "timestamptz",
    "timestamptz", "text",
)

# For the statements that sort or group a chunk or a whole file, within one transaction.
_WORK_MEM = "64MB"
# Connections a load upserts over at once (each a PostgreSQL backend, so a core of its own).
PARALLEL_CONNECTIONS = 2
_ALERT_ID = STAGED_COLUMNS.index("alert_id")

_CREATE = f"""
CREATE TEMP TABLE {TABLE} (
    seq bigint NOT NULL, line bigint NOT NULL, alert_id text NOT NULL,
    company_name text NOT NULL, violation_type text NOT NULL, severity text NOT NULL,
    status text NOT NULL, amount numeric(15, 2), region text NOT NULL,
    detected_at timestamptz NOT NULL, resolved_at timestamptz, assignee text)
"""

# The last row of an alert_id wins; the earlier ones are reported as duplicates.
_REMOVE_SUPERSEDED = f"""
DELETE FROM {TABLE} AS s
USING (SELECT alert_id, max(seq) AS kept FROM {TABLE}
       GROUP BY alert_id HAVING count(*) > 1) AS d
WHERE s.alert_id = d.alert_id AND s.seq < d.kept
RETURNING s.alert_id, s.line
"""

# The value each column takes on update, written for the new row's alias "{new}" (excluded in
# ON CONFLICT, s in the pre-filter) and the stored row's "a".
# A file closes an open alert only when the file itself newly says closed: an unchanged file
# re-loaded after a supervisor reopened the alert leaves it open.
_CLOSES = (
    "({new}.status IN ('RESOLVED', 'DISMISSED') AND a.status IN ('PENDING', 'REVIEWING')"
    " AND {new}.status IS DISTINCT FROM a.source_status)"
)
_NEW_VALUES = {
    "company_name": "{new}.company_name",
    "violation_type": "{new}.violation_type",
    "severity": "{new}.severity",
    "status": f"CASE WHEN {_CLOSES} THEN {{new}}.status ELSE a.status END",
    "amount": "{new}.amount",
    "region": "{new}.region",
    "detected_at": "{new}.detected_at",
    "resolved_at": f"CASE WHEN {_CLOSES} THEN {{new}}.resolved_at"
                   " WHEN {new}.status = a.status AND {new}.resolved_at IS NOT NULL"
                   " THEN {new}.resolved_at ELSE a.resolved_at END",
    # A file that names no assignee leaves the supervisors' assignment alone.
    "assignee": "coalesce({new}.assignee, a.assignee)",
    "source_status": "{new}.status",
}
_STORED = ", ".join(f"a.{name}" for name in _NEW_VALUES)


def _new_values(new: str) -> str:
    return ", ".join(value.format(new=new) for value in _NEW_VALUES.values())


_SET = ", ".join(f"{name} = {value.format(new='excluded')}" for name, value in _NEW_VALUES.items())


# Rows that would change nothing are left out before the INSERT: ON CONFLICT locks (and so
# writes) every conflicting row even when its WHERE then skips the update, which made re-runs
# of unchanged files cost nearly as much as the first load. The ON CONFLICT WHERE still guards
# rows that a concurrent writer changes in between.
_UPSERT = f"""
WITH upserted AS (
    INSERT INTO alerts AS a ({", ".join(_ALERT_COLUMNS)}, source_status)
    SELECT {", ".join(f"s.{name}" for name in _ALERT_COLUMNS)}, s.status
    FROM {TABLE} AS s LEFT JOIN alerts AS a ON a.alert_id = s.alert_id
    WHERE s.seq > %(after)s AND s.seq <= %(upto)s
      AND (a.id IS NULL OR ({_STORED}) IS DISTINCT FROM ({_new_values("s")}))
    ORDER BY s.alert_id
    ON CONFLICT (alert_id) DO UPDATE SET
        {_SET}
    WHERE ({_STORED}) IS DISTINCT FROM ({_new_values("excluded")})
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM upserted
"""


@dataclass
class LoadOutcome:
    """What the upsert did: rows staged after duplicates went, inserted, updated, and the
    (alert_id, line) of each row that a later row with the same alert_id replaced."""

    staged: int
    inserted: int
    updated: int
    superseded: list[tuple[str, int]]


def load_rows(
    db: Database,
    rows: Iterator[StagedRow],
    *,
    actor: str,
    note: str,
    chunk: int,
    meter: Progress,
) -> LoadOutcome:
    """Stage ``rows``, whose seq numbers them 1, 2, 3 ..., and upsert them into alerts."""
    started = time.perf_counter()
    with ExitStack() as held:
        stagings = [
            Staging(held.enter_context(db.pool.connection()), actor=actor, note=note, chunk=chunk)
            for _ in range(PARALLEL_CONNECTIONS)
        ]
        for staging in stagings:
            staging.create()
            held.callback(staging.drop)
        last_seq = _copy_all(rows, stagings, chunk)
        staged_at = time.perf_counter()
        superseded = [removed for staging in stagings for removed in staging.remove_superseded()]
        meter.start("upserted")
        with ThreadPoolExecutor(len(stagings), thread_name_prefix="ingest-upsert") as upserts:
            counts = list(upserts.map(lambda each: each.upsert_all(last_seq, meter), stagings))

    logger.debug("%s: read and staged in %.2f s, upserted in %.2f s", note,
                 staged_at - started, time.perf_counter() - staged_at)
    return LoadOutcome(
        staged=sum(staging.staged for staging in stagings),
        inserted=sum(inserted for inserted, _ in counts),
        updated=sum(updated for _, updated in counts),
        superseded=sorted(superseded, key=lambda item: item[1]),
    )


def _copy_all(rows: Iterator[StagedRow], stagings: list[Staging], chunk: int) -> int:
    """Copy ``rows`` in chunks, each row into the staging table its alert_id belongs to."""
    copied = 0
    while block := list(islice(rows, chunk)):
        parts: list[list[StagedRow]] = [[] for _ in stagings]
        for row in block:
            parts[hash(row[_ALERT_ID]) % len(stagings)].append(row)
        for staging, part in zip(stagings, parts):
            staging.copy_chunk(part)
        copied += len(block)
    return copied


class Staging:
    """One file's staging table on one connection, from creation to drop."""

    def __init__(self, conn: psycopg.Connection, *, actor: str, note: str, chunk: int) -> None:
        self.conn = conn
        self.actor = actor
        self.note = note
        self.chunk = chunk
        self.staged = 0

    def create(self) -> None:
        with self._transaction():
            self.conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
            self.conn.execute(_CREATE)

    def remove_superseded(self) -> list[tuple[str, int]]:
        """Delete rows that a later row with the same alert_id replaces; their (id, line)."""
        with self._transaction():
            # Grouping a file's ids overflows the default 4 MB from about 50,000 rows on.
            self.conn.execute(f"SET LOCAL work_mem = '{_WORK_MEM}'")
            removed = self.conn.execute(_REMOVE_SUPERSEDED).fetchall()
        self.staged -= len(removed)
        return sorted(removed, key=lambda item: item[1])

    def upsert_all(self, last_seq: int, meter: Progress) -> tuple[int, int]:
        """Upsert the staged rows into alerts chunk by chunk; (inserted, updated)."""
        if last_seq > self.chunk:
            with self._transaction():
                self.conn.execute(f"CREATE INDEX ON {TABLE} (seq)")
                self.conn.execute(f"ANALYZE {TABLE}")

        inserted = updated = 0
        for after in range(0, last_seq, self.chunk):
            with self._transaction():
                # The chunk is sorted by alert_id (a lock order that keeps two concurrent loads
                # from deadlocking); the default 4 MB would sort a 50,000-row chunk on disk.
                self.conn.execute(f"SET LOCAL work_mem = '{_WORK_MEM}'")
                row = self.conn.execute(_UPSERT, {"after": after, "upto": after + self.chunk})
                added, changed = row.fetchone() or (0, 0)
            inserted, updated = inserted + added, updated + changed
            meter.advance(min(self.chunk, last_seq - after))
        return inserted, updated

    def drop(self) -> None:
        try:
            with self._transaction():
                self.conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        except psycopg.Error as error:
            # The pool discards a broken connection, and the temp table goes with it.
            logger.warning("could not drop %s: %s", TABLE, error)

    def copy_chunk(self, rows: list[StagedRow]) -> None:
        """Copy ``rows`` in one transaction."""
        if not rows:
            return
        with self._transaction(), self.conn.cursor() as cursor:
            statement = f"COPY {TABLE} ({', '.join(STAGED_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
            with cursor.copy(statement) as copy:
                copy.set_types(list(_STAGED_TYPES))
                for row in rows:
                    copy.write_row(row)
        self.staged += len(rows)

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection]:
        with self.conn.transaction():
            attributed(self.conn, actor=self.actor, source=SOURCE, note=self.note)
            yield self.conn

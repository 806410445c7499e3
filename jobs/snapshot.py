"""Parquet snapshots of the alerts, for notebooks (DuckDB, pandas, Polars) that must not query
the service itself.

One snapshot is three files named with its time and the last change event it includes:
``alerts-<stamp>.parquet`` (every alert as PostgreSQL holds it), ``daily-<stamp>.parquet`` (per
UTC day, severity, status, region and violation type: alerts, amount, resolved) and
``manifest-<stamp>.json`` (what it covers). All three are read in one REPEATABLE READ
transaction, so they agree with each other exactly. The alerts stream from a ``COPY`` through
Arrow's CSV reader into a ``ParquetWriter`` batch by batch, so memory stays flat however many
alerts there are. Each file is written under a temporary name and renamed into place, the
manifest last: a snapshot whose manifest exists is complete.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from olap.replicator import read_watermark
from workflow.db import Database

__all__ = ["Snapshot", "prune_snapshots", "write_snapshot"]

logger = logging.getLogger(__name__)

ROW_GROUP_ROWS = 128 * 1024
CSV_BLOCK_BYTES = 8 * 1024 * 1024

_ALERT_TYPES = {
    "id": pa.int64(),
    "alert_id": pa.string(),
    "company_name": pa.string(),
    "company_key": pa.string(),
    "violation_type": pa.string(),
    "severity": pa.string(),
    "status": pa.string(),
    "amount": pa.decimal128(15, 2),
    "region": pa.string(),
    "detected_at": pa.int64(),
    "resolved_at": pa.int64(),
    "created_at": pa.int64(),
    "updated_at": pa.int64(),
    "assignee": pa.string(),
    "version": pa.int32(),
}
_TIMES = ("detected_at", "resolved_at", "created_at", "updated_at")

# Times leave PostgreSQL as microseconds since the epoch, which Arrow reads without guessing.
_ALERTS_SQL = (
    "COPY (SELECT id, alert_id, company_name, company_key, violation_type, severity, status,"
    " amount, region,"
    + ", ".join(f" (extract(epoch FROM {name}) * 1000000)::bigint AS {name}" for name in _TIMES)
    + ", assignee, version FROM alerts ORDER BY detected_at, id)"
    " TO STDOUT WITH (FORMAT csv, HEADER true)"
)

_DAILY_SQL = (
    "SELECT (detected_at AT TIME ZONE 'UTC')::date AS day, severity, status, region,"
    " violation_type, count(*) AS alerts, coalesce(sum(amount), 0)::numeric(38, 2) AS amount,"
    " count(resolved_at) AS resolved FROM alerts GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5"
)
_DAILY_SCHEMA = pa.schema(
    [
        ("day", pa.date32()),
        ("severity", pa.string()),
        ("status", pa.string()),
        ("region", pa.string()),
        ("violation_type", pa.string()),
        ("alerts", pa.int64()),
        ("amount", pa.decimal128(38, 2)),
        ("resolved", pa.int64()),
    ]
)


@dataclass(frozen=True)
class Snapshot:
    stamp: str
    alerts_path: Path
    daily_path: Path
    manifest_path: Path
    rows: int
    last_event_id: int


def write_snapshot(db: Database, folder: Path, *, target: str = "msd") -> Snapshot:
    """Write one consistent snapshot into ``folder``; ``target`` names whose watermark to note."""
    folder.mkdir(parents=True, exist_ok=True)
    taken_at = datetime.now(timezone.utc)
    with db.pool.connection() as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        last_event = conn.execute("SELECT coalesce(max(event_id), 0) FROM alert_events")
        last_event_id = int(last_event.fetchone()[0])  # type: ignore[index]
        row = conn.execute("SELECT pg_current_snapshot()::text").fetchone()
        snapshot_id = str(row[0])  # type: ignore[index]
        watermark = read_watermark(conn, target)
        stamp = f"{taken_at:%Y%m%dT%H%M%SZ}-e{last_event_id:012d}"

        alerts_path = folder / f"alerts-{stamp}.parquet"
        daily_path = folder / f"daily-{stamp}.parquet"
        try:
            rows, alerts_digest = _atomically(alerts_path, lambda tmp: _write_alerts(conn, tmp))
            day_rows, daily_digest = _atomically(daily_path, lambda tmp: _write_daily(conn, tmp))
        except BaseException:
            # No manifest names a half-written snapshot, so nothing would ever prune it.
            alerts_path.unlink(missing_ok=True)
            daily_path.unlink(missing_ok=True)
            raise
        finally:
            conn.rollback()

    manifest = {
        "stamp": stamp,
        "taken_at": taken_at.isoformat(),
        "postgres_snapshot": snapshot_id,
        "last_event_id": last_event_id,
        "replication_watermark": watermark.position,
        "files": {
            "alerts": {"path": alerts_path.name, "rows": rows, "sha256": alerts_digest},
            "daily": {"path": daily_path.name, "rows": day_rows, "sha256": daily_digest},
        },
        "covers": "every alert in PostgreSQL as of postgres_snapshot (change events up to"
        " last_event_id); daily: the same alerts per UTC day of detected_at",
    }
    manifest_path = folder / f"manifest-{stamp}.json"
    _atomically(manifest_path, lambda tmp: _write_json(tmp, manifest))
    logger.info("snapshot %s: %d alerts, %d daily rows in %s", stamp, rows, day_rows, folder)
    return Snapshot(stamp, alerts_path, daily_path, manifest_path, rows, last_event_id)


def _atomically(path: Path, write) -> tuple[int, str]:
    """Write through ``write(temporary path)``, then rename into place; (rows, sha256)."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        rows = write(temporary)
        digest = _sha256(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return rows, digest


def _write_alerts(conn: psycopg.Connection, path: Path) -> int:
    rows = 0
    schema = _alert_schema()
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        with conn.cursor().copy(_ALERTS_SQL) as copy:
            reader = pacsv.open_csv(
                _CopyStream(iter(copy)),
                read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    column_types=_ALERT_TYPES,
                    # COPY writes NULL unquoted and an empty string quoted: only NULL is null.
                    strings_can_be_null=True,
                    null_values=[""],
                    quoted_strings_can_be_null=False,
                ),
            )
            # Batches come as Arrow's reader cuts them; row groups hold ROW_GROUP_ROWS each,
            # so that readers get few, large groups and the file compresses well.
            waiting: list[pa.RecordBatch] = []
            waiting_rows = 0
            for batch in reader:
                waiting.append(batch)
                waiting_rows += batch.num_rows
                if waiting_rows >= ROW_GROUP_ROWS:
                    rows += _write_group(writer, waiting, schema)
                    waiting, waiting_rows = [], 0
            if waiting:
                rows += _write_group(writer, waiting, schema)
    return rows


def _write_group(writer: pq.ParquetWriter, batches: list, schema: pa.Schema) -> int:
    table = _typed(pa.Table.from_batches(batches), schema)
    writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
    return table.num_rows


def _alert_schema() -> pa.Schema:
    fields = []
    for name, kind in _ALERT_TYPES.items():
        if name in _TIMES:
            kind = pa.timestamp("us", "UTC")
        fields.append(pa.field(name, kind, nullable=name in ("amount", "resolved_at", "assignee")))
    return pa.schema(fields)


def _typed(table: pa.Table, schema: pa.Schema) -> pa.Table:
    for name in _TIMES:
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, table[name].cast(pa.timestamp("us", "UTC")))
    return table.cast(schema)


class _CopyStream(io.RawIOBase):
    """A COPY's chunks as a readable file, for Arrow's streaming CSV reader."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        """Fill ``buffer`` from as many chunks as fit: COPY sends about a row per chunk."""
        filled = 0
        while filled < len(buffer):
            if not self._pending:
                try:
                    self._pending = bytes(next(self._chunks))
                except StopIteration:
                    break
            size = min(len(buffer) - filled, len(self._pending))
            buffer[filled : filled + size] = self._pending[:size]
            self._pending = self._pending[size:]
            filled += size
        return filled


def _write_daily(conn: psycopg.Connection, path: Path) -> int:
    rows = conn.execute(_DAILY_SQL).fetchall()
    columns = list(zip(*rows)) if rows else [[] for _ in _DAILY_SCHEMA]
    table = pa.table(
        {
            field.name: pa.array(list(values), field.type)
            for field, values in zip(_DAILY_SCHEMA, columns)
        },
        schema=_DAILY_SCHEMA,
    )
    pq.write_table(table, path, compression="zstd", row_group_size=ROW_GROUP_ROWS)
    return table.num_rows


def _write_json(path: Path, document: dict) -> int:
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prune_snapshots(folder: Path, keep: int) -> list[str]:
    """Delete all but the ``keep`` newest complete snapshots in ``folder``; the stamps deleted."""
    manifests = sorted(folder.glob("manifest-*.json"), reverse=True)
    deleted = []
    for manifest in manifests[keep:]:
        stamp = manifest.name.removeprefix("manifest-").removesuffix(".json")
        for kind in ("alerts", "daily"):
            (folder / f"{kind}-{stamp}.parquet").unlink(missing_ok=True)
        manifest.unlink()
        deleted.append(stamp)
    if deleted:
        logger.info("snapshots: kept the %d newest, deleted %s", keep, ", ".join(deleted))
    return deleted

"""Parquet snapshots: complete, consistent with PostgreSQL as DuckDB reads them, streamed in row
groups, written atomically, and pruned to the newest few."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from jobs import snapshot as snapshots
from tests.api.conftest import seed_alerts
from tests.jobs.conftest import url_for_subprocess
from workflow.db import Database

REPO = Path(__file__).resolve().parents[2]


def _postgres_figures(db: Database) -> tuple:
    with db.reading() as conn:
        return conn.execute(
            "SELECT count(*), coalesce(sum(amount), 0), count(*) FILTER (WHERE status ="
            " 'PENDING'), count(assignee), count(resolved_at), min(detected_at) FROM alerts"
        ).fetchone()


def test_duckdb_reads_the_snapshot_with_postgresql_counts(db: Database, tmp_path: Path) -> None:
    seed_alerts(db, 700, hours_apart=2)
    with db.transaction() as conn:
        conn.execute("UPDATE alerts SET assignee = 'ana' WHERE alert_id LIKE 'seed-3%%'")

    taken = snapshots.write_snapshot(db, tmp_path)

    expected = _postgres_figures(db)
    with duckdb.connect() as duck:
        alerts = duck.execute(
            "SELECT count(*), coalesce(sum(amount), 0), count(*) FILTER (WHERE status ="
            " 'PENDING'), count(assignee), count(resolved_at), min(detected_at)"
            f" FROM read_parquet('{taken.alerts_path}')"
        ).fetchall()[0]
        daily = duck.execute(
            f"SELECT sum(alerts), sum(amount) FROM read_parquet('{taken.daily_path}')"
        ).fetchall()[0]
    assert alerts == expected
    assert daily == (expected[0], expected[1])
    manifest = json.loads(taken.manifest_path.read_text())
    assert manifest["files"]["alerts"]["rows"] == 700 == taken.rows
    assert manifest["last_event_id"] > 0 and manifest["stamp"] in taken.alerts_path.name
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


def test_alerts_stream_in_row_groups(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_alerts(db, 3_000, hours_apart=1)
    monkeypatch.setattr(snapshots, "CSV_BLOCK_BYTES", 64 * 1024)
    monkeypatch.setattr(snapshots, "ROW_GROUP_ROWS", 1_000)

    taken = snapshots.write_snapshot(db, tmp_path)

    metadata = pq.ParquetFile(taken.alerts_path).metadata
    sizes = [metadata.row_group(n).num_rows for n in range(metadata.num_row_groups)]
    assert metadata.num_rows == 3_000
    # Streamed (several groups), and in full groups rather than one per COPY chunk.
    assert 3 <= len(sizes) <= 6 and max(sizes) == 1_000


def test_a_failed_write_leaves_no_file_behind(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_alerts(db, 10)

    def broken(conn, path: Path) -> int:
        path.write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(snapshots, "_write_daily", broken)

    with pytest.raises(OSError, match="disk full"):
        snapshots.write_snapshot(db, tmp_path)

    assert list(tmp_path.iterdir()) == []


def test_pruning_keeps_the_newest_snapshots(db: Database, tmp_path: Path) -> None:
    seed_alerts(db, 5)
    stamps = []
    for _ in range(3):
        stamps.append(snapshots.write_snapshot(db, tmp_path).stamp)
        with db.transaction() as conn:  # a new event: the next stamp differs
            conn.execute("UPDATE alerts SET region = region || 'x' WHERE alert_id = 'seed-1'")

    deleted = snapshots.prune_snapshots(tmp_path, keep=2)

    assert deleted == [stamps[0]]
    assert sorted(p.name.split("-", 1)[1] for p in tmp_path.glob("manifest-*")) == [
        f"{stamp}.json" for stamp in stamps[1:]
    ]
    assert len(list(tmp_path.glob("*.parquet"))) == 4


def test_msd_snapshot_command_writes_into_out(
    db: Database, pg_server_url: str, pg_url: str, tmp_path: Path
) -> None:
    seed_alerts(db, 20)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSD_")}
    env |= {"MSD_DATABASE_URL": url_for_subprocess(pg_server_url, pg_url), "PYTHONPATH": str(REPO)}

    done = subprocess.run(
        [sys.executable, "-m", "msd.cli", "snapshot", "--out", str(tmp_path / "snaps")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    assert "wrote 20 alerts" in done.stdout
    assert len(list((tmp_path / "snaps").glob("manifest-*.json"))) == 1

"""The report's summary line and the terminal-only progress line."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from ingest import IngestReport, ingest_files
from ingest.progress import Progress
from workflow.db import Database

HEADER = "alert_id,company_name,violation_type,severity,detected_at"


def test_summary_line_gives_the_counts_speed_and_rejects_path(
    db: Database, write_file, tmp_path: Path
) -> None:
    one = write_file("one.csv", [HEADER, "a,Acme,Fees,LOW,2024-01-01",
                                 "b,Acme,Fees,BAD,2024-01-01"])
    two = write_file("two.csv", [HEADER, "c,Acme,Fees,LOW,2024-01-01",
                                 "c,Acme,Fees,HIGH,2024-01-01"])
    rejects = tmp_path / "r.csv"

    report = ingest_files(db, [one, two], rejects_path=rejects)

    line = report.summary()
    assert line.startswith("2 files: read 4, inserted 2, updated 0, unchanged 0, rejected 1,"
                           " duplicates 1 in ")
    assert "rows/s" in line and line.endswith(f"; rejects in {rejects}")
    assert [f.read for f in report.files] == [2, 2]
    assert report.duplicate_ids == ["c"]


def test_report_encodes_to_json_for_callers_that_print_it(
    db: Database, write_file, tmp_path: Path
) -> None:
    path = write_file("one.csv", [HEADER, "a,Acme,Fees,LOW,2024-01-01"])

    report = ingest_files(db, [path], rejects_path=tmp_path / "r.csv")

    decoded = msgspec.json.decode(msgspec.json.encode(report), type=IngestReport)
    assert decoded.inserted == 1 and decoded.files[0].path == str(path)


def test_progress_draws_rows_and_rate_on_a_terminal() -> None:
    leader, follower = os.openpty()
    with os.fdopen(follower, "w") as terminal:
        meter = Progress("file.csv", enabled=True, stream=terminal)
        meter.advance(1500)
        meter.start("upserted")
        meter.advance(1200)
        meter.finish()
    drawn = _read_all(leader).decode()

    assert drawn.startswith("\rfile.csv: 1,500 rows read")
    assert "\rfile.csv: 1,200 rows upserted" in drawn
    assert "rows/s" in drawn and drawn.rstrip().endswith("done")


def test_progress_stays_silent_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    with open(tmp_path / "log.txt", "w") as not_a_terminal:
        meter = Progress("file.csv", enabled=True, stream=not_a_terminal)
        meter.advance(10)
        meter.finish()

    assert (tmp_path / "log.txt").read_text() == ""


def _read_all(leader: int) -> bytes:
    # One read of a terminal may return only part of what was written; the writing side is
    # closed, so reading until the terminal reports its end gets all of it.
    chunks = []
    try:
        while chunk := os.read(leader, 4096):
            chunks.append(chunk)
    except OSError:
        pass
    finally:
        os.close(leader)
    return b"".join(chunks)

"""The JSON Lines, Parquet and gzip readers feed the same validation and line numbering."""

from __future__ import annotations

import gzip
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingest import IngestError, ingest_files
from workflow.db import Database


def test_jsonl_records_load_with_exact_amounts_and_bad_lines_rejected(
    db: Database, write_file, alerts, rejects_of, tmp_path: Path
) -> None:
    path = write_file("alerts.jsonl", [
        '{"alert_id": "j-1", "company_name": "Acme", "violation_type": "Fees",'
        ' "severity": "high", "amount": 1234.56, "detected_at": "2024-03-01T09:30:00"}',
        "",
        '{"alert_id": "j-2", "company_name": "Acme", "violation_type": "Fees",',
        '{"alert_id": "j-3", "company_name": "Acme", "violation_type": "Fees",'
        ' "severity": "LOW", "amount": null, "region": "WA", "detected_at": "2024-03-02"}',
        '["not", "an", "object"]',
        '{"alert_id": "j-4", "company_name": "Acme", "violation_type": "Fees",'
        ' "severity": "LOW", "amount": -1, "detected_at": "2024-03-02"}',
    ])
    rejects = tmp_path / "r.csv"

    report = ingest_files(db, [path], rejects_path=rejects)

    assert (report.files[0].source_format, report.read, report.inserted) == ("native", 5, 2)
    found = rejects_of(rejects)
    assert [line for line, _ in found] == [3, 5, 6]
    assert found[0][1].startswith("the line is not valid JSON")
    assert found[2][1] == "amount -1 is negative"
    stored = alerts()
    assert stored["j-1"]["amount"] == Decimal("1234.56")
    assert stored["j-1"]["detected_at"] == datetime(2024, 3, 1, 9, 30, tzinfo=timezone.utc)
    assert stored["j-3"]["region"] == "WA"


def test_ndjson_extension_is_read_as_json_lines(db: Database, write_file, tmp_path: Path) -> None:
    path = write_file("alerts.ndjson", [
        '{"alert_id": "n-1", "company_name": "Acme", "violation_type": "Fees",'
        ' "severity": "LOW", "detected_at": "2024-03-01"}',
    ])

    assert ingest_files(db, [path], rejects_path=tmp_path / "r.csv").inserted == 1


def test_parquet_typed_columns_load_and_bad_rows_are_rejected_by_row_number(
    db: Database, alerts, rejects_of, tmp_path: Path
) -> None:
    moment = datetime(2024, 5, 1, 8, 0, tzinfo=timezone.utc)
    table = pa.table({
        "alert_id": ["p-1", "p-2", "p-3"],
        "company_name": ["Acme", "Acme", "Acme"],
        "violation_type": ["Fees", "Fees", "Fees"],
        "severity": ["LOW", "EXTREME", "critical"],
        "amount": pa.array([Decimal("10.25"), None, Decimal("99.99")], pa.decimal128(15, 2)),
        "detected_at": pa.array([moment] * 3, pa.timestamp("us", tz="UTC")),
    })
    path = tmp_path / "alerts.parquet"
    pq.write_table(table, path)
    rejects = tmp_path / "r.csv"

    report = ingest_files(db, [path], rejects_path=rejects)

    assert (report.read, report.inserted, report.rejected) == (3, 2, 1)
    assert rejects_of(rejects) == [(2, "severity 'EXTREME' is not one of LOW, MEDIUM, HIGH,"
                                       " CRITICAL")]
    stored = alerts()
    assert (stored["p-1"]["amount"], stored["p-1"]["detected_at"]) == (Decimal("10.25"), moment)
    assert stored["p-3"]["severity"] == "CRITICAL"


def test_gzipped_csv_is_read_like_plain_csv(db: Database, alerts, tmp_path: Path) -> None:
    path = tmp_path / "alerts.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8", newline="") as handle:
        handle.write("alert_id,company_name,violation_type,severity,detected_at\r\n"
                     "g-1,Acme,Fees,MEDIUM,2024-06-01\r\n")

    report = ingest_files(db, [path], rejects_path=tmp_path / "r.csv")

    assert report.inserted == 1
    assert alerts()["g-1"]["severity"] == "MEDIUM"


def test_unknown_extension_is_refused_naming_the_file(db: Database, write_file) -> None:
    path = write_file("alerts.xlsx", ["alert_id"])

    with pytest.raises(IngestError, match=r"alerts\.xlsx: unknown file type"):
        ingest_files(db, [path])


def test_empty_csv_is_refused_naming_the_file(db: Database, write_file) -> None:
    path = write_file("empty.csv", [""], newline="")

    with pytest.raises(IngestError, match=r"empty\.csv: the file is empty"):
        ingest_files(db, [path])

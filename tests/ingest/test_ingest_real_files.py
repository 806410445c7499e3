"""Loading the real CFPB and Violation Tracker files from shared/data, checked against the CSVs."""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from ingest import ingest_files
from workflow.db import Database

CFPB = "cfpb_consumer_complaints/cfpb_complaints_fullschema_sample.csv"
VT = "violation_tracker_federal_penalties/violation_tracker_federal_penalties.csv"
VT_KEY = ("Company", "Agency", "Penalty Date", "Penalty Amount", "Primary Offense")


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _scalar(db: Database, sql: str, params: tuple = ()) -> object:
    with db.reading() as conn:
        return conn.execute(sql, params).fetchone()[0]


def _dollars(text: str) -> Decimal:
    return Decimal(text.replace("$", "").replace(",", ""))


def test_cfpb_file_loads_every_complaint_with_counts_that_add_up(
    db: Database, shared_data: Path, tmp_path: Path
) -> None:
    report = ingest_files(db, [shared_data / CFPB], rejects_path=tmp_path / "rejects.csv")

    assert report.read == 9690
    assert report.files[0].source_format == "cfpb"
    assert report.inserted == 9690 and report.rejected == 0 and report.duplicates == 0
    parts = report.inserted + report.updated + report.unchanged + report.rejected
    assert parts + report.duplicates == report.read
    assert _scalar(db, "SELECT count(*) FROM alerts") == report.inserted
    assert _scalar(db, "SELECT count(*) FROM alert_events WHERE source = 'ingest'") == 9690


def test_cfpb_complaint_maps_to_the_documented_alert_fields(
    db: Database, shared_data: Path, tmp_path: Path
) -> None:
    ingest_files(db, [shared_data / CFPB], rejects_path=tmp_path / "rejects.csv")

    with db.reading() as conn:
        row = conn.execute(
            "SELECT company_name, company_key, violation_type, region, detected_at, status,"
            " severity, amount FROM alerts WHERE alert_id = 'cfpb-3571115'"
        ).fetchone()
    assert row == (
        "TRANSUNION INTERMEDIATE HOLDINGS, INC.", "transunion intermediate holdings inc",
        "Incorrect information on your report", "FL",
        datetime(2020, 3, 18, tzinfo=timezone.utc), "RESOLVED", "LOW", None,
    )


def test_cfpb_severity_and_status_follow_the_response_rules(
    db: Database, shared_data: Path, tmp_path: Path
) -> None:
    rows = _rows(shared_data / CFPB)
    late = [r for r in rows if r["Timely response?"] == "No"
            or r["Company response to consumer"] == "Untimely response"]
    still_open = [r for r in rows if r["Company response to consumer"] in
                  ("In progress", "Untimely response", "")]

    ingest_files(db, [shared_data / CFPB], rejects_path=tmp_path / "rejects.csv")

    assert _scalar(db, "SELECT count(*) FROM alerts WHERE severity = 'CRITICAL'") == len(late)
    assert _scalar(db, "SELECT count(*) FROM alerts WHERE status = 'PENDING'") == len(still_open)
    worked = "SELECT count(*) FROM alerts WHERE status IN ('REVIEWING', 'DISMISSED')"
    assert _scalar(db, worked) == 0
    assert _scalar(db, "SELECT count(*) FROM alerts WHERE amount IS NOT NULL") == 0


def test_violation_tracker_rejects_exactly_the_three_impossible_dates(
    db: Database, shared_data: Path, tmp_path: Path
) -> None:
    rejects = tmp_path / "vt.rejects.csv"
    report = ingest_files(db, [shared_data / VT], rejects_path=rejects)

    assert report.read == 26384
    assert (report.inserted, report.rejected, report.duplicates) == (26381, 3, 0)
    assert report.rejects_paths == [str(rejects)]
    assert _scalar(db, "SELECT count(*) FROM alerts") == 26381
    with open(rejects, encoding="utf-8", newline="") as handle:
        written = [(int(r["line"]), r["reason"]) for r in csv.DictReader(handle)]
    assert [line for line, _ in written] == [21554, 21650, 21768]
    assert [reason.split("'")[3] for _, reason in written] == ["20156030", "20135030", "20156030"]
    assert all(reason.startswith("detected_at (column 'Penalty Date')") for _, reason in written)


def test_violation_tracker_amounts_add_up_exactly_to_the_adjusted_penalties(
    db: Database, shared_data: Path, tmp_path: Path
) -> None:
    rows = [r for r in _rows(shared_data / VT) if r["Penalty Date"] not in ("20156030", "20135030")]
    adjusted = "Penalty Amount Adjusted For Eliminating Multiple Counting"
    expected = sum(_dollars(r[adjusted] or r["Penalty Amount"]) for r in rows)

    ingest_files(db, [shared_data / VT], rejects_path=tmp_path / "rejects.csv")

    assert _scalar(db, "SELECT sum(amount) FROM alerts") == expected
    assert _scalar(db, "SELECT count(*) FROM alerts WHERE status <> 'RESOLVED'") == 0
    assert _scalar(db, "SELECT count(*) FROM alerts WHERE resolved_at <> detected_at") == 0


def test_violation_tracker_identical_rows_stay_separate_alerts(
    db: Database, shared_data: Path, tmp_path: Path
) -> None:
    groups = Counter(tuple(r[c] for c in VT_KEY) for r in _rows(shared_data / VT))
    key, size = max(groups.items(), key=lambda item: item[1])
    digest = hashlib.sha256("|".join(key).encode()).hexdigest()[:16]
    expected = [f"vt-{digest}"] + [f"vt-{digest}-{n}" for n in range(1, size)]

    ingest_files(db, [shared_data / VT], rejects_path=tmp_path / "rejects.csv")

    with db.reading() as conn:
        ids = [r[0] for r in conn.execute(
            "SELECT alert_id FROM alerts WHERE alert_id LIKE %s", (f"vt-{digest}%",))]
    assert size > 1
    assert sorted(ids) == sorted(expected)
    assert _scalar(db, "SELECT count(DISTINCT alert_id) FROM alerts") == 26381


def test_violation_tracker_region_is_a_state_code_and_severity_follows_the_rules(
    db: Database, shared_data: Path, tmp_path: Path
) -> None:
    rows = [r for r in _rows(shared_data / VT) if r["Penalty Date"] not in ("20156030", "20135030")]
    # Severity follows the penalty as imposed, not the amount adjusted for double counting.
    criminal = [r for r in rows if "criminal" in r["Civil/Criminal"]]
    civil = [_dollars(r["Penalty Amount"]) for r in rows if "criminal" not in r["Civil/Criminal"]]
    critical = len(criminal) + sum(1 for amount in civil if amount >= 10_000_000)
    low = sum(1 for amount in civil if amount < 100_000)

    ingest_files(db, [shared_data / VT], rejects_path=tmp_path / "rejects.csv")

    with db.reading() as conn:
        regions = {r[0] for r in conn.execute("SELECT DISTINCT region FROM alerts")}
    assert {"CA", "TX", "DC", "PR", "GU", "VI", "AS", "MP", ""} <= regions
    assert all(len(region) <= 2 for region in regions)
    assert _scalar(db, "SELECT count(*) FROM alerts WHERE severity = 'CRITICAL'") == critical
    assert _scalar(db, "SELECT count(*) FROM alerts WHERE severity = 'LOW'") == low


def test_rerunning_the_same_files_changes_nothing_and_writes_no_events(
    db: Database, shared_data: Path, tmp_path: Path
) -> None:
    paths = [shared_data / CFPB, shared_data / VT]
    first = ingest_files(db, paths, rejects_path=tmp_path / "first.csv")
    events = _scalar(db, "SELECT count(*) FROM alert_events")
    versions = _scalar(db, "SELECT sum(version) FROM alerts")

    again = ingest_files(db, paths, rejects_path=tmp_path / "again.csv")

    assert first.inserted == 9690 + 26381
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 9690 + 26381)
    assert again.rejected == 3
    assert _scalar(db, "SELECT count(*) FROM alert_events") == events
    assert _scalar(db, "SELECT sum(version) FROM alerts") == versions


@pytest.mark.parametrize("name", [CFPB, VT])
def test_real_file_format_is_detected_from_its_header(
    db: Database, shared_data: Path, tmp_path: Path, name: str
) -> None:
    report = ingest_files(db, [shared_data / name], rejects_path=tmp_path / "r.csv")

    expected = "cfpb" if name == CFPB else "violation_tracker"
    assert report.files[0].source_format == expected
    assert report.files[0].path == str(shared_data / name)

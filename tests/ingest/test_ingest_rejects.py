"""Bad rows are rejected with their file, physical line and a reason; good rows still land."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from ingest import ingest_files
from workflow.alert_times import CLOCK_SKEW
from workflow.db import Database

HEADER = "alert_id,company_name,violation_type,severity,status,amount,region,detected_at"


def test_each_kind_of_bad_row_is_rejected_with_its_line_and_reason(
    db: Database, write_file, alerts, rejects_of, tmp_path: Path
) -> None:
    path = write_file("bad.csv", [
        HEADER,
        "ok-1,Acme Bank,Fees,LOW,,10.50,NY,2024-01-05",
        ",Acme Bank,Fees,LOW,,,NY,2024-01-05",
        "bad-sev,Acme Bank,Fees,SEVERE,,,NY,2024-01-05",
        "bad-date,Acme Bank,Fees,LOW,,,NY,2024-13-45",
        "neg,Acme Bank,Fees,LOW,,-5,NY,2024-01-05",
        "nan,Acme Bank,Fees,LOW,,12abc,NY,2024-01-05",
        f"long-co,{'C' * 301},Fees,LOW,,,NY,2024-01-05",
        f"long-vt,Acme Bank,{'V' * 301},LOW,,,NY,2024-01-05",
        f"long-region,Acme Bank,Fees,LOW,,,{'R' * 101},2024-01-05",
        f"{'i' * 129},Acme Bank,Fees,LOW,,,NY,2024-01-05",
        "huge,Acme Bank,Fees,LOW,,12345678901234,NY,2024-01-05",
        "bad-status,Acme Bank,Fees,LOW,OPEN,,NY,2024-01-05",
        "short,Acme Bank,Fees",
        "giant,Acme Bank,Fees,LOW,,1" + "0" * 30 + ",NY,2024-01-05",
        "ok-2,Acme Bank,Fees,high,,9999999999999.99,,2024-01-05T10:00:00+02:00",
    ])
    rejects = tmp_path / "out" / "rejects.csv"

    report = ingest_files(db, [path], rejects_path=rejects)

    assert (report.read, report.inserted, report.rejected) == (15, 2, 13)
    assert set(alerts()) == {"ok-1", "ok-2"}
    reasons = dict(rejects_of(rejects))
    assert reasons[3] == "alert_id is missing"
    assert reasons[4] == "severity 'SEVERE' is not one of LOW, MEDIUM, HIGH, CRITICAL"
    assert reasons[5].startswith("detected_at (column 'detected_at'): '2024-13-45' is not an ISO")
    assert reasons[6] == "amount -5 is negative"
    assert reasons[7] == "amount (column 'amount'): '12abc' is not a number"
    assert reasons[8].startswith("company_name 'CCCC") and "longer than 300" in reasons[8]
    assert reasons[9].startswith("violation_type 'VVVV") and "longer than 300" in reasons[9]
    assert reasons[10].startswith("region 'RRRR") and "longer than 100" in reasons[10]
    assert reasons[11].startswith("alert_id 'iiii") and "longer than 128" in reasons[11]
    assert reasons[12] == "amount 12345678901234 has more than 13 digits before the point"
    assert reasons[13].startswith("status 'OPEN' is not one of")
    assert reasons[14] == "the line has 3 fields, the header has 8"
    assert reasons[15] == "amount 1" + "0" * 30 + " has more than 13 digits before the point"


def test_rows_dated_in_the_future_are_rejected_as_the_api_refuses_them(
    db: Database, write_file, alerts, rejects_of, tmp_path: Path
) -> None:
    now = datetime.now(timezone.utc)
    within_skew = (now + CLOCK_SKEW - timedelta(minutes=1)).isoformat()
    beyond_skew = (now + CLOCK_SKEW + timedelta(minutes=1)).replace(microsecond=0)
    path = write_file("future.csv", [
        "alert_id,company_name,violation_type,severity,status,detected_at,resolved_at",
        "past,Acme Bank,Fees,LOW,RESOLVED,2024-01-05,2024-01-06",
        f"clock-ahead,Acme Bank,Fees,LOW,,{within_skew},",
        "future,Acme Bank,Fees,LOW,,2099-01-01,",
        f"just-beyond,Acme Bank,Fees,LOW,,{beyond_skew.isoformat()},",
        "resolved-later,Acme Bank,Fees,LOW,RESOLVED,2024-01-05,2099-01-01",
        "backwards,Acme Bank,Fees,LOW,RESOLVED,2024-01-05,2024-01-04T12:00:00Z",
    ])
    rejects = tmp_path / "rejects.csv"

    report = ingest_files(db, [path], rejects_path=rejects)

    assert (report.read, report.inserted, report.rejected) == (6, 2, 4)
    assert set(alerts()) == {"past", "clock-ahead"}
    assert rejects_of(rejects) == [
        (4, "detected_at 2099-01-01T00:00:00+00:00 is in the future"),
        (5, f"detected_at {beyond_skew.isoformat()} is in the future"),
        (6, "resolved_at 2099-01-01T00:00:00+00:00 is in the future"),
        (7, "resolved_at 2024-01-04T12:00:00+00:00 is before detected_at"
            " 2024-01-05T00:00:00+00:00"),
    ]


def test_rejects_file_names_the_input_file_and_keeps_the_record(
    db: Database, write_file, tmp_path: Path
) -> None:
    import csv

    path = write_file("one.csv", [HEADER, "x,Acme,Fees,NOPE,,,NY,2024-01-05"])
    rejects = tmp_path / "rejects.csv"

    ingest_files(db, [path], rejects_path=rejects)

    with open(rejects, encoding="utf-8", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["file"] == str(path)
    assert row["line"] == "2"
    assert '"severity":"NOPE"' in row["record"]


def test_bom_crlf_quoted_newlines_and_spaces_keep_line_numbers_right(
    db: Database, write_file, alerts, rejects_of, tmp_path: Path
) -> None:
    path = write_file("messy.csv", [
        " alert_id , company_name ,violation_type,severity,status,amount,region,detected_at",
        '  a-1 ,"  Acme Bank, N.A.  ","Fees\r\nand charges", high ,  resolved ," 1.5 ",NY,'
        "2024-01-05",
        "a-2,Acme Bank,Fees,LOW,,,NY,2024-01-05 ",
        '"a-3","Two\nLine Bank","Fees",WRONG,,,NY,2024-01-05',
        "a-4,Acme Bank,Fees, Critical ,, 7.25 , ca ,2024-01-05 08:30",
        "a-5,Acme Bank,Fees,LOW,,\"1,5\",NY,2024-01-05",
    ], newline="\r\n", bom=True)
    rejects = tmp_path / "rejects.csv"

    report = ingest_files(db, [path], rejects_path=rejects)

    assert rejects_of(rejects) == [
        (5, "severity 'WRONG' is not one of LOW, MEDIUM, HIGH, CRITICAL"),
        (8, "amount (column 'amount'): '1,5' is not a number"),
    ]
    assert (report.read, report.inserted) == (5, 3)
    stored = alerts()
    assert stored["a-1"]["company_name"] == "Acme Bank, N.A."
    assert stored["a-1"]["violation_type"] == "Fees\r\nand charges"
    assert (stored["a-1"]["severity"], stored["a-1"]["status"]) == ("HIGH", "RESOLVED")
    assert stored["a-1"]["amount"] == Decimal("1.50")
    assert stored["a-2"]["detected_at"] == datetime(2024, 1, 5, tzinfo=timezone.utc)
    assert stored["a-4"]["severity"] == "CRITICAL"
    assert stored["a-4"]["amount"] == Decimal("7.25")
    assert stored["a-4"]["region"] == "ca"
    assert stored["a-4"]["detected_at"] == datetime(2024, 1, 5, 8, 30, tzinfo=timezone.utc)


def test_quoted_newline_row_lands_with_its_text_intact(
    db: Database, write_file, alerts, tmp_path: Path
) -> None:
    path = write_file("nl.csv", [
        HEADER,
        '"q-1","Acme Bank, N.A.","Fees\nand more",MEDIUM,REVIEWING,"1350000.00",TX,2024-02-29',
    ], newline="\r\n", bom=True)

    report = ingest_files(db, [path], rejects_path=tmp_path / "r.csv")

    assert report.inserted == 1
    row = alerts()["q-1"]
    assert row["violation_type"] == "Fees\nand more"
    assert row["company_key"] == "acme bank na"
    assert (row["status"], row["amount"]) == ("REVIEWING", Decimal("1350000.00"))


def test_cfpb_export_with_one_zero_flags_and_missing_optional_columns_loads(
    db: Database, write_file, alerts, tmp_path: Path
) -> None:
    path = write_file("cfpb-short.csv", [
        "Date received,Product,Issue,Company,Company response to consumer,Timely response?,"
        "Complaint ID",
        "2023-05-01,Mortgage,,Big Lender,Closed with explanation,0,111",
        "2023-05-02,Debt collection,Attempts to collect debt not owed,Collector,In progress,1,222",
        "2023-05-03,Credit card,Billing dispute,Card Co,,1,333",
    ])

    report = ingest_files(db, [path], rejects_path=tmp_path / "r.csv")

    assert (report.files[0].source_format, report.inserted) == ("cfpb", 3)
    stored = alerts()
    assert stored["cfpb-111"]["severity"] == "CRITICAL"
    assert stored["cfpb-111"]["violation_type"] == "Mortgage"
    assert stored["cfpb-111"]["status"] == "RESOLVED"
    assert (stored["cfpb-222"]["severity"], stored["cfpb-222"]["status"]) == ("MEDIUM", "PENDING")
    assert (stored["cfpb-333"]["severity"], stored["cfpb-333"]["status"]) == ("LOW", "PENDING")
    assert stored["cfpb-333"]["region"] == ""


def test_cfpb_yes_no_value_that_is_neither_is_rejected_naming_the_column(
    db: Database, write_file, rejects_of, tmp_path: Path
) -> None:
    path = write_file("cfpb-odd.csv", [
        "Date received,Issue,Company,Timely response?,Complaint ID",
        "2023-05-01,Fees,Big Lender,perhaps,111",
    ])
    rejects = tmp_path / "r.csv"

    ingest_files(db, [path], rejects_path=rejects)

    (line, reason), = rejects_of(rejects)
    assert line == 2
    assert reason.startswith("severity: column 'Timely response?' 'perhaps' is not yes/no")


def test_default_rejects_file_sits_beside_a_writable_input(
    db: Database, write_file, tmp_path: Path
) -> None:
    path = write_file("input.csv", [HEADER, "x,Acme,Fees,NOPE,,,NY,2024-01-05"])

    report = ingest_files(db, [path])

    assert report.rejects_path == str(tmp_path / "input.csv.rejects.csv")
    assert (tmp_path / "input.csv.rejects.csv").read_text().startswith("file,line,reason")


def test_default_rejects_file_goes_to_the_current_folder_when_input_folder_is_read_only(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, work = tmp_path / "readonly", tmp_path / "work"
    folder.mkdir()
    work.mkdir()
    path = folder / "input.csv"
    path.write_text(f"{HEADER}\nx,Acme,Fees,NOPE,,,NY,2024-01-05\n")
    os.chmod(folder, 0o555)
    monkeypatch.chdir(work)
    try:
        report = ingest_files(db, [path])
    finally:
        os.chmod(folder, 0o755)

    assert report.rejects_path == str(work / "input.csv.rejects.csv")
    assert not (folder / "input.csv.rejects.csv").exists()


def test_a_file_without_rejects_writes_no_rejects_file(
    db: Database, write_file, tmp_path: Path
) -> None:
    path = write_file("clean.csv", [HEADER, "x,Acme,Fees,LOW,,,NY,2024-01-05"])

    report = ingest_files(db, [path])

    assert report.rejects_path is None and report.files[0].rejects_path is None
    assert not (tmp_path / "clean.csv.rejects.csv").exists()

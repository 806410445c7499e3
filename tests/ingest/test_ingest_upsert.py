"""What a load does to alerts already stored: last row wins, facts update, workflow status stays."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from ingest import ingest_files
from workflow.db import Database

HEADER = "alert_id,company_name,violation_type,severity,status,amount,region,detected_at"


def _events(db: Database) -> list[tuple[str, str, str, str]]:
    with db.reading() as conn:
        return conn.execute(
            "SELECT alert_id, op, actor, source FROM alert_events ORDER BY event_id").fetchall()


def test_duplicate_ids_in_one_file_keep_the_last_row_and_are_reported(
    db: Database, write_file, alerts, tmp_path: Path
) -> None:
    path = write_file("dups.csv", [
        HEADER,
        "d-1,First Name,Fees,LOW,,1,NY,2024-01-01",
        "d-2,Other,Fees,LOW,,2,NY,2024-01-01",
        "d-1,Second Name,Fees,HIGH,,3,NY,2024-01-02",
        "d-3,Third,Fees,LOW,,4,NY,2024-01-01",
        "d-1,Last Name,Fees,CRITICAL,,5,CA,2024-01-03",
        "d-3,Third Again,Fees,LOW,,6,NY,2024-01-01",
    ])

    # Chunks of two rows put the repeats of d-1 in different transactions' reach.
    report = ingest_files(db, [path], rejects_path=tmp_path / "r.csv", chunk_rows=2)

    assert (report.read, report.inserted, report.duplicates) == (6, 3, 3)
    assert report.duplicate_ids == ["d-1", "d-3"]
    stored = alerts()
    assert (stored["d-1"]["company_name"], stored["d-1"]["severity"]) == ("Last Name", "CRITICAL")
    assert stored["d-1"]["amount"] == Decimal("5.00")
    assert stored["d-3"]["company_name"] == "Third Again"
    assert [op for _, op, _, _ in _events(db)] == ["I", "I", "I"]


def test_loads_spanning_many_chunks_count_every_row_once(
    db: Database, write_file, tmp_path: Path
) -> None:
    rows = [f"c-{n},Company {n % 7},Fees,LOW,,{n},NY,2024-01-01" for n in range(1, 24)]
    path = write_file("chunks.csv", [HEADER, *rows])

    first = ingest_files(db, [path], rejects_path=tmp_path / "r.csv", chunk_rows=5)
    again = ingest_files(db, [path], rejects_path=tmp_path / "r.csv", chunk_rows=5)

    assert (first.inserted, first.updated, first.unchanged) == (23, 0, 0)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 23)
    assert len(_events(db)) == 23


def test_changed_facts_update_the_alert_and_write_one_event_each(
    db: Database, write_file, alerts, tmp_path: Path
) -> None:
    before = write_file("v1.csv", [HEADER, "u-1,Acme,Fees,LOW,,100,NY,2024-01-01",
                                   "u-2,Acme,Fees,LOW,,100,NY,2024-01-01"])
    after = write_file("v2.csv", [HEADER, "u-1,Acme Bank,Fees,HIGH,,250.5,NJ,2024-01-01",
                                  "u-2,Acme,Fees,LOW,,100,NY,2024-01-01"])
    ingest_files(db, [before], rejects_path=tmp_path / "r.csv", actor="alice")

    report = ingest_files(db, [after], rejects_path=tmp_path / "r.csv", actor="bob")

    assert (report.inserted, report.updated, report.unchanged) == (0, 1, 1)
    stored = alerts()["u-1"]
    assert (stored["company_name"], stored["severity"], stored["region"]) == (
        "Acme Bank", "HIGH", "NJ")
    assert (stored["amount"], stored["version"]) == (Decimal("250.50"), 2)
    assert _events(db)[-1] == ("u-1", "U", "bob", "ingest")
    assert len(_events(db)) == 3


def test_file_status_replaces_stored_status_only_when_it_closes_an_open_alert(
    db: Database, write_file, alerts, tmp_path: Path
) -> None:
    first = write_file("first.csv", [
        HEADER,
        "s-review,Acme,Fees,LOW,PENDING,,NY,2024-01-01",
        "s-dismissed,Acme,Fees,LOW,PENDING,,NY,2024-01-01",
        "s-open,Acme,Fees,LOW,PENDING,1,NY,2024-01-01",
        "s-closed,Acme,Fees,LOW,RESOLVED,,NY,2024-01-01",
    ])
    ingest_files(db, [first], rejects_path=tmp_path / "r.csv")
    with db.transaction(actor="supervisor", source="api") as conn:
        conn.execute("UPDATE alerts SET status = 'REVIEWING', assignee = 'a.nguyen'"
                     " WHERE alert_id = 's-review'")
        conn.execute("UPDATE alerts SET status = 'DISMISSED' WHERE alert_id = 's-dismissed'")
    second = write_file("second.csv", [
        HEADER,
        "s-review,Acme,Fees,LOW,RESOLVED,,NY,2024-01-01",
        "s-dismissed,Acme,Fees,LOW,RESOLVED,,NY,2024-01-01",
        "s-open,Acme,Fees,LOW,PENDING,2,NY,2024-01-01",
        "s-closed,Acme,Fees,LOW,PENDING,,NY,2024-01-01",
    ])

    report = ingest_files(db, [second], rejects_path=tmp_path / "r.csv")

    stored = alerts()
    assert stored["s-review"]["status"] == "RESOLVED"
    assert stored["s-review"]["resolved_at"] is not None
    assert stored["s-review"]["assignee"] == "a.nguyen"
    assert stored["s-dismissed"]["status"] == "DISMISSED"
    assert (stored["s-open"]["status"], stored["s-open"]["amount"]) == ("PENDING", Decimal(2))
    assert stored["s-closed"]["status"] == "RESOLVED"
    # Every row's source said something new (a status or an amount), so each is an update.
    assert (report.updated, report.unchanged) == (4, 0)


def test_reloading_an_unchanged_file_keeps_an_alert_a_supervisor_reopened(
    db: Database, write_file, alerts, tmp_path: Path
) -> None:
    path = write_file("closed.csv", [HEADER, "re-1,Acme,Fees,LOW,RESOLVED,,NY,2024-01-01"])
    ingest_files(db, [path], rejects_path=tmp_path / "r.csv")
    with db.transaction(actor="supervisor", source="api") as conn:
        conn.execute("UPDATE alerts SET status = 'REVIEWING' WHERE alert_id = 're-1'")
    events = len(_events(db))

    again = ingest_files(db, [path], rejects_path=tmp_path / "r.csv")

    assert alerts()["re-1"]["status"] == "REVIEWING"
    assert (again.updated, again.unchanged) == (0, 1)
    assert len(_events(db)) == events


def test_resolution_before_detection_is_rejected_and_the_rest_lands(
    db: Database, write_file, alerts, tmp_path: Path
) -> None:
    header = HEADER + ",resolved_at"
    path = write_file("times.csv", [
        header,
        "t-bad,Acme,Fees,LOW,RESOLVED,,NY,2024-01-05,2024-01-01",
        "t-good,Acme,Fees,LOW,RESOLVED,,NY,2024-01-05,2024-01-06",
    ])

    report = ingest_files(db, [path], rejects_path=tmp_path / "r.csv")

    assert set(alerts()) == {"t-good"} and report.rejected == 1
    assert "before detected_at" in (tmp_path / "r.csv").read_text()


def test_file_resolution_time_is_kept_when_the_file_closes_the_alert(
    db: Database, write_file, alerts, tmp_path: Path
) -> None:
    header = HEADER + ",resolved_at"
    ingest_files(db, [write_file("a.csv", [header, "r-1,Acme,Fees,LOW,,,NY,2024-01-01,"])],
                 rejects_path=tmp_path / "r.csv")

    ingest_files(db, [write_file("b.csv", [
        header, "r-1,Acme,Fees,LOW,RESOLVED,,NY,2024-01-01,2024-01-04T12:00:00Z"])],
        rejects_path=tmp_path / "r.csv")

    assert alerts()["r-1"]["resolved_at"].isoformat() == "2024-01-04T12:00:00+00:00"

"""Format files: detection, a user's own TOML passed by path, and errors that name the file."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from ingest import FormatError, IngestError, builtin_formats, ingest_files, load_format

CUSTOM = '''
name = "state_regulator"

[detect]
required = ["Case No", "Firm", "Opened"]

[fields.alert_id]
template = "sr-{Case No}-{Year}"

[fields.company_name]
column = "Firm"

[fields.violation_type]
column = "Finding"
default = "Unspecified finding"

[fields.detected_at]
column = "Opened"
parser = "date"
formats = ["%d.%m.%Y"]

[fields.amount]
column = "Fine"
parser = "money"

[fields.region]
column = "State"
parser = "us_state"

[fields.status]
column = "Outcome"
map = { "settled" = "RESOLVED", "withdrawn" = "DISMISSED" }
default = "PENDING"

[fields.severity]
default = "LOW"

[[fields.severity.rules]]
value = "CRITICAL"
all = [{ column = "Repeat", parser = "yes_no", equals = true },
       { field = "amount", at_least = 50000 }]

[[fields.severity.rules]]
value = "HIGH"
any = [{ field = "amount", at_least = 50000 }, { column = "Finding", starts_with = "fraud" }]
'''


def test_custom_toml_format_passed_by_path_maps_its_own_columns(
    db, write_file, alerts, tmp_path: Path
) -> None:
    spec = tmp_path / "my_format.toml"
    spec.write_text(CUSTOM, encoding="utf-8")
    path = write_file("regulator.csv", [
        "Case No,Year,Firm,Finding,Opened,Fine,State,Outcome,Repeat",
        '17,2023,Pioneer Lending,Fraudulent fees,03.02.2023,"$75,000.00",new york,settled,yes',
        "18,2023,Summit Trust,,04.02.2023,$80,Ohio,,no",
        "19,2023,Summit Trust,Fraud,05.02.2023,,Atlantis,withdrawn,",
    ])

    report = ingest_files(db, [path], source_format=str(spec), rejects_path=tmp_path / "r.csv")

    assert (report.files[0].source_format, report.inserted) == ("state_regulator", 3)
    stored = alerts()
    first = stored["sr-17-2023"]
    assert (first["severity"], first["status"], first["region"]) == ("CRITICAL", "RESOLVED", "NY")
    assert first["amount"] == Decimal("75000.00")
    assert first["detected_at"] == datetime(2023, 2, 3, tzinfo=timezone.utc)
    second = stored["sr-18-2023"]
    assert (second["severity"], second["violation_type"]) == ("LOW", "Unspecified finding")
    third = stored["sr-19-2023"]
    assert (third["severity"], third["status"]) == ("HIGH", "DISMISSED")
    assert third["region"] == "Atlantis"


def test_format_name_selects_a_built_in_format_without_detection(
    db, write_file, alerts, tmp_path: Path
) -> None:
    path = write_file("cfpb.csv", ["Complaint ID,Company,Date received,Issue",
                                   "5,Acme,2024-01-02,Fees"])

    report = ingest_files(db, [path], source_format="cfpb", rejects_path=tmp_path / "r.csv")

    assert report.files[0].source_format == "cfpb"
    assert set(alerts()) == {"cfpb-5"}


def test_file_whose_format_cannot_be_told_stops_before_anything_loads(
    db, write_file, alerts
) -> None:
    good = write_file("good.csv", ["alert_id,company_name,violation_type,severity,detected_at",
                                   "a,Acme,Fees,LOW,2024-01-01"])
    odd = write_file("odd.csv", ["when,who,what", "2024-01-01,Acme,Fees"])

    with pytest.raises(IngestError, match=r"odd\.csv: cannot tell the format .*when, who, what"):
        ingest_files(db, [good, odd])
    assert alerts() == {}


def test_file_lacking_a_column_its_named_format_needs_is_refused(db, write_file) -> None:
    path = write_file("short.csv", ["Company,Date received", "Acme,2024-01-01"])

    with pytest.raises(IngestError, match=r"short\.csv: format cfpb needs the columns Complaint"):
        ingest_files(db, [path], source_format="cfpb")


def test_unknown_format_name_lists_the_built_in_ones() -> None:
    with pytest.raises(FormatError, match="cfpb, native, violation_tracker"):
        load_format("sec_filings")


@pytest.mark.parametrize(("broken", "message"), [
    (CUSTOM.replace('column = "Firm"', 'colum = "Firm"'), "unknown field `colum`"),
    (CUSTOM.replace('parser = "money"', 'parser = "cash"'), "unknown parser 'cash'"),
    (CUSTOM.replace("[fields.company_name]", "[fields.company]"),
     "has no mapping for company_name"),
    (CUSTOM.replace('{ field = "amount", at_least = 50000 }]', '{ field = "amount" }]'),
     "a rule of field severity needs one of column/field and one of"),
    (CUSTOM.replace("[detect]", "[detect"), "is not valid TOML"),
    (CUSTOM.replace('parser = "yes_no", ', ""), 'needs parser = "yes_no"'),
])
def test_broken_format_file_is_refused_naming_the_file_and_problem(
    tmp_path: Path, broken: str, message: str
) -> None:
    spec = tmp_path / "broken.toml"
    spec.write_text(broken, encoding="utf-8")

    with pytest.raises(FormatError, match=str(spec)) as raised:
        load_format(spec)
    assert message in str(raised.value)


def test_built_in_formats_are_the_three_documented_ones() -> None:
    formats = builtin_formats()

    assert sorted(formats) == ["cfpb", "native", "violation_tracker"]
    assert formats["cfpb"].detect.required == ["Complaint ID", "Company", "Date received"]

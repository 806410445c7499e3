"""The seeded demo generator: same seed, same rows; shapes close to the documented ones."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from ingest import generate_alerts, load_generated
from ingest.generate import SCHEMA, company_names
from workflow.db import Database

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def sample() -> list[dict]:
    return pa.Table.from_batches(list(generate_alerts(60_000, seed=11, now=NOW))).to_pylist()


def _company_key(name: str) -> str:
    # The same normalisation as the database's msd_company_key.
    return re.sub(r"[^0-9a-z]+", " ", re.sub(r"[.'’`]", "", name.lower())).strip()


def test_same_seed_gives_the_same_rows_and_another_seed_other_rows() -> None:
    first = pa.Table.from_batches(list(generate_alerts(2_000, seed=3, now=NOW)))
    again = pa.Table.from_batches(list(generate_alerts(2_000, seed=3, now=NOW)))
    other = pa.Table.from_batches(list(generate_alerts(2_000, seed=4, now=NOW)))

    assert first.equals(again)
    assert first.column("company_name") != other.column("company_name")
    assert first.schema == SCHEMA


def test_batches_hold_at_most_a_hundred_thousand_rows() -> None:
    sizes = [batch.num_rows for batch in generate_alerts(250_000, now=NOW)]

    assert sizes == [100_000, 100_000, 50_000]


def test_severity_amount_and_region_mix_match_the_documented_shares(sample: list[dict]) -> None:
    severity = Counter(row["severity"] for row in sample)
    amounts = [row["amount"] for row in sample if row["amount"] is not None]
    regions = Counter(row["region"] for row in sample)

    shares = {name: count / len(sample) for name, count in severity.items()}
    expected = {"LOW": 0.40, "MEDIUM": 0.35, "HIGH": 0.20, "CRITICAL": 0.05}
    assert all(abs(shares[name] - share) < 0.015 for name, share in expected.items())
    assert abs(1 - len(amounts) / len(sample) - 0.30) < 0.015
    assert 150_000 < statistics.median(amounts) < 270_000
    assert min(amounts) >= 5_000
    assert len(regions) == 52 and abs(regions[""] / len(sample) - 0.03) < 0.01
    assert regions["CA"] > regions["TX"] > regions["WY"]


def test_a_few_companies_hold_many_alerts_and_some_are_spelled_two_ways(
    sample: list[dict],
) -> None:
    by_key = Counter(_company_key(row["company_name"]) for row in sample)
    names_per_key = Counter(_company_key(name) for name in {r["company_name"] for r in sample})

    top_three = sum(count for _, count in by_key.most_common(3)) / len(sample)
    assert 0.35 < top_three < 0.55
    assert 1_500 < len(by_key) <= 2_000
    assert sum(1 for n in names_per_key.values() if n == 2) > 50
    assert len(company_names()) == 2_000


def test_dates_fall_in_the_window_with_fewer_on_weekends(sample: list[dict]) -> None:
    detected = [row["detected_at"] for row in sample]
    per_weekday = Counter(moment.weekday() for moment in detected)

    assert all(NOW - timedelta(days=60) <= moment < NOW for moment in detected)
    weekday_mean = sum(per_weekday[d] for d in range(5)) / 5
    weekend_mean = (per_weekday[5] + per_weekday[6]) / 2
    assert weekday_mean > 2.5 * weekend_mean


def test_older_alerts_are_more_often_resolved_and_after_their_detection(
    sample: list[dict],
) -> None:
    middle = NOW - timedelta(days=30)
    old = [row for row in sample if row["detected_at"] < middle]
    new = [row for row in sample if row["detected_at"] >= middle]
    resolved = [row for row in sample if row["status"] == "RESOLVED"]

    def share(rows: list[dict]) -> float:
        return sum(1 for row in rows if row["status"] == "RESOLVED") / len(rows)

    assert share(old) > share(new) + 0.2
    assert all(row["detected_at"] < row["resolved_at"] <= NOW for row in resolved)
    assert all(row["resolved_at"] is None for row in sample if row["status"] != "RESOLVED")
    assert all(row["assignee"] is None for row in sample if row["status"] == "PENDING")
    delays = [(row["resolved_at"] - row["detected_at"]).total_seconds() / 3600
              for row in resolved]
    assert 10 < statistics.median(delays) < 60


def test_load_generated_streams_through_the_copy_path_into_postgres(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    report = load_generated(db, 3_000, seed=5, now=NOW)
    again = load_generated(db, 3_000, seed=5, now=NOW)

    assert (report.read, report.inserted, report.rejected) == (3_000, 3_000, 0)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3_000)
    with db.reading() as conn:
        names, keys = conn.execute(
            "SELECT count(DISTINCT company_name), count(DISTINCT company_key) FROM alerts"
        ).fetchone()
        sources = conn.execute("SELECT DISTINCT source, actor FROM alert_events").fetchall()
    assert names > keys
    assert sources == [("ingest", "generator")]

"""Schedules: listed from their file, refused with the field named, and fired for real: in the
serving process (embedded mode) and through a Redis stream to a real ``msd worker``."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest
import redis

from jobs.broker import result_prefix
from jobs.scheduler import InProcessScheduler
from jobs.schedules import load_schedules
from msd.cli import main
from msd.runtime import Services
from olap.store import ClickHouseStore
from tests.api.conftest import seed_alerts
from tests.jobs.conftest import url_for_subprocess
from tests.olap.truth import clickhouse_aggregates, postgres_aggregates
from workflow.db import Database

REDIS_URL = "redis://127.0.0.1:6379/0"
REPO = Path(__file__).resolve().parents[2]

FAST = """
[[schedule]]
name = "drain"
job = "replicate"
every = 1

[[schedule]]
name = "check"
job = "reconcile"
every = 2
repair = true

[[schedule]]
name = "nightly"
job = "snapshot"
cron = "30 2 * * *"
enabled = false
"""


@pytest.fixture
def fast_schedules(tmp_path: Path) -> Path:
    path = tmp_path / "schedules.toml"
    path.write_text(FAST, encoding="utf-8")
    return path


def test_list_prints_each_schedule_with_when_what_and_enabled(
    fast_schedules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["scheduler", "--list", "--schedule-file", str(fast_schedules)])

    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[1].split()[:4] == ["NAME", "WHEN", "JOB", "ENABLED"]
    rows = {line.split()[0]: line for line in out[2:]}
    assert "every 1s" in rows["drain"] and " yes " in rows["drain"]
    assert "every 2s" in rows["check"] and "repair=True" in rows["check"]
    assert "cron 30 2 * * *" in rows["nightly"] and " no " in rows["nightly"]


def _msd(*args: str, **environment: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSD_")}
    env |= {"PYTHONPATH": str(REPO), **environment}
    command = [sys.executable, "-m", "msd.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_msd_scheduler_list_reads_the_file_msd_schedule_file_names_else_the_built_in_one(
    fast_schedules: Path,
) -> None:
    configured = _msd("scheduler", "--list", MSD_SCHEDULE_FILE=str(fast_schedules))
    built_in = _msd("scheduler", "--list")

    assert configured.returncode == built_in.returncode == 0, configured.stderr + built_in.stderr
    assert configured.stdout.splitlines()[0] == f"schedules from {fast_schedules}"
    assert [line.split()[0] for line in configured.stdout.splitlines()[2:]] == [
        "drain",
        "check",
        "nightly",
    ]
    rows = {line.split()[0]: line for line in built_in.stdout.splitlines()[2:]}
    assert set(rows) == {"replication-drain", "reconcile", "daily-snapshot"}
    assert "every 60s" in rows["replication-drain"] and "cron 30 2 * * *" in rows["daily-snapshot"]


def test_the_built_in_schedules_drain_reconcile_and_snapshot() -> None:
    schedules = {s.job: s for s in load_schedules(None)}

    assert schedules["replicate"].every == 60
    assert schedules["reconcile"].cron and schedules["reconcile"].options == {"repair": False}
    assert schedules["snapshot"].cron and schedules["snapshot"].options["keep"] == 7


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        ('name = "x"\njob = "vacuum"\nevery = 5', "`job` = 'vacuum'"),
        ('name = "x"\njob = "replicate"', "exactly one of `cron` or `every`"),
        ('name = "x"\njob = "replicate"\nevery = 0', "`every` = 0"),
        ('name = "x"\njob = "reconcile"\ncron = "61 * * * *"', "`cron` = '61 * * * *'"),
        ('name = "x"\njob = "reconcile"\nevery = 5\nrepair = "yes"', "`repair` = 'yes'"),
        ('name = "x"\njob = "snapshot"\nevery = 5\nkept = 3', "unknown field 'kept'"),
    ],
)
def test_a_bad_schedule_is_refused_naming_the_file_schedule_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], entry: str, named: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f"[[schedule]]\n{entry}\n", encoding="utf-8")

    code = main(["scheduler", "--list", "--schedule-file", str(path)])

    error = capsys.readouterr().err
    assert code == 2
    assert str(path) in error and "schedule 'x'" in error and named in error


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout}s")


def _events_applied(db: Database) -> int:
    with db.reading() as conn:
        row = conn.execute("SELECT coalesce(sum(events_applied), 0) FROM replication_state")
        return int(row.fetchone()[0])


def _reconcile_runs(db: Database) -> list[tuple]:
    with db.reading() as conn:
        return conn.execute(
            "SELECT days_compared, days_found, days_differing, repair FROM reconcile_runs"
            " ORDER BY run_id"
        ).fetchall()


def test_schedules_fire_in_the_serving_process_and_drain_reconcile_and_snapshot_for_real(
    services: Services, fast_schedules: Path, tmp_path: Path
) -> None:
    seed_alerts(services.db, 150)
    snapshots = tmp_path / "snapshots"
    with fast_schedules.open("a", encoding="utf-8") as schedules:
        schedules.write(
            f'\n[[schedule]]\nname = "snap"\njob = "snapshot"\nevery = 1\nout = "{snapshots}"\n'
        )
    scheduler = InProcessScheduler(services, load_schedules(fast_schedules))

    scheduler.start()
    try:
        _wait_for(lambda: _events_applied(services.db) == 150, 30, "the scheduled drain")
        _wait_for(lambda: len(_reconcile_runs(services.db)) >= 1, 30, "the scheduled reconcile")
        _wait_for(lambda: any(snapshots.glob("manifest-*.json")), 30, "the scheduled snapshot")
    finally:
        scheduler.stop()

    days_compared, _, days_differing, repair = _reconcile_runs(services.db)[-1]
    assert days_compared > 30 and days_differing == 0 and repair is True
    assert clickhouse_aggregates(services.store) == postgres_aggregates(services.db)
    manifest = json.loads(max(snapshots.glob("manifest-*.json")).read_text(encoding="utf-8"))
    assert manifest["files"]["alerts"]["rows"] == 150


@pytest.fixture
def stream() -> Iterator[str]:
    name = f"msd-test-{uuid.uuid4().hex[:12]}"
    yield name
    connection = redis.Redis.from_url(REDIS_URL)
    results = connection.scan_iter(match=f"{result_prefix(name)}:*")
    connection.delete(name, f"autoclaim:{name}:{name}", *results)
    connection.close()


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def test_schedules_reach_a_worker_through_redis_which_drains_and_reconciles(
    db: Database,
    store: ClickHouseStore,
    clickhouse_http,
    pg_server_url: str,
    pg_url: str,
    fast_schedules: Path,
    stream: str,
    processes: list[subprocess.Popen],
    tmp_path: Path,
) -> None:
    seed_alerts(db, 120)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSD_")}
    env |= {
        "MSD_DATABASE_URL": url_for_subprocess(pg_server_url, pg_url),
        "MSD_CLICKHOUSE_URL": clickhouse_http.url,
        "MSD_CLICKHOUSE_DATABASE": store.database,
        "MSD_REDIS_URL": REDIS_URL,
        "MSD_SCHEDULE_FILE": str(fast_schedules),
        "MSD_DATA_DIR": str(tmp_path / "data"),
        "PYTHONPATH": str(REPO),
    }
    for command in ("worker", "scheduler"):
        log = open(tmp_path / f"{command}.log", "w")
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "msd.cli", command, "--queue", stream],
                env=env,
                stdout=log,
                stderr=log,
            )
        )

    try:
        _wait_for(lambda: _events_applied(db) == 120, 60, "the drain sent to the worker")
        _wait_for(lambda: len(_reconcile_runs(db)) >= 1, 60, "the reconcile sent to the worker")
    except AssertionError:
        for name in ("worker", "scheduler"):
            print(name, (tmp_path / f"{name}.log").read_text()[-3000:])
        raise

    assert _reconcile_runs(db)[-1][2] == 0
    assert clickhouse_aggregates(store) == postgres_aggregates(db)
    assert "msd.job.reconcile" in (tmp_path / "scheduler.log").read_text()


CHECK_ONLY = """
[[schedule]]
name = "check"
job = "reconcile"
every = 1
repair = false
"""


def test_the_scheduled_check_finds_a_planted_gap_and_the_log_and_metrics_show_it(
    services: Services, client, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seed_alerts(services.db, 60)
    services.replicator.drain()
    store = services.store
    # A stray cancelling row takes one alert out of every table and view, as a lost part would.
    store.command(
        f"INSERT INTO {store.database}.alert_changes SELECT * REPLACE (-1 AS sign) FROM"
        f" (SELECT * FROM {store.database}.alert_changes WHERE alert_id = 'seed-4' AND sign = 1)"
    )
    path = tmp_path / "check.toml"
    path.write_text(CHECK_ONLY, encoding="utf-8")
    scheduler = InProcessScheduler(services, load_schedules(path))
    caplog.set_level(logging.WARNING, logger="jobs")

    scheduler.start()
    try:
        _wait_for(lambda: len(_reconcile_runs(services.db)) >= 1, 30, "the scheduled reconcile")
    finally:
        scheduler.stop()

    days_compared, days_found, days_differing, repair = _reconcile_runs(services.db)[0]
    assert days_found == days_differing == 1 and repair is False
    logged = [r.getMessage() for r in caplog.records]
    assert any(" differs: PostgreSQL " in line and "ClickHouse" in line for line in logged)
    assert any(line.startswith("reconcile: 1 days differed, 1 still differ") for line in logged)
    metrics = client.get("/metrics").text
    assert "msd_reconcile_days_differing 1" in metrics
    assert "msd_reconcile_alerts_difference 1" in metrics

"""Embedded mode across processes, as a user runs it: ``msd`` commands in separate terminals.

These start real ``msd`` processes on a private data folder: one embedded PostgreSQL shared by
all of them, and one embedded ClickHouse folder that only one process may open at a time.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Iterator

import pytest

from tests.pg_folders import postgres_data_folder

CFPB = "cfpb_consumer_complaints/cfpb_complaints_fullschema_sample.csv"
VIOLATION_TRACKER = "violation_tracker_federal_penalties/violation_tracker_federal_penalties.csv"
ALL_TIME = "since=2000-01-01&until=2026-12-31"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def data_dir() -> Iterator[Path]:
    with postgres_data_folder("msd-processes-") as folder:
        yield folder / "data"


@pytest.fixture
def env(tmp_path: Path, data_dir: Path) -> Iterator[dict[str, str]]:
    variables = {k: v for k, v in os.environ.items() if not k.startswith("MSD_")}
    variables |= {
        "MSD_DATA_DIR": str(data_dir),
        "MSD_PORT": str(_free_port()),
        "MSD_REPLICATION_INTERVAL": "0.1",
        "MSD_TEST_CWD": str(tmp_path),
        # These tests read figures over loopback; credentials are tested in tests/api.
        "MSD_ANONYMOUS_ROLE": "viewer",
    }
    yield variables
    # Forced: a process a test killed may still show as connected for a moment, and the
    # PostgreSQL this test started must not outlive it.
    subprocess.run(
        [sys.executable, "-m", "msd.cli", "stop", "--force"],
        env=variables,
        timeout=60,
        capture_output=True,
    )


def msd(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "msd.cli", *args],
        env=env,
        timeout=timeout,
        capture_output=True,
        text=True,
        cwd=env["MSD_TEST_CWD"],
    )


def start(env: dict[str, str], *args: str) -> subprocess.Popen:
    """A long-running ``msd`` command, as a user leaves one running in a terminal.

    Its output goes to ``<command>.log`` in the test's folder, for reading when a test fails.
    """
    log = open(Path(env["MSD_TEST_CWD"]) / f"{args[0]}.log", "a", encoding="utf-8")
    return subprocess.Popen(
        [sys.executable, "-m", "msd.cli", *args],
        env=env,
        cwd=env["MSD_TEST_CWD"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def get_json(env: dict[str, str], path: str) -> object:
    url = f"http://127.0.0.1:{env['MSD_PORT']}{path}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def wait_for(check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the time limit")
        time.sleep(0.2)


@contextmanager
def serving(env: dict[str, str], *args: str) -> Iterator[subprocess.Popen]:
    """A running ``msd serve`` or ``msd demo`` that answers /health; Ctrl-C'd at the end."""
    process = start(env, *args)
    try:
        try:
            wait_for(lambda: process.poll() is not None or get_json(env, "/health"))
        finally:
            if process.poll() is not None:
                log = Path(env["MSD_TEST_CWD"], f"{args[0]}.log").read_text(encoding="utf-8")
                pytest.fail(f"msd {args[0]} exited with {process.returncode}:\n{log[-3000:]}")
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def server(env: dict[str, str]) -> Iterator[subprocess.Popen]:
    with serving(env, "serve") as process:
        yield process


def test_ingest_in_a_second_terminal_lands_in_the_running_service(
    env: dict[str, str], server: subprocess.Popen, shared_data: Path
) -> None:
    result = msd(env, "ingest", str(shared_data / CFPB))

    assert result.returncode == 0, result.stderr
    assert "read 9,690" in result.stdout and "inserted 9,690" in result.stdout
    assert f"process {server.pid} (msd serve)" in result.stdout
    stats = wait_for(
        lambda: (
            (s := get_json(env, f"/api/alerts/statistics/?{ALL_TIME}")) and s["total"] == 9690 and s
        )
    )
    assert stats["total"] == 9690


def test_ingest_before_any_serve_replicates_by_itself(
    env: dict[str, str], shared_data: Path
) -> None:
    ingested = msd(env, "ingest", str(shared_data / VIOLATION_TRACKER))
    process = start(env, "serve")
    try:
        stats = wait_for(lambda: get_json(env, f"/api/alerts/statistics/?{ALL_TIME}"))
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)

    assert ingested.returncode == 3, "3 rows have invalid dates, so the exit says rejects"
    assert "replicated" in ingested.stdout
    assert stats["total"] == 26_384 - 3


def test_second_process_is_told_who_holds_the_clickhouse_folder(
    env: dict[str, str], server: subprocess.Popen
) -> None:
    result = msd(env, "replicate", "--once")

    assert result.returncode == 2
    assert f"process {server.pid}" in result.stderr and "serve" in result.stderr
    assert "Traceback" not in result.stderr


def test_replicator_killed_repeatedly_loses_and_doubles_nothing(
    env: dict[str, str], shared_data: Path
) -> None:
    from tests.pg_truth import sql_statistics, sql_top_companies
    from workflow.db import Database
    from workflow.embedded import embedded_postgres_url

    small_batches = env | {"MSD_REPLICATION_BATCH": "700"}
    replicator = start(small_batches, "replicate")
    wait_for(lambda: Path(env["MSD_DATA_DIR"], "clickhouse.lock").exists())
    assert msd(env, "ingest", str(shared_data / VIOLATION_TRACKER)).returncode == 3

    kills = 0
    for pause in (0.4, 0.9, 0.6, 1.3):
        time.sleep(pause)
        replicator.send_signal(signal.SIGKILL)
        replicator.wait(timeout=30)
        kills += 1
        replicator = start(small_batches, "replicate")
    replicator.send_signal(signal.SIGKILL)
    replicator.wait(timeout=30)
    assert msd(env, "replicate", "--once").returncode == 0

    server = start(env, "serve")
    database = Database(embedded_postgres_url(Path(env["MSD_DATA_DIR"])))
    try:
        health = wait_for(lambda: get_json(env, "/health"))
        stats = get_json(env, f"/api/alerts/statistics/?{ALL_TIME}")
        top = get_json(env, f"/api/alerts/top_companies/?{ALL_TIME}")
        with database.reading() as conn:
            events = conn.execute("SELECT count(*) FROM alert_events").fetchone()[0]
            conn.rollback()
        first, last = date(2000, 1, 1), date(2026, 12, 31)
        assert kills == 4
        assert health["replicated_events"] == events == 26_381
        assert stats == sql_statistics(database, first, last, "UTC")
        assert top == sql_top_companies(database, first, last, "UTC")
    finally:
        database.close()
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


@pytest.mark.parametrize("command", [("serve",), ("demo", "--alerts", "50")])
def test_stop_refuses_while_a_service_uses_postgres_naming_it_and_force_stops_it(
    env: dict[str, str], command: tuple[str, ...]
) -> None:
    postmaster = Path(env["MSD_DATA_DIR"], "postgres", "postmaster.pid")
    with serving(env, *command) as process:
        refused = msd(env, "stop")
        still_serving = get_json(env, "/health")
        forced = msd(env, "stop", "--force")

        assert refused.returncode == 2
        assert f"process {process.pid} (msd {command[0]})" in refused.stderr
        assert "msd stop --force" in refused.stderr and "Traceback" not in refused.stderr
        assert still_serving["status"] == "ok"
        assert forced.returncode == 0, forced.stderr
        assert "stopped the embedded PostgreSQL" in forced.stdout
        assert not postmaster.exists()


def test_stop_without_users_stops_postgres(env: dict[str, str]) -> None:
    assert msd(env, "migrate").returncode == 0

    stopped = msd(env, "stop")
    again = msd(env, "stop")

    assert stopped.returncode == 0 and "stopped the embedded PostgreSQL" in stopped.stdout
    assert again.returncode == 0 and "was not running" in again.stdout

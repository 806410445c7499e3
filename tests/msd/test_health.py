"""`python -m msd.health ROLE`, the containers' health checks, against real services."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from msd.health import Unhealthy, check
from msd.settings import Settings, load_settings
from olap.replicator import Replicator
from olap.store import ServerStore
from tests.clickhouse_http import ClickHouseHTTPStandIn
from tests.pg_schemas import fresh_schema_url
from workflow.db import Database

REPO = Path(__file__).resolve().parents[2]
CLOSED_PORT = 1  # nothing listens there


@pytest.fixture
def server_settings(
    pg_server_url: str, clickhouse_http: ClickHouseHTTPStandIn
) -> Iterator[Settings]:
    with fresh_schema_url(pg_server_url) as url:
        yield load_settings(
            environ={
                "MSD_DATABASE_URL": url,
                "MSD_CLICKHOUSE_URL": clickhouse_http.url,
                "MSD_CLICKHOUSE_DATABASE": "msd_health_probe",
                "MSD_REDIS_URL": "redis://127.0.0.1:6379/0",
            }
        )


def test_replicator_is_healthy_only_while_a_replicator_holds_its_database(
    server_settings: Settings,
) -> None:
    with pytest.raises(Unhealthy, match="no replicator holds ClickHouse database"):
        check("replicator", server_settings)

    db = Database(server_settings.database_url, max_size=2)
    store = ServerStore(server_settings.clickhouse_url, server_settings.clickhouse_database)
    store.migrate()
    replicator = Replicator(db, store)
    try:
        assert replicator.acquire(wait=False)
        check("replicator", server_settings)  # raises if the lock is not seen
        replicator.release()
        with pytest.raises(Unhealthy):
            check("replicator", server_settings)
    finally:
        replicator.release()
        store.drop_database()
        store.close()
        db.close()


def test_worker_and_scheduler_need_redis(server_settings: Settings) -> None:
    check("worker", server_settings)
    check("scheduler", server_settings)
    away = load_settings(
        environ={
            "MSD_DATABASE_URL": server_settings.database_url or "",
            "MSD_REDIS_URL": f"redis://127.0.0.1:{CLOSED_PORT}/0",
        }
    )
    with pytest.raises(Unhealthy, match="Redis at redis://127.0.0.1:1/0"):
        check("worker", away)


def test_the_command_exits_1_with_one_line_when_a_store_is_away() -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MSD_")}
    environ |= {
        "MSD_DATABASE_URL": f"postgresql://msd:secret@127.0.0.1:{CLOSED_PORT}/msd",
        "MSD_CLICKHOUSE_URL": f"http://msd:secret@127.0.0.1:{CLOSED_PORT}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "msd.health", "replicator"],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("unhealthy: ClickHouse at http://msd:***@127.0.0.1:1")
    assert "secret" not in done.stderr

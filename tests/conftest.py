"""Shared fixtures: a fresh PostgreSQL schema and a fresh ClickHouse database for each test.

PostgreSQL is the server named by ``MSD_TEST_DATABASE_URL`` when it is set (CI sets it), else an
embedded PostgreSQL started once for the run. ClickHouse is the embedded engine, one data folder
for the whole run (chdb allows one per process), one database per test. A test folder that
overrides ``store_kind`` to "server" gets a ServerStore instead, talking HTTP to a stand-in
server over that same engine (tests/clickhouse_http.py).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from olap.store import ClickHouseStore, EmbeddedStore, ServerStore
from tests.clickhouse_http import ClickHouseHTTPStandIn, serve_clickhouse_http
from workflow.db import Database, apply_migrations

REPO = Path(__file__).resolve().parent.parent


# Seconds before midnight UTC in which no test starts: windows such as "the last 30 days" end
# today, so two requests of one test on either side of midnight would ask about other days.
_BEFORE_MIDNIGHT_SECONDS = 30


@pytest.fixture(autouse=True)
def _not_across_midnight_utc() -> None:
    into_day = time.time() % 86_400
    if into_day > 86_400 - _BEFORE_MIDNIGHT_SECONDS:
        time.sleep(86_400 - into_day + 0.5)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real public records that tests and benchmarks read (never copied here)."""
    folder = Path(os.environ.get("MSD_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not folder.is_dir():
        pytest.fail(f"real data folder {folder} is missing; set MSD_SHARED_DATA to it")
    return folder


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("MSD_TEST_DATABASE_URL")
    if url:
        return url
    from workflow.embedded import embedded_postgres_url

    return embedded_postgres_url(tmp_path_factory.mktemp("embedded"))


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """A URL whose connections see only a fresh, migrated schema of their own."""
    schema = f"msd_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = make_conninfo(pg_server_url, options=f"-csearch_path={schema}")
    apply_migrations(url)
    yield url
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def db(pg_url: str) -> Iterator[Database]:
    database = Database(pg_url, max_size=4)
    yield database
    database.close()


@pytest.fixture(scope="session")
def clickhouse_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The run's one embedded ClickHouse folder, held open until the run ends."""
    folder = tmp_path_factory.mktemp("clickhouse") / "data"
    anchor = EmbeddedStore(folder, "default")
    yield folder
    anchor.close()


@pytest.fixture(scope="session")
def clickhouse_http(clickhouse_folder: Path) -> Iterator[ClickHouseHTTPStandIn]:
    """A ClickHouse HTTP endpoint on loopback, executing in the run's embedded engine."""
    server = serve_clickhouse_http()
    yield server
    server.stop()


@pytest.fixture
def store_kind() -> str:
    """Which store ``store`` is: "embedded" here; test folders that run both override it."""
    return "embedded"


StoreFactory = Callable[[str], ClickHouseStore]


@pytest.fixture
def store_factory(
    request: pytest.FixtureRequest, clickhouse_folder: Path, store_kind: str
) -> Iterator[StoreFactory]:
    """Makes fresh, migrated ClickHouse databases of the test's store kind; drops them after."""
    made: list[ClickHouseStore] = []

    def make(prefix: str) -> ClickHouseStore:
        database = f"{prefix}_{uuid.uuid4().hex[:12]}"
        if store_kind == "server":
            server: ClickHouseHTTPStandIn = request.getfixturevalue("clickhouse_http")
            chstore: ClickHouseStore = ServerStore(server.url, database)
        else:
            chstore = EmbeddedStore(clickhouse_folder, database)
        chstore.migrate()
        made.append(chstore)
        return chstore

    yield make
    for chstore in made:
        chstore.drop_database()
        chstore.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> ClickHouseStore:
    """A fresh ClickHouse database of the test's store kind, schema applied."""
    return store_factory("msd_test")

"""Stores that a test can really stop and start again, and waits for the service to catch up.

- ClickHouse: the HTTP stand-in (tests/clickhouse_http.py) on a port of the test's own; stopped,
  it refuses connections, and a new one on the same port is the server back. ``hang`` leaves a
  socket that accepts connections and never answers, as a hung server does.
- PostgreSQL: an embedded server in the test's own folder, stopped (``pg_ctl stop -m fast``, which
  ends every open session) and started again on the same socket. Never the shared one.
- Redis: a ``redis-server`` of the test's own on a free port, killed and started again.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.clickhouse_http import ClickHouseHTTPStandIn, serve_clickhouse_http
from tests.pg_folders import postgres_data_folder
from workflow.db import Database


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(0.05)


def event_count(db: Database) -> int:
    with db.reading() as conn:
        row = conn.execute("SELECT count(*) FROM alert_events").fetchone()
    assert row is not None
    return int(row[0])


class LogLines(logging.Handler):
    """The messages one logger wrote at WARNING or above while attached."""

    def __init__(self, logger_name: str) -> None:
        super().__init__(logging.WARNING)
        self.logger = logging.getLogger(logger_name)
        self.lines: list[str] = []

    def __enter__(self) -> LogLines:
        self.logger.addHandler(self)
        self._level = self.logger.level
        self.logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *_: object) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self._level)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)


class RestartableClickHouse:
    """A ClickHouse HTTP endpoint on a fixed port that can be stopped, hung and started again."""

    def __init__(self) -> None:
        self._standin: ClickHouseHTTPStandIn | None = serve_clickhouse_http()
        self.port = self._standin.port
        self.url = self._standin.url
        self._hung: socket.socket | None = None

    def stop(self) -> None:
        if self._standin is not None:
            self._standin.stop()
            self._standin = None

    def hang(self) -> None:
        """Stop, then listen without ever accepting: connections open, no answer comes."""
        self.stop()
        hung = socket.socket()
        hung.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        hung.bind(("127.0.0.1", self.port))
        hung.listen(64)
        self._hung = hung

    def start(self) -> None:
        if self._hung is not None:
            self._hung.close()
            self._hung = None
        if self._standin is None:
            self._standin = serve_clickhouse_http(self.port)


@pytest.fixture
def clickhouse_server(clickhouse_folder: Path) -> Iterator[RestartableClickHouse]:
    server = RestartableClickHouse()
    yield server
    server.start()  # running again for the teardown that drops the test's database
    server.stop()


class PrivatePostgres:
    """An embedded PostgreSQL of one test module, in its own folder, on its own socket."""

    def __init__(self, folder: Path) -> None:
        from workflow.embedded import embedded_postgres_url

        self.folder = folder
        self.url = embedded_postgres_url(folder)
        self.pgdata = (folder / "postgres").resolve()
        self.socket_dir = parse_qs(urlsplit(self.url).query)["host"][0]

    def stop(self) -> None:
        """A fast shutdown: PostgreSQL ends every session, as a restart by an operator does."""
        from workflow.embedded import stop_embedded_postgres

        assert stop_embedded_postgres(self.folder), "the private PostgreSQL was not running"

    def start(self) -> None:
        # The embedded-postgres handle of this process still thinks the server runs, so start
        # it the way that handle did: no TCP, the same socket folder, the same log.
        from embedded_postgres._commands import pg_ctl

        user = "embedded_postgres" if os.geteuid() == 0 else None
        pg_ctl(
            [
                "-w",
                "-o",
                '-h ""',
                "-o",
                f"-k {self.socket_dir}",
                "-l",
                str(self.pgdata / "log"),
                "start",
            ],
            pgdata=self.pgdata,
            user=user,
            timeout=30,
        )


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    with postgres_data_folder("msd-fault-postgres-") as folder:
        server = PrivatePostgres(folder)
        try:
            yield server
        finally:
            from workflow.embedded import stop_embedded_postgres

            stop_embedded_postgres(folder)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A redis-server of the test's own, without persistence, that the test may kill."""

    def __init__(self, folder: Path) -> None:
        if shutil.which("redis-server") is None:
            pytest.fail("redis-server is needed for the Redis fault test (Debian: redis-server)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._command = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(folder),
        ]  # fmt: skip
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(self._command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError("the private redis-server did not start")

    def kill(self) -> None:
        assert self._process is not None
        self._process.kill()
        self._process.wait(timeout=10)
        self._process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    if server._process is not None:
        server.kill()

"""A stand-in for a ClickHouse server in tests: ClickHouse's HTTP interface over the run's chdb.

No ClickHouse server can be installed where the tests run, so this endpoint lets the product's
ServerStore (clickhouse-connect) be tested against the real engine: each request is executed in
the embedded chdb session the tests already hold (chdb allows one data folder per process), under
EmbeddedStore's lock. It speaks only what clickhouse-connect sends: the query in the ``query``
parameter and/or the body, ``param_<name>`` bound parameters, settings as URL parameters, inserts
with their data in the body, results in the format the query names, errors as HTTP 500.
"""

from __future__ import annotations

import re
import socket
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from urllib.parse import parse_qsl, urlsplit

import pyarrow as pa

from olap.store import EmbeddedStore

__all__ = ["ClickHouseHTTPStandIn", "Exchange", "serve_clickhouse_http"]

# URL parameters that are part of the HTTP protocol, not ClickHouse settings.
_PROTOCOL_PARAMS = {
    "query",
    "database",
    "default_format",
    "query_id",
    "session_id",
    "session_timeout",
    "session_check",
    "user",
    "password",
    "compress",
    "decompress",
}

# Settings that only shape the HTTP exchange, which this stand-in answers its own way.
_TRANSPORT_SETTINGS = {
    "enable_http_compression",
    "send_progress_in_http_headers",
    "http_headers_progress_interval_ms",
    "wait_end_of_query",
    "http_response_buffer_size",
    "cancel_http_readonly_queries_on_client_close",
    "output_format_arrow_string_as_string",
    "date_time_input_format",
    "client_protocol_version",
}

_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_INSERT = re.compile(
    r"^\s*INSERT\s+INTO\s+(?P<table>[\w.`\"]+)\s*(?:\((?P<columns>[^)]*)\))?\s*"
    r"FORMAT\s+(?P<format>\w+)\s*$",
    re.IGNORECASE | re.DOTALL,
)
_ARROW_INPUT_FORMATS = {"arrow", "arrowstream"}


@dataclass(frozen=True)
class Exchange:
    """One request as the client sent it and the size of the answer, for tests of the wire."""

    params: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int
    answer_bytes: int


class _Recorder:
    """Keeps the exchanges of the requests answered while a test records."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logs: list[list[Exchange]] = []

    def add(self, exchange: Exchange) -> None:
        with self._lock:
            for log in self._logs:
                log.append(exchange)

    @contextmanager
    def recording(self) -> Iterator[list[Exchange]]:
        log: list[Exchange] = []
        with self._lock:
            self._logs.append(log)
        try:
            yield log
        finally:
            with self._lock:
                self._logs.remove(log)


class ClickHouseError(Exception):
    """A failure the client should see as a ClickHouse server error."""


def _run(sql: str, fmt: str, params: dict[str, str], local_table: pa.Table | None = None) -> Any:
    with EmbeddedStore._lock:
        if EmbeddedStore._session is None:
            raise ClickHouseError("the embedded ClickHouse session is closed")
        # chdb's Python() table function finds the table by name among the caller's locals.
        msd_http_block = local_table  # noqa: F841
        return EmbeddedStore._session.query(sql, fmt, params=params)


def _settings_clause(settings: dict[str, str]) -> str:
    if not settings:
        return ""
    parts = [f"{name}={_setting_literal(value)}" for name, value in settings.items()]
    return " SETTINGS " + ", ".join(parts)


def _setting_literal(value: str) -> str:
    if re.fullmatch(r"-?\d+(\.\d+)?", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _split_params(query: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    bound: dict[str, str] = {}
    settings: dict[str, str] = {}
    for name, value in query.items():
        if name.startswith("param_"):
            bound[name[len("param_") :]] = value
        elif name not in _PROTOCOL_PARAMS and name not in _TRANSPORT_SETTINGS:
            settings[name] = value
    return bound, settings


def _qualified(table: str, database: str | None) -> str:
    if "." in table or not database:
        return table
    return f"{database}.{table}"


def _read_arrow(body: bytes, fmt: str) -> pa.Table:
    source = pa.BufferReader(body)
    if fmt.lower() == "arrow":
        try:
            return pa.ipc.open_file(source).read_all()
        except pa.ArrowInvalid:
            source = pa.BufferReader(body)
    return pa.ipc.open_stream(source).read_all()


def _insert(
    match: re.Match[str], body: bytes, database: str | None, settings: dict[str, str]
) -> bytes:
    fmt = match["format"]
    if fmt.lower() not in _ARROW_INPUT_FORMATS:
        raise ClickHouseError(f"the test stand-in takes inserts in Arrow only, not {fmt}")
    table = _read_arrow(body, fmt)
    columns = match["columns"] or ", ".join(f"`{name}`" for name in table.column_names)
    selected = ", ".join(f"`{name}`" for name in table.column_names)
    sql = (
        f"INSERT INTO {_qualified(match['table'], database)} ({columns})"
        f"{_settings_clause(settings)} SELECT {selected} FROM Python(msd_http_block)"
    )
    _run(sql, "CSV", {}, table)
    return b""


def _output_format(sql: str, default: str) -> tuple[str, str]:
    """The query without its FORMAT clause, and the format chdb should answer in."""
    found = _FORMAT.search(sql)
    if found is None:
        return sql.rstrip().rstrip(";"), default
    return sql[: found.start()].rstrip(), found.group(1)


def _select(
    sql: str, query: dict[str, str], bound: dict[str, str], settings: dict[str, str]
) -> bytes:
    # The product qualifies every table with its database, so ``database`` needs no USE here.
    body, fmt = _output_format(sql, query.get("default_format", "TabSeparated"))
    result = _run(body + _settings_clause(settings), fmt, bound)
    return bytes(result.bytes()) if result is not None else b""


def execute(query: dict[str, str], body: bytes) -> bytes:
    """Run one HTTP request's statement and return the response body."""
    bound, settings = _split_params(query)
    text_in_url = query.get("query", "")
    insert = _INSERT.match(text_in_url) if text_in_url else None
    if insert is not None:
        return _insert(insert, body, query.get("database"), settings)
    sql = (text_in_url + ("\n" if text_in_url and body else "") + body.decode()).strip()
    if not sql:
        raise ClickHouseError("Empty query")
    return _select(sql, query, bound, settings)


def _error_text(error: Exception) -> str:
    text = str(error)
    return text if text.startswith("Code: ") else f"Code: 1001. DB::Exception: {text}"


def _error_code(error: Exception) -> str:
    found = re.match(r"Code: (\d+)\.", _error_text(error))
    return found.group(1) if found else "1001"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: pytest shows failures through the client's exceptions."""

    def do_GET(self) -> None:  # noqa: N802
        self._answer()

    def do_POST(self) -> None:  # noqa: N802
        self._answer()

    def _answer(self) -> None:
        parts = urlsplit(self.path)
        if parts.path == "/ping" or (parts.path == "/" and not parts.query and not self._sized()):
            self._reply(200, b"Ok.\n")
            return
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        body = self._body()
        try:
            status, answer, code = 200, execute(query, body), None
        except Exception as error:  # every failure must reach the client as a server error
            status, answer, code = 500, _error_text(error).encode(), _error_code(error)
        # Recorded before answering, so that a test finds it as soon as its call returns.
        recorder: _Recorder = self.server.recorder  # type: ignore[attr-defined]
        recorder.add(Exchange(query, dict(self.headers.items()), body, status, len(answer)))
        self._reply(status, answer, code)

    def _sized(self) -> bool:
        return bool(self.headers.get("Content-Length") or self.headers.get("Transfer-Encoding"))

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else self._chunked()
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        if encoding == "lz4":
            import lz4.frame

            return lz4.frame.decompress(data)
        if encoding in ("gzip", "deflate"):
            import zlib

            return zlib.decompress(data, 47)
        return data

    def _chunked(self) -> bytes:
        if (self.headers.get("Transfer-Encoding") or "").lower() != "chunked":
            return b""
        return b"".join(self._chunks())

    def _chunks(self) -> Iterator[bytes]:
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return
            yield self.rfile.read(size)
            self.rfile.readline()

    def _reply(self, status: int, body: bytes, code: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        if code is not None:
            self.send_header("X-ClickHouse-Exception-Code", code)
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    """Remembers its open connections, so that stopping it drops them as a dead server would."""

    daemon_threads = True

    def __init__(self, port: int) -> None:
        self.connections: set[socket.socket] = set()
        self.connections_guard = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_guard:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_guard:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about clients that left first (one that timed out, or a stop mid-answer)."""

    def drop_connections(self) -> None:
        with self.connections_guard:
            open_now = list(self.connections)
        for connection in open_now:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the client


class ClickHouseHTTPStandIn:
    """The stand-in server, listening on ``port`` of 127.0.0.1 (0: a port the OS chose).

    ``stop`` closes the listening socket and every open connection, so clients see what a
    stopped server gives them: refused connections. A new stand-in on the same port then plays
    the server started again.
    """

    def __init__(self, port: int = 0) -> None:
        self._server = _Server(port)
        self._server.recorder = _Recorder()  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def recording(self) -> Any:
        """``with server.recording() as log:`` collects every exchange answered in the block."""
        return self._server.recorder.recording()  # type: ignore[attr-defined]

    def start(self) -> ClickHouseHTTPStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._server.drop_connections()
        self._thread.join()


def serve_clickhouse_http(port: int = 0) -> ClickHouseHTTPStandIn:
    return ClickHouseHTTPStandIn(port).start()

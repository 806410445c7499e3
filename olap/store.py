"""The analytics store: ClickHouse, embedded through chdb or a server through clickhouse-connect.

Both stores take the same SQL with ClickHouse's own ``{name:Type}`` parameters, so no value is
ever spliced into a query, and both speak Arrow for bulk data in and out.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from abc import ABC, abstractmethod
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

import pyarrow as pa

from msd.process_names import command_line, process_name
from msd.settings import Settings, SettingsError, mask_url

__all__ = [
    "ClickHouseStore",
    "EmbeddedStore",
    "ServerStore",
    "StoreBusyError",
    "StoreUnavailableError",
    "open_store",
]

logger = logging.getLogger(__name__)

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "clickhouse" / "schema.sql"
CLUSTER_SCHEMA_FILE = SCHEMA_FILE.parent / "cluster" / "schema.sql"

# The tables the replicator writes and truncates. On a cluster each name is a Distributed table
# over a per-shard table of the same name plus LOCAL_SUFFIX (clickhouse/cluster/schema.sql).
REPLICATED_TABLES = (
    "alert_changes",
    "stats_hourly",
    "stats_daily",
    "company_hourly",
    "company_daily",
    "company_names",
    "replication_batches",
)
LOCAL_SUFFIX = "_local"
# Views added after the first release, and how to fill one from the change rows already there.
_FILLED_FROM_CHANGES = {
    "stats_daily": "INSERT INTO {db}.stats_daily"
    " SELECT toDate(detected_at, 'UTC') AS day, severity, status, sum(sign) AS alerts,"
    " sum(sign * amount) AS amount, sum(sign * (resolved_at IS NOT NULL)) AS resolved,"
    " sum(sign * resolution_seconds) AS resolution_seconds FROM {db}.alert_changes"
    " GROUP BY day, severity, status",
    "company_daily": "INSERT INTO {db}.company_daily"
    " SELECT toDate(detected_at, 'UTC') AS day, company_key, severity, sum(sign) AS alerts,"
    " sum(sign * amount) AS amount FROM {db}.alert_changes GROUP BY day, company_key, severity",
}


class StoreBusyError(RuntimeError):
    """Another process has the embedded ClickHouse folder open."""

    def __init__(self, message: str, holder: str = "another process") -> None:
        super().__init__(message)
        self.holder = holder


class StoreUnavailableError(RuntimeError):
    """ClickHouse did not answer (refused, timed out, or its handle is closed): retry later.

    Only this error means "the store is down"; a query ClickHouse answered with an error is not
    one, so the API can answer 503 for the first and keep bugs visible for the second.
    """


class ClickHouseStore(ABC):
    """What the replicator and the query layer need of ClickHouse."""

    database: str
    cluster: str | None = None

    @abstractmethod
    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns nothing."""

    @abstractmethod
    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Run a query and return its result as an Arrow table."""

    @abstractmethod
    def insert_arrow(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> None:
        """Insert an Arrow table in one block; a repeated ``dedup_token`` inserts nothing."""

    def close(self) -> None:
        """Release the store."""

    def query_rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict]:
        return self.query_arrow(sql, params).to_pylist()

    def migrate(self) -> None:
        """Create the database, tables and views if they do not exist.

        A view added to the schema after data replicated gets that data too: it is filled once
        from the change rows when it is created. Replication must not run meanwhile (``msd
        migrate`` runs before the other processes start; the embedded store migrates before
        its replicator starts), or a batch landing in between would count twice.
        """
        missing = [table for table in _FILLED_FROM_CHANGES if not self._has_table(table)]
        for statement in schema_statements(self.database, self.cluster):
            self.command(statement)
        if self.cluster is None:
            for table in missing:
                self.command(_FILLED_FROM_CHANGES[table].format(db=self.database))
                logger.info("filled the new view %s.%s from the change rows", self.database, table)

    def _has_table(self, table: str) -> bool:
        rows = self.query_rows(
            "SELECT count() AS n FROM system.tables WHERE database = {db:String}"
            " AND name = {table:String}",
            {"db": self.database, "table": table},
        )
        return bool(rows[0]["n"])

    def truncate(self, table: str) -> None:
        """Empty one of the replicated tables (on a cluster: its table on every shard)."""
        if self.cluster is None:
            self.command(f"TRUNCATE TABLE {self.database}.{table}")
        else:
            self.command(
                f"TRUNCATE TABLE {self.database}.{table}{LOCAL_SUFFIX} ON CLUSTER '{self.cluster}'"
            )

    def drop_database(self) -> None:
        on_cluster = f" ON CLUSTER '{self.cluster}'" if self.cluster else ""
        self.command(f"DROP DATABASE IF EXISTS {self.database}{on_cluster} SYNC")


def schema_statements(database: str, cluster: str | None = None) -> list[str]:
    """The DDL for one node, or for ``cluster`` (sharded, replicated), for ``database``.

    Only ``{db}`` and ``{cluster}`` are filled in here; ``{shard}`` and ``{replica}`` are macros
    each ClickHouse node fills in from its own configuration.
    """
    if cluster is None:
        text = SCHEMA_FILE.read_text(encoding="utf-8")
    else:
        text = CLUSTER_SCHEMA_FILE.read_text(encoding="utf-8").replace("{cluster}", cluster)
    return _statements(text.replace("{db}", database))


def _statements(text: str) -> list[str]:
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return [part.strip() for part in body.split("\n;") if part.strip()]


class _FolderLock:
    """An exclusive lock on the embedded ClickHouse folder that names the process holding it."""

    def __init__(self, folder: Path) -> None:
        self.path = folder.parent / (folder.name + ".lock")
        self._file = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = _describe_holder(handle.read())
            handle.close()
            raise StoreBusyError(
                f"the embedded ClickHouse folder {self.path.with_suffix('')} is open in "
                f"{holder}; only one process may open it. Stop that process, or ask it: a "
                "running `msd serve` or `msd demo` replicates what `msd ingest` writes, draws "
                "charts at /api/charts/, and runs reconcile and snapshots on its schedules "
                "(`msd scheduler --list`).",
                holder,
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "command": command_line()}))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def _describe_holder(text: str) -> str:
    try:
        holder = json.loads(text)
        return process_name(holder["pid"], holder["command"])
    except (ValueError, KeyError, TypeError):
        return "another process"


class EmbeddedStore(ClickHouseStore):
    """The ClickHouse engine in this process, through chdb, on a folder only it may open.

    chdb allows one data folder per process, so the session is shared by every store of the
    process; stores differ by database.
    """

    _session: Any = None
    _session_path: Path | None = None
    _lock = threading.RLock()
    _folder_lock: _FolderLock | None = None
    _users = 0

    def __init__(self, folder: Path, database: str) -> None:
        self.database = database
        folder = folder.resolve()
        with EmbeddedStore._lock:
            cls = EmbeddedStore
            if cls._session is None:
                folder_lock = _FolderLock(folder)
                folder_lock.acquire()
                from chdb import session

                cls._session = session.Session(str(folder))
                cls._session_path = folder
                cls._folder_lock = folder_lock
            elif cls._session_path != folder:
                raise StoreBusyError(
                    f"this process already has the embedded ClickHouse folder "
                    f"{cls._session_path} open and cannot open {folder} too"
                )
            cls._users += 1
        self._closed = False

    def _query(self, sql: str, fmt: str, params: Mapping[str, Any] | None) -> Any:
        with EmbeddedStore._lock:
            if EmbeddedStore._session is None:
                raise StoreUnavailableError("the embedded ClickHouse session is closed")
            return EmbeddedStore._session.query(sql, fmt, params=_text_params(params))

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._query(sql, "CSV", params)

    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        return self._query(sql, "ArrowTable", params)

    def insert_arrow(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> None:
        settings = _insert_settings(dedup_token, len(data))
        columns = ", ".join(f"`{name}`" for name in data.column_names)
        sql = (
            f"INSERT INTO {self.database}.{table} ({columns}) SETTINGS {settings} "
            f"SELECT {columns} FROM Python(msd_insert_block)"
        )
        with EmbeddedStore._lock:
            if EmbeddedStore._session is None:
                raise StoreUnavailableError("the embedded ClickHouse session is closed")
            # chdb's Python() table function finds the table by name among the caller's locals.
            msd_insert_block = data  # noqa: F841
            EmbeddedStore._session.query(sql, "CSV")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with EmbeddedStore._lock:
            cls = EmbeddedStore
            cls._users -= 1
            if cls._users == 0 and cls._session is not None:
                cls._session.close()
                cls._session = None
                cls._session_path = None
                if cls._folder_lock is not None:
                    cls._folder_lock.release()
                    cls._folder_lock = None


def _text_params(params: Mapping[str, Any] | None) -> dict[str, str]:
    """Parameters in ClickHouse's text form, as the HTTP interface takes them (chdb uses str())."""
    return {name: _text_value(value, nested=False) for name, value in (params or {}).items()}


def _text_value(value: Any, *, nested: bool) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_text_value(item, nested=True) for item in value) + "]"
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
        text = value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    elif isinstance(value, bool):
        return "1" if value else "0"
    elif value is None:
        return "NULL" if nested else "\\N"
    else:
        text = str(value)
    if isinstance(value, (int, float, Decimal)):
        return text
    escaped = text.translate(_ESCAPES)
    return escaped if not nested else "'" + escaped.replace("'", "\\'") + "'"


_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"})


# How every insert of a batch fills the views. Each view's part of the block is computed in a
# thread of its own rather than one view after another; and the block is stored as it comes,
# without first merging its rows the way the table's engine will in the background (cancelling
# a change's rows, summing a view's): every query already sums signs and counts over parts that
# are not merged yet. Together they take 50,000 changes into the change table and its five views
# in about 40% of the time the defaults take.
_VIEW_INSERT_SETTINGS = {"parallel_view_processing": 1, "optimize_on_insert": 0}


def _insert_settings(dedup_token: str | None, rows: int) -> str:
    # One block per batch: the token then covers the whole batch, and a replay is all or nothing.
    block = max(rows, 1)
    parts = [
        f"max_insert_block_size={block}",
        f"min_insert_block_size_rows={block}",
        "min_insert_block_size_bytes=0",
        "deduplicate_blocks_in_dependent_materialized_views=1",
        *(f"{name}={value}" for name, value in _VIEW_INSERT_SETTINGS.items()),
    ]
    if dedup_token is not None:
        if not all(ch.isalnum() or ch in "-_.:" for ch in dedup_token):
            raise ValueError(f"deduplication token {dedup_token!r} has unsafe characters")
        parts += ["insert_deduplicate=1", f"insert_deduplication_token='{dedup_token}'"]
    return ", ".join(parts)


# Arrow in both directions, compressed inside the Arrow stream: the client compresses inserted
# record batches with LZ4 (``compress="lz4"``) and the server compresses results with this method.
# HTTP-level compression would compress them again for nothing.
_QUERY_SETTINGS = {"output_format_arrow_compression_method": "lz4_frame"}


class ServerStore(ClickHouseStore):
    """A ClickHouse server over HTTP through clickhouse-connect.

    Queries bind their ``{name:Type}`` parameters on the server (sent as ``param_<name>``, never
    spliced into the SQL). With ``cluster`` set the schema is the sharded, replicated one and the
    replicator writes through the Distributed tables.

    Every call is bounded by ``timeout`` seconds (connecting by at most 5 of them), so a server
    that hangs fails the call instead of holding it; a server that refuses, resets or times out
    raises ``StoreUnavailableError``.
    """

    def __init__(
        self, url: str, database: str, *, cluster: str | None = None, timeout: float = 30.0
    ) -> None:
        import clickhouse_connect
        from clickhouse_connect.driver.exceptions import OperationalError

        # The client logs each failed connection attempt before raising; the error says it all,
        # and during an outage that would be one log line per query.
        logging.getLogger("urllib3").setLevel(logging.ERROR)
        logging.getLogger("clickhouse_connect").setLevel(logging.ERROR)
        self._unavailable = OperationalError
        parts = urlsplit(url)
        self.database = database
        self.cluster = cluster
        self.timeout = timeout
        secure = parts.scheme == "https"
        try:
            self._client = clickhouse_connect.get_client(
                host=parts.hostname or "localhost",
                port=parts.port or (8443 if secure else 8123),
                username=parts.username or "default",
                password=parts.password or "",
                secure=secure,
                compress="lz4",
                connect_timeout=min(timeout, 5.0),
                send_receive_timeout=timeout,
                autogenerate_session_id=False,
            )
        except OperationalError as error:
            raise SettingsError(
                f"cannot reach ClickHouse at MSD_CLICKHOUSE_URL={mask_url(url)}: {error}"
            ) from None

    def _call(self, run: Any) -> Any:
        try:
            return run()
        except self._unavailable as error:
            raise StoreUnavailableError(
                f"the ClickHouse server did not answer ({_cause(error)}; each call may take "
                f"{self.timeout:g}s at most)"
            ) from error

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._call(lambda: self._client.command(sql, parameters=dict(params or {})))

    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        return self._call(
            lambda: self._client.query_arrow(
                sql, parameters=dict(params or {}), settings=_QUERY_SETTINGS, use_strings=True
            )
        )

    def insert_arrow(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> None:
        settings = server_insert_settings(len(data), dedup_token, cluster=self.cluster is not None)
        self._call(
            lambda: self._client.insert_arrow(
                table, data, database=self.database, settings=settings
            )
        )

    def close(self) -> None:
        self._client.close()


def server_insert_settings(
    rows: int, dedup_token: str | None, *, cluster: bool = False
) -> dict[str, Any]:
    """The settings of a replication insert into a ClickHouse server.

    ``async_insert`` is off although servers now default to it: a batch is already one large
    block, so buffering it with others gains nothing, and the replicator needs what only a
    synchronous insert promises: when the call returns, the batch is in the table and in every
    view, deduplicated as a whole by its token (async inserts may be flushed with other inserts'
    rows, and on older servers skip deduplication unless async_insert_deduplicate is set).
    On a cluster, ``distributed_foreground_insert`` makes the Distributed table hand each shard its
    rows before returning (otherwise they wait in a local queue, and the watermark would run
    ahead of what the shards hold), and ``insert_quorum='auto'`` waits for a majority of each
    shard's replicas, so a query on any replica that took part sees what the watermark promises.
    """
    block = max(rows, 1)
    settings: dict[str, Any] = {
        "async_insert": 0,
        "max_insert_block_size": block,
        "min_insert_block_size_rows": block,
        "min_insert_block_size_bytes": 0,
        "deduplicate_blocks_in_dependent_materialized_views": 1,
        **_VIEW_INSERT_SETTINGS,
    }
    if dedup_token is not None:
        settings |= {"insert_deduplicate": 1, "insert_deduplication_token": dedup_token}
    if cluster:
        settings |= {"distributed_foreground_insert": 1, "insert_quorum": "auto"}
    return settings


def _cause(error: BaseException) -> str:
    """The innermost reason (refused, timed out), not the client's wrapper text."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:300]


def open_store(settings: Settings, database: str | None = None) -> ClickHouseStore:
    """The store the settings name, its schema applied."""
    database = database or settings.clickhouse_database
    if settings.clickhouse_url is None:
        store: ClickHouseStore = EmbeddedStore(settings.data_dir / "clickhouse", database)
    else:
        store = ServerStore(
            settings.clickhouse_url,
            database,
            cluster=settings.clickhouse_cluster,
            timeout=settings.clickhouse_timeout_seconds,
        )
    store.migrate()
    return store

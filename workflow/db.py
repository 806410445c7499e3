"""Connections to the workflow store, PostgreSQL: the pool, migrations and attributed writes."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from importlib import resources
from typing import Iterator

import psycopg
from psycopg_pool import ConnectionPool
from psycopg_pool.base import AttemptWithBackoff

from msd.settings import Settings, SettingsError, mask_url

__all__ = [
    "Database",
    "apply_migrations",
    "connect",
    "database_url",
    "open_pool",
    "attributed",
]

logger = logging.getLogger(__name__)

# Serialises migrations between processes that start at the same time.
_MIGRATION_LOCK = 7_201_000_001
# Most seconds between the pool's attempts to reconnect while PostgreSQL is away.
MAX_RECONNECT_DELAY = 1.0


def database_url(settings: Settings) -> str:
    """The PostgreSQL URL to use: the configured server, or the embedded one (started if needed)."""
    if settings.database_url is not None:
        return settings.database_url

    from workflow.embedded import embedded_postgres_url

    return embedded_postgres_url(settings.data_dir)


def connect(url: str, **kwargs: object) -> psycopg.Connection:
    """One connection, failing with a clear message naming the setting when the server is away."""
    try:
        return psycopg.connect(url, connect_timeout=10, **kwargs)  # type: ignore[arg-type]
    except psycopg.OperationalError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SettingsError(
            f"cannot reach PostgreSQL at MSD_DATABASE_URL={mask_url(url)}: {reason}"
        ) from None


class _CappedBackoff(AttemptWithBackoff):
    def update_delay(self, now: float) -> None:
        super().update_delay(now)
        self.delay = min(self.delay, MAX_RECONNECT_DELAY)


class _Pool(ConnectionPool):
    """psycopg's pool, reconnecting at least every second while PostgreSQL is away.

    Its own backoff doubles without bound (1, 2, 4, 8 s...), so after an outage of a minute the
    first requests would time out long after PostgreSQL was back. ``_add_connection`` is the
    pool's (psycopg-pool 3.3, pinned) one place where a reconnection attempt starts.
    """

    def _add_connection(self, attempt: AttemptWithBackoff | None, growing: bool = False) -> None:
        if attempt is None:
            attempt = _CappedBackoff(timeout=self.reconnect_timeout)
        super()._add_connection(attempt, growing)


class Database:
    """A connection pool to one PostgreSQL database, schema migrated.

    Surviving a PostgreSQL restart: each connection is checked as it leaves the pool, so one
    the restart broke is replaced instead of handed out, and the pool reconnects by itself. A
    caller waits at most ``timeout`` seconds for a connection, then gets ``PoolTimeout`` (a
    ``psycopg.OperationalError``, as is a connection lost mid-query), which the API answers 503.
    """

    def __init__(
        self, url: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 5.0
    ) -> None:
        self.url = url
        connect(url).close()
        # The pool logs every failed reconnection; during an outage /health, the replicator's
        # one line and each refused request's 503 say it already.
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
        self.pool = _Pool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": False},
            open=True,
            check=ConnectionPool.check_connection,
            timeout=timeout,
            name="workflow",
        )

    def close(self) -> None:
        self.pool.close()

    @contextmanager
    def transaction(
        self, *, actor: str = "system", source: str = "api", note: str | None = None
    ) -> Iterator[psycopg.Connection]:
        """A connection in a transaction whose changes are attributed to ``actor``, ``source``."""
        with self.pool.connection() as conn:
            with conn.transaction():
                attributed(conn, actor=actor, source=source, note=note)
                yield conn

    @contextmanager
    def reading(self) -> Iterator[psycopg.Connection]:
        """A connection for reads; whatever transaction the reads opened ends with the block."""
        with self.pool.connection() as conn:
            try:
                yield conn
            finally:
                conn.rollback()


def attributed(
    conn: psycopg.Connection, *, actor: str, source: str, note: str | None = None
) -> None:
    """Name who is changing alerts, from where and why, for the rest of this transaction."""
    conn.execute(
        "SELECT set_config('msd.actor', %s, true), set_config('msd.source', %s, true),"
        " set_config('msd.note', %s, true)",
        (actor, source, note or ""),
    )


def open_pool(settings: Settings, *, max_size: int = 10) -> Database:
    url = database_url(settings)
    apply_migrations(url)
    return Database(url, max_size=max_size, timeout=settings.database_timeout_seconds)


def _migration_files() -> list[tuple[str, str]]:
    folder = resources.files("workflow") / "migrations"
    files = sorted(p for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(p.name.removesuffix(".sql"), p.read_text(encoding="utf-8")) for p in files]


def apply_migrations(url: str) -> list[str]:
    """Apply every migration not yet recorded, in order; return the names applied now."""
    applied_now: list[str] = []
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
            for name, sql in _migration_files():
                if name in done:
                    continue
                with conn.transaction():
                    conn.execute(sql)  # type: ignore[arg-type]
                    conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (name,))
                logger.info("applied PostgreSQL migration %s", name)
                applied_now.append(name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
    return applied_now

"""Health probes for the processes that serve no HTTP, as container health checks use them:

    python -m msd.health replicator|worker|scheduler

Each reads the same ``MSD_*`` settings as the process it checks, exits 0 when what that process
needs answers and its work is taken care of, and otherwise exits 1 with one line saying why.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

from msd.settings import Settings, SettingsError, load_settings, mask_url

__all__ = ["check", "main"]

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 3


class Unhealthy(RuntimeError):
    """What is wrong, in one line."""


def _postgres(settings: Settings) -> None:
    _postgres_query(settings, "SELECT 1", ())


def _postgres_query(settings: Settings, sql: str, params: tuple) -> object:
    import psycopg

    if settings.database_url is None:
        raise Unhealthy("MSD_DATABASE_URL is unset: health probes are for server mode")
    try:
        with psycopg.connect(settings.database_url, connect_timeout=TIMEOUT_SECONDS) as conn:
            row = conn.execute(sql, params).fetchone()
    except psycopg.Error as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise Unhealthy(f"PostgreSQL at {mask_url(settings.database_url)}: {reason}") from None
    return row[0] if row else None


def _clickhouse(settings: Settings) -> None:
    from urllib.parse import urlsplit

    import clickhouse_connect

    if settings.clickhouse_url is None:
        raise Unhealthy("MSD_CLICKHOUSE_URL is unset: health probes are for server mode")
    # The client logs each failed attempt before raising; the one line below says it all.
    for noisy in ("clickhouse_connect", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    parts = urlsplit(settings.clickhouse_url)
    secure = parts.scheme == "https"
    try:
        client = clickhouse_connect.get_client(
            host=parts.hostname or "localhost",
            port=parts.port or (8443 if secure else 8123),
            username=parts.username or "default",
            password=parts.password or "",
            secure=secure,
            connect_timeout=TIMEOUT_SECONDS,
            send_receive_timeout=TIMEOUT_SECONDS,
            autogenerate_session_id=False,
        )
        client.command("SELECT 1")
        client.close()
    except Exception as error:  # any failure to answer is the finding, whatever its type
        line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise Unhealthy(f"ClickHouse at {mask_url(settings.clickhouse_url)}: {line}") from None


def _redis(settings: Settings) -> object:
    import redis

    if settings.redis_url is None:
        raise Unhealthy("MSD_REDIS_URL is unset: workers and the scheduler need Redis")
    client = redis.Redis.from_url(
        settings.redis_url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
    )
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        client.close()
        raise Unhealthy(f"Redis at {mask_url(settings.redis_url)}: {error}") from None
    return client


# The advisory lock Replicator.acquire takes: one bigint key, which pg_locks shows split into
# classid (high 32 bits) and objid (low 32 bits) with objsubid 1.
_REPLICATOR_LOCK_HELD = (
    "WITH k AS (SELECT hashtext(%s)::bigint AS key)"
    " SELECT EXISTS (SELECT 1 FROM pg_locks, k WHERE locktype = 'advisory' AND granted"
    " AND objsubid = 1 AND database = (SELECT oid FROM pg_database"
    " WHERE datname = current_database())"
    " AND classid::bigint = ((key >> 32) & 4294967295) AND objid::bigint = (key & 4294967295))"
)


def check_replicator(settings: Settings) -> None:
    """Both stores answer and some replicator holds the target (this one, or the active one)."""
    _clickhouse(settings)
    held = _postgres_query(
        settings, _REPLICATOR_LOCK_HELD, ("msd-replicator:" + settings.clickhouse_database,)
    )
    if not held:
        raise Unhealthy(
            f"no replicator holds ClickHouse database {settings.clickhouse_database}: "
            "replication is not running"
        )


def check_worker(settings: Settings) -> None:
    """PostgreSQL (task state) and Redis (the task stream) answer."""
    _postgres(settings)
    _redis(settings).close()


def check_scheduler(settings: Settings) -> None:
    """Redis, where scheduled tasks are queued, answers."""
    _redis(settings).close()


CHECKS: dict[str, Callable[[Settings], None]] = {
    "replicator": check_replicator,
    "worker": check_worker,
    "scheduler": check_scheduler,
}


def check(role: str, settings: Settings) -> None:
    """Raise ``Unhealthy`` naming what is wrong for ``role``; return when all is well."""
    CHECKS[role](settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m msd.health", description=__doc__)
    parser.add_argument("role", choices=sorted(CHECKS))
    args = parser.parse_args(argv)
    try:
        check(args.role, load_settings())
    except (Unhealthy, SettingsError) as error:
        print(f"unhealthy: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

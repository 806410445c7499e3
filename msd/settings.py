"""The one settings object, read from ``MSD_*`` environment variables and CLI flags.

Every setting is declared once in ``SETTINGS`` with its default and help text; ``--help``, the
README's settings table and the validation messages are all built from that table.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["SETTINGS", "Settings", "SettingsError", "load_settings"]

ENV_PREFIX = "MSD_"


class SettingsError(ValueError):
    """A setting has a value the service cannot use; the message names the setting."""


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "database_url",
        None,
        "PostgreSQL server URL (postgresql://user@host:port/db). Unset: an embedded PostgreSQL "
        "in the data folder.",
    ),
    Setting(
        "clickhouse_url",
        None,
        "ClickHouse server URL (http://user:password@host:8123/database). Unset: the embedded "
        "ClickHouse engine (chdb) in the data folder.",
    ),
    Setting(
        "redis_url",
        None,
        "Redis URL (redis://host:6379/0) for cache and task broker. Unset: in-process.",
    ),
    Setting("data_dir", "./.msd", "Folder for embedded PostgreSQL and ClickHouse data."),
    Setting("host", "127.0.0.1", "Address the API binds to."),
    Setting("port", "8000", "Port the API listens on."),
    Setting("timezone", "UTC", "Default IANA zone for day boundaries when a request names none."),
    Setting("clickhouse_database", "msd", "ClickHouse database holding the replicated tables."),
    Setting("replication_batch", "50000", "Most events the replicator moves in one batch."),
    Setting("replication_interval", "0.5", "Seconds the replicator waits between idle polls."),
    Setting("log_level", "INFO", "Log level: DEBUG, INFO, WARNING or ERROR."),
    Setting(
        "anonymous_role",
        None,
        "Role (viewer, analyst or admin) granted to requests without credentials, for trusted "
        "deployments whose old clients send none. Unset: every request needs credentials.",
    ),
    Setting(
        "anonymous_on_network",
        "no",
        "Set to yes to confirm MSD_ANONYMOUS_ROLE on a non-loopback MSD_HOST; otherwise the "
        "service refuses that combination.",
    ),
    Setting("session_hours", "12", "Hours a dashboard session lasts after its last use."),
    Setting(
        "rate_limit",
        "3000/minute",
        "Requests allowed per token or signed-in user (N/second, N/minute, N/hour), or off.",
    ),
    Setting(
        "schedule_file",
        None,
        "TOML file of the scheduled jobs (msd scheduler). Unset: the built-in schedules "
        "(jobs/default_schedules.toml).",
    ),
    Setting(
        "snapshot_dir",
        None,
        "Folder of the Parquet snapshots (msd snapshot). Unset: snapshots/ in the data folder.",
    ),
    Setting(
        "database_replica_url",
        None,
        "PostgreSQL read replica URL for the alert list and its count (they may lag the primary "
        "by the replica's delay). Unset: every read goes to MSD_DATABASE_URL.",
    ),
    Setting(
        "clickhouse_cluster",
        None,
        "ClickHouse cluster name (remote_servers) for the sharded, replicated schema in "
        "clickhouse/cluster/. Unset: one ClickHouse node.",
    ),
    Setting(
        "clickhouse_timeout_seconds",
        "30",
        "Most seconds one ClickHouse server call may take; past it the call counts as ClickHouse "
        "being down (aggregates answer 503 or a stale copy).",
    ),
    Setting(
        "database_timeout_seconds",
        "5",
        "Most seconds a request waits for a PostgreSQL connection; past it the API answers 503.",
    ),
    Setting(
        "live_max_clients",
        "100",
        "Most live-update streams (/api/live/) open at once per process; more get 503.",
    ),
    Setting(
        "exact_count_limit",
        "10000",
        "Largest alert-list count counted exactly in PostgreSQL; a filtered set that ClickHouse "
        "counts above it gets ClickHouse's count as of the replication watermark. 0: always "
        "exact.",
    ),
    Setting(
        "batch_max_runs",
        "3",
        "Most times one batch task is started; a task whose runs all ended unfinished (the "
        "process running it died or was killed mid-run) is then marked failed, not run again.",
    ),
    Setting(
        "chart_font_dir",
        None,
        "Folder of extra fonts (.ttf, .otf, .ttc) for PNG charts, for scripts the system's fonts "
        "lack (CJK, emoji). Unset: the system's fonts only.",
    ),
)

_URL_SCHEMES = {
    "database_url": ("postgresql", "postgres"),
    "clickhouse_url": ("http", "https", "clickhouse"),
    "redis_url": ("redis", "rediss", "unix"),
    "database_replica_url": ("postgresql", "postgres"),
}


@dataclass(frozen=True)
class Settings:
    """Validated settings. Build it with ``load_settings``; never mutate it."""

    database_url: str | None = None
    clickhouse_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path("./.msd")
    host: str = "127.0.0.1"
    port: int = 8000
    timezone: str = "UTC"
    clickhouse_database: str = "msd"
    replication_batch: int = 50000
    replication_interval: float = 0.5
    log_level: str = "INFO"
    anonymous_role: str | None = None
    anonymous_on_network: bool = False
    session_hours: float = 12.0
    rate_limit: tuple[int, int] | None = (3000, 60)
    schedule_file: Path | None = None
    snapshot_dir: Path | None = None
    database_replica_url: str | None = None
    clickhouse_cluster: str | None = None
    clickhouse_timeout_seconds: float = 30.0
    database_timeout_seconds: float = 5.0
    live_max_clients: int = 100
    exact_count_limit: int = 10_000
    batch_max_runs: int = 3
    chart_font_dir: Path | None = None

    @property
    def embedded_postgres(self) -> bool:
        return self.database_url is None

    @property
    def embedded_clickhouse(self) -> bool:
        return self.clickhouse_url is None


def load_settings(
    overrides: Mapping[str, str | None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read settings from the environment, then apply CLI overrides, and validate them all."""
    environ = os.environ if environ is None else environ
    raw: dict[str, str | None] = {s.name: s.default for s in SETTINGS}
    for setting in SETTINGS:
        value = environ.get(ENV_PREFIX + setting.name.upper())
        if value is not None and value.strip() != "":
            raw[setting.name] = value.strip()
    for name, value in (overrides or {}).items():
        if value is not None:
            raw[name] = value
    return _validate(raw)


def _validate(raw: dict[str, str | None]) -> Settings:
    for name, schemes in _URL_SCHEMES.items():
        _check_url(name, raw[name], schemes)

    return Settings(
        database_url=raw["database_url"],
        clickhouse_url=raw["clickhouse_url"],
        redis_url=raw["redis_url"],
        data_dir=Path(raw["data_dir"] or "./.msd").expanduser(),
        host=raw["host"] or "127.0.0.1",
        port=_int("port", raw["port"], 1, 65535),
        timezone=_zone("timezone", raw["timezone"]),
        clickhouse_database=_identifier("clickhouse_database", raw["clickhouse_database"]),
        replication_batch=_int("replication_batch", raw["replication_batch"], 1, 1_000_000),
        replication_interval=_float("replication_interval", raw["replication_interval"], 0.01, 60),
        log_level=_choice("log_level", raw["log_level"], ("DEBUG", "INFO", "WARNING", "ERROR")),
        anonymous_role=_anonymous_role(raw),
        anonymous_on_network=_yes_no("anonymous_on_network", raw["anonymous_on_network"]),
        session_hours=_float("session_hours", raw["session_hours"], 0.05, 24 * 90),
        rate_limit=_rate_limit("rate_limit", raw["rate_limit"]),
        schedule_file=_path(raw["schedule_file"]),
        snapshot_dir=_path(raw["snapshot_dir"]),
        database_replica_url=_replica_url(raw["database_replica_url"], raw["database_url"]),
        clickhouse_cluster=_cluster(raw["clickhouse_cluster"], raw["clickhouse_url"]),
        clickhouse_timeout_seconds=_float(
            "clickhouse_timeout_seconds", raw["clickhouse_timeout_seconds"], 0.1, 3600
        ),
        database_timeout_seconds=_float(
            "database_timeout_seconds", raw["database_timeout_seconds"], 0.1, 600
        ),
        live_max_clients=_int("live_max_clients", raw["live_max_clients"], 1, 10_000),
        exact_count_limit=_int("exact_count_limit", raw["exact_count_limit"], 0, 10**12),
        batch_max_runs=_int("batch_max_runs", raw["batch_max_runs"], 1, 100),
        chart_font_dir=_folder("chart_font_dir", raw["chart_font_dir"]),
    )


def _path(value: str | None) -> Path | None:
    return None if value is None else Path(value).expanduser()


def _folder(name: str, value: str | None) -> Path | None:
    folder = _path(value)
    if folder is not None and not folder.is_dir():
        raise SettingsError(f"{_env_name(name)}={value!r} is not a folder")
    return folder


LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def _anonymous_role(raw: dict[str, str | None]) -> str | None:
    role = raw["anonymous_role"]
    if role is None:
        return None
    role = role.lower()
    if role not in ("viewer", "analyst", "admin"):
        raise SettingsError(f"MSD_ANONYMOUS_ROLE={role!r} must be viewer, analyst or admin")
    host = raw["host"] or "127.0.0.1"
    if not is_loopback(host) and not _yes_no("anonymous_on_network", raw["anonymous_on_network"]):
        raise SettingsError(
            f"MSD_ANONYMOUS_ROLE={role} gives anyone who reaches {host} the {role} role without "
            "credentials; bind a loopback MSD_HOST, or set MSD_ANONYMOUS_ON_NETWORK=yes if the "
            "network in front is trusted"
        )
    return role


def _yes_no(name: str, value: str | None) -> bool:
    text = str(value).strip().lower()
    if text in ("yes", "true", "1", "on"):
        return True
    if text in ("no", "false", "0", "off", "none"):
        return False
    raise SettingsError(f"{_env_name(name)}={value!r} must be yes or no")


_PERIODS = {"second": 1, "minute": 60, "hour": 3600}


def _rate_limit(name: str, value: str | None) -> tuple[int, int] | None:
    """'600/minute' as (600, 60); 'off' as None."""
    text = str(value).strip().lower()
    if text in ("off", "none"):
        return None
    match = re.fullmatch(r"(\d{1,9})\s*/\s*(second|minute|hour)", text)
    if not match or int(match.group(1)) == 0:
        raise SettingsError(
            f"{_env_name(name)}={value!r} must be a limit like 600/minute (per second, minute "
            "or hour) or off"
        )
    return int(match.group(1)), _PERIODS[match.group(2)]


def _env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _check_url(name: str, value: str | None, schemes: tuple[str, ...]) -> None:
    if value is None:
        return
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        raise SettingsError(
            f"{_env_name(name)}={_mask(value)!r} is not a valid URL: the scheme must be one of "
            f"{', '.join(schemes)}, as in {schemes[0]}://host/..."
        )
    try:
        parts.port
    except ValueError as error:
        raise SettingsError(f"{_env_name(name)}={_mask(value)!r} has a bad port: {error}") from None
    if not parts.hostname and "host=" not in parts.query and parts.scheme != "unix":
        raise SettingsError(f"{_env_name(name)}={_mask(value)!r} names no host")


def _mask(url: str) -> str:
    """Hide the password of a URL so that error messages and logs never show it."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _int(name: str, value: str | None, low: int, high: int) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise SettingsError(f"{_env_name(name)}={value!r} is not a whole number") from None
    if not low <= number <= high:
        raise SettingsError(f"{_env_name(name)}={number} is outside {low}..{high}")
    return number


def _float(name: str, value: str | None, low: float, high: float) -> float:
    try:
        number = float(str(value))
    except ValueError:
        raise SettingsError(f"{_env_name(name)}={value!r} is not a number") from None
    if not low <= number <= high:
        raise SettingsError(f"{_env_name(name)}={number} is outside {low}..{high}")
    return number


def _zone(name: str, value: str | None) -> str:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            f"{_env_name(name)}={value!r} is not an IANA time zone (e.g. UTC, Europe/Berlin)"
        ) from None
    return str(value)


def _identifier(name: str, value: str | None) -> str:
    if value is None or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", value):
        raise SettingsError(
            f"{_env_name(name)}={value!r} must be a plain identifier (letters, digits, _)"
        )
    return value


def _replica_url(replica: str | None, primary: str | None) -> str | None:
    if replica is not None and primary is None:
        raise SettingsError(
            f"{_env_name('database_replica_url')} is set but {_env_name('database_url')} is not: "
            "a read replica needs the PostgreSQL server it replicates; set both or neither"
        )
    return replica


def _cluster(name: str | None, clickhouse_url: str | None) -> str | None:
    if name is None:
        return None
    if clickhouse_url is None:
        raise SettingsError(
            f"{_env_name('clickhouse_cluster')}={name!r} needs {_env_name('clickhouse_url')}: "
            "the embedded ClickHouse is one node; unset the cluster or name a server"
        )
    return _identifier("clickhouse_cluster", name)


def _choice(name: str, value: str | None, allowed: tuple[str, ...]) -> str:
    upper = str(value).upper()
    if upper not in allowed:
        raise SettingsError(f"{_env_name(name)}={value!r} must be one of {', '.join(allowed)}")
    return upper


def mask_url(url: str | None) -> str:
    """The URL as it may appear in logs: password hidden."""
    return "(embedded)" if url is None else _mask(url)


def setting_names() -> list[str]:
    """Every setting's environment variable name, for documentation checks."""
    return [_env_name(s.name) for s in SETTINGS]


def _field_names() -> set[str]:
    return {f.name for f in fields(Settings)}


assert _field_names() == {s.name for s in SETTINGS}, (
    "Settings and SETTINGS must list the same names"
)

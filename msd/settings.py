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
        "live_max_clients",
        "100",
        "Most live-update streams (/api/live/) open at once per process; more get 503.",
    ),
)

_URL_SCHEMES = {
    "database_url": ("postgresql", "postgres"),
    "clickhouse_url": ("http", "https", "clickhouse"),
    "redis_url": ("redis", "rediss", "unix"),
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
    live_max_clients: int = 100

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
        live_max_clients=_int("live_max_clients", raw["live_max_clients"], 1, 10_000),
    )


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

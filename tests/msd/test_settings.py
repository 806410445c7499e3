"""Settings are validated at start with messages that name the setting, and all are documented."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from msd.settings import SettingsError, load_settings, setting_names

REPO = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")

    missing = [name for name in setting_names() if f"`{name}`" not in readme]

    assert missing == []


def test_defaults_are_embedded_mode() -> None:
    settings = load_settings(environ={})

    assert settings.embedded_postgres and settings.embedded_clickhouse
    assert (settings.host, settings.port, settings.timezone) == ("127.0.0.1", 8000, "UTC")


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("MSD_DATABASE_URL", "mysql://x@h/db", "MSD_DATABASE_URL"),
        ("MSD_DATABASE_URL", "postgresql://u:pw@h:99999/db", "MSD_DATABASE_URL"),
        ("MSD_CLICKHOUSE_URL", "ftp://h", "MSD_CLICKHOUSE_URL"),
        ("MSD_REDIS_URL", "http://h", "MSD_REDIS_URL"),
        ("MSD_PORT", "eighty", "MSD_PORT"),
        ("MSD_PORT", "70000", "MSD_PORT"),
        ("MSD_TIMEZONE", "Moon/Base", "MSD_TIMEZONE"),
        ("MSD_CLICKHOUSE_DATABASE", "x; DROP", "MSD_CLICKHOUSE_DATABASE"),
        ("MSD_LOG_LEVEL", "LOUD", "MSD_LOG_LEVEL"),
    ],
)
def test_bad_setting_is_refused_with_its_name(variable: str, value: str, named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(environ={variable: value})


def test_password_never_appears_in_the_error() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(environ={"MSD_DATABASE_URL": "mysql://user:hunter2@h/db"})

    assert "hunter2" not in str(raised.value)


def test_flag_overrides_environment() -> None:
    settings = load_settings({"port": "9001"}, environ={"MSD_PORT": "9000"})

    assert settings.port == 9001


def _migrate_with(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MSD_DATA_DIR": str(tmp_path), **variables}
    return subprocess.run(
        [sys.executable, "-m", "msd.cli", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("MSD_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none"),
        ("MSD_REDIS_URL", "redis://127.0.0.1:1/0"),
    ],
)
def test_unreachable_server_stops_the_command_with_one_line(
    tmp_path: Path, variable: str, url: str
) -> None:
    result = _migrate_with(tmp_path, **{variable: url})

    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert variable in result.stderr and "Traceback" not in result.stderr

"""The configured schedules: read from a TOML file (``MSD_SCHEDULE_FILE``, else the built-in
``jobs/default_schedules.toml``), checked field by field, and offered to Taskiq's scheduler."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pycron
from taskiq import ScheduleSource
from taskiq.scheduler.scheduled_task import ScheduledTask

from msd.settings import SettingsError

__all__ = [
    "DEFAULT_FILE",
    "JOBS",
    "Schedule",
    "ScheduleFileSource",
    "load_schedules",
    "task_name",
]

DEFAULT_FILE = Path(__file__).resolve().parent / "default_schedules.toml"

# Each job and the options it takes, with their types and defaults.
JOBS: dict[str, dict[str, tuple[type, Any]]] = {
    "replicate": {},
    "reconcile": {"repair": (bool, False)},
    "snapshot": {"keep": (int, 7), "out": (str, None)},
}
_DESCRIPTIONS = {
    "replicate": "one replication round (skipped while another replicator is active)",
    "reconcile": "compare ClickHouse with PostgreSQL per day",
    "snapshot": "Parquet snapshot of the alerts",
}
_KEYS = {"name", "job", "cron", "every", "enabled"}


def task_name(job: str) -> str:
    return f"msd.job.{job}"


@dataclass(frozen=True)
class Schedule:
    name: str
    job: str
    cron: str | None = None
    every: int | None = None
    enabled: bool = True
    options: dict[str, Any] = field(default_factory=dict)

    def when(self) -> str:
        return f"cron {self.cron} (UTC)" if self.cron else f"every {self.every}s"

    def what(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.options.items() if v is not None)
        return _DESCRIPTIONS[self.job] + (f" [{shown}]" if shown else "")

    def scheduled_task(self) -> ScheduledTask:
        return ScheduledTask(
            task_name=task_name(self.job),
            labels={"schedule": self.name},
            args=[],
            kwargs=dict(self.options),
            schedule_id=self.name,
            cron=self.cron,
            interval=self.every,
        )


def load_schedules(path: Path | None) -> list[Schedule]:
    """The schedules of ``path`` (the built-in file when None); errors name file and field."""
    source = path or DEFAULT_FILE
    try:
        document = tomllib.loads(source.read_text(encoding="utf-8"))
    except OSError as error:
        raise SettingsError(f"MSD_SCHEDULE_FILE={str(source)!r} cannot be read: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"{source}: not valid TOML: {error}") from None

    unknown = sorted(set(document) - {"schedule"})
    if unknown:
        raise SettingsError(f"{source}: unknown table {unknown[0]!r}; write [[schedule]] entries")
    entries = document.get("schedule", [])
    if not isinstance(entries, list):
        raise SettingsError(f"{source}: `schedule` must be an array of tables ([[schedule]])")
    schedules = [_schedule(source, index, entry) for index, entry in enumerate(entries, 1)]
    names = [s.name for s in schedules]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SettingsError(f"{source}: schedule name {repeated[0]!r} is used twice")
    return schedules


def _schedule(source: Path, index: int, entry: dict[str, Any]) -> Schedule:
    where = f"{source}: schedule #{index}"
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise SettingsError(f"{where}: `name` is missing (a short unique text)")
    where = f"{source}: schedule {name!r}"
    job = entry.get("job")
    if job not in JOBS:
        raise SettingsError(f"{where}: `job` = {job!r} is not one of {', '.join(JOBS)}")

    allowed = _KEYS | set(JOBS[job])
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise SettingsError(
            f"{where}: unknown field {unknown[0]!r}; a {job} schedule takes"
            f" {', '.join(sorted(allowed))}"
        )
    cron, every = entry.get("cron"), entry.get("every")
    if (cron is None) == (every is None):
        raise SettingsError(f"{where}: give exactly one of `cron` or `every`")
    if cron is not None:
        _check_cron(where, cron)
    if every is not None and (type(every) is not int or every < 1):
        raise SettingsError(f"{where}: `every` = {every!r} must be a whole number of seconds >= 1")
    enabled = entry.get("enabled", True)
    if type(enabled) is not bool:
        raise SettingsError(f"{where}: `enabled` = {enabled!r} must be true or false")
    return Schedule(name, job, cron, every, enabled, _options(where, job, entry))


_CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day", 1, 31),
    ("month", 1, 12),
    ("weekday", 0, 6),
)
_CRON_PART = re.compile(r"^(\*|(\d+)(?:-(\d+))?)(?:/(\d+))?$")


def _check_cron(where: str, cron: Any) -> None:
    if not isinstance(cron, str) or len(cron.split()) != 5:
        raise SettingsError(
            f"{where}: `cron` = {cron!r} must have five fields: minute hour day month weekday"
        )
    for text, (name, low, high) in zip(cron.split(), _CRON_FIELDS):
        for part in text.split(","):
            match = _CRON_PART.match(part)
            numbers = [int(n) for n in match.groups()[1:3] if n is not None] if match else []
            step = match.group(4) if match else None
            if not match or any(not low <= n <= high for n in numbers) or step == "0":
                raise SettingsError(
                    f"{where}: `cron` = {cron!r}: the {name} field {text!r} must be *, */N,"
                    f" A, A-B or A-B/N with numbers {low}..{high}"
                )
    pycron.is_now(cron, datetime.now(timezone.utc))  # the scheduler's own parser takes it too


def _options(where: str, job: str, entry: dict[str, Any]) -> dict[str, Any]:
    options = {}
    for option, (kind, default) in JOBS[job].items():
        value = entry.get(option, default)
        if value is not None and type(value) is not kind:
            raise SettingsError(f"{where}: `{option}` = {value!r} must be a {kind.__name__}")
        if option == "keep" and value < 1:
            raise SettingsError(f"{where}: `keep` = {value} must be at least 1")
        options[option] = value
    return options


class ScheduleFileSource(ScheduleSource):
    """The enabled schedules, as Taskiq's scheduler asks for them."""

    def __init__(self, schedules: list[Schedule]) -> None:
        self.schedules = schedules

    async def get_schedules(self) -> list[ScheduledTask]:
        return [s.scheduled_task() for s in self.schedules if s.enabled]


def listing(schedules: list[Schedule], source: Path | None) -> str:
    """The schedules as a table for ``msd scheduler --list``."""
    rows = [("NAME", "WHEN", "JOB", "ENABLED", "RUNS")]
    rows += [(s.name, s.when(), s.job, "yes" if s.enabled else "no", s.what()) for s in schedules]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [f"schedules from {source or DEFAULT_FILE}"]
    lines += [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[4] for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)

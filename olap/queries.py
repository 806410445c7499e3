"""The aggregate queries the API serves from ClickHouse: statistics, trends, top companies, regions.

Statistics, trends and top companies read daily views when the window's local days are whole
UTC days and it has no filter those views lack. Each query otherwise reads the hourly
materialized views when the window's edges and every local midnight in it fall on whole UTC
hours (true of UTC and of every whole-hour zone, DST included): then each hour belongs to one
local day and the answer is exact.
Otherwise (a zone such as Asia/Kolkata, or a window edge inside an hour) it reads the signed
change rows themselves, which is exact too, only slower. The same raw path serves filters on a
dimension a view lacks: stats_hourly has no company, company_hourly no violation type, and
neither has the names free text searches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from msd.like import like_pattern
from olap.store import ClickHouseStore

__all__ = [
    "Filters",
    "Window",
    "alert_count",
    "company_risk",
    "regions",
    "statistics",
    "top_companies",
    "trends",
    "window_for_days",
    "window_between",
]

SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
STATUSES = ("PENDING", "REVIEWING", "RESOLVED", "DISMISSED")


@dataclass(frozen=True)
class Filters:
    """The list filters every aggregate also takes; an empty tuple (or no ``q``) means no filter.

    ``company`` holds the names asked for, ``company_key`` their normalised keys (what matches:
    PostgreSQL's msd_company_key computes them, see ``workflow.alerts.company_keys``). ``q`` is
    free text found, case-insensitively, in the company name or the violation type.
    """

    severity: tuple[str, ...] = ()
    status: tuple[str, ...] = ()
    region: tuple[str, ...] = ()
    company: tuple[str, ...] = ()
    company_key: tuple[str, ...] = ()
    violation_type: tuple[str, ...] = ()
    q: str | None = None


@dataclass(frozen=True)
class Window:
    """A half-open UTC interval [start, end) and the local days it covers in ``zone``."""

    start: datetime
    end: datetime
    zone: str
    first_day: date
    last_day: date

    def days(self) -> list[date]:
        count = (self.last_day - self.first_day).days + 1
        return [self.first_day + timedelta(days=offset) for offset in range(count)]


def window_for_days(days: int, zone: str, today: date | None = None) -> Window:
    """The last ``days`` local days in ``zone``, today included."""
    tz = ZoneInfo(zone)
    today = today or datetime.now(tz).date()
    return window_between(today - timedelta(days=days - 1), today, zone)


def window_between(first_day: date, last_day: date, zone: str) -> Window:
    """Whole local days from ``first_day`` to ``last_day``, both included."""
    return Window(
        _local_midnight(first_day, zone),
        _local_midnight(last_day + timedelta(days=1), zone),
        zone,
        first_day,
        last_day,
    )


def window_of_instants(start: datetime, end: datetime, zone: str) -> Window:
    """An arbitrary [start, end) interval; its days are the local dates it touches."""
    tz = ZoneInfo(zone)
    last = (end - timedelta(microseconds=1)).astimezone(tz).date()
    return Window(
        start.astimezone(timezone.utc),
        end.astimezone(timezone.utc),
        zone,
        start.astimezone(tz).date(),
        max(last, start.astimezone(tz).date()),
    )


def _local_midnight(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(zone)).astimezone(timezone.utc)


@dataclass(frozen=True)
class _Source:
    """Where an aggregate reads from, and how a row there counts."""

    table: str
    time: str
    weight: str
    amount: str
    resolved: str
    resolution_seconds: str


_HOURLY = _Source("stats_hourly", "hour", "alerts", "amount", "resolved", "resolution_seconds")
_COMPANY_HOURLY = _Source("company_hourly", "hour", "alerts", "amount", "0", "0")
_COMPANY_DAILY = _Source("company_daily", "day", "alerts", "amount", "0", "0")
_DAILY = _Source("stats_daily", "day", "alerts", "amount", "resolved", "resolution_seconds")
_CHANGES = _Source(
    "alert_changes",
    "detected_at",
    "sign",
    "sign * amount",
    "sign * (resolved_at IS NOT NULL)",
    "sign * resolution_seconds",
)


def _hour_aligned(window: Window) -> bool:
    edges = [window.start, window.end]
    midnights = [_local_midnight(day, window.zone) for day in window.days()]
    return all(t.minute == 0 and t.second == 0 and t.microsecond == 0 for t in edges + midnights)


def _stats_source(window: Window, filters: Filters) -> tuple[_Source, str, dict[str, Any]]:
    """Where statistics and trends read: the daily view, else the hourly one, else the changes."""
    if _utc_days(window) and not (
        filters.region
        or filters.company_key
        or filters.company
        or filters.violation_type
        or filters.q is not None
    ):
        return (_DAILY, *_daily_where(_DAILY, window, filters))
    source = _source(_HOURLY, window, filters, lacks=("company_key",))
    return (source, *_where(source, window, filters))


def _daily_where(source: _Source, window: Window, filters: Filters) -> tuple[str, dict[str, Any]]:
    """The filters and the window's whole UTC days, for a view keyed by UTC day."""
    where, params = _bounded_where(source, None, None, filters)
    where += " AND day >= {first_utc_day:Date} AND day < {end_utc_day:Date}"
    params |= {
        "first_utc_day": window.start.date(),
        "end_utc_day": window.end.date(),
        "tz": window.zone,
    }
    return where, params


def _utc_days(window: Window) -> bool:
    """True when the window's local days are whole UTC days (UTC, or a zone then at offset 0)."""
    edges = [window.start, window.end]
    midnights = [_local_midnight(day, window.zone) for day in window.days()]
    return all(
        t.hour == 0 and t.minute == 0 and t.second == 0 and t.microsecond == 0
        for t in edges + midnights
    )


def _source(views: _Source, window: Window, filters: Filters, lacks: tuple[str, ...]) -> _Source:
    """The hourly ``views`` when they can answer exactly, else the signed change rows."""
    needs_raw = filters.q is not None or any(getattr(filters, name) for name in lacks)
    return views if _hour_aligned(window) and not needs_raw else _CHANGES


def _where(source: _Source, window: Window, filters: Filters) -> tuple[str, dict[str, Any]]:
    where, params = _bounded_where(source, window.start, window.end, filters)
    params["tz"] = window.zone
    return where, params


def _bounded_where(
    source: _Source, start: datetime | None, end: datetime | None, filters: Filters
) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if start is not None:
        clauses.append(f"{source.time} >= {{start:DateTime64(3, 'UTC')}}")
        params["start"] = start
    if end is not None:
        clauses.append(f"{source.time} < {{end:DateTime64(3, 'UTC')}}")
        params["end"] = end
    if filters.company and not filters.company_key:
        raise ValueError("company names must be resolved to company keys before a query")
    for name in ("severity", "status", "region", "company_key", "violation_type"):
        values = getattr(filters, name)
        if values:
            clauses.append(f"{name} IN {{{name}:Array(String)}}")
            params[name] = list(values)
    if filters.q is not None:
        # Each signed row carries the whole state of its alert, so matching row by row and
        # summing signs counts exactly the alerts whose current name or type matches.
        clauses.append("(company_name ILIKE {q:String} OR violation_type ILIKE {q:String})")
        params["q"] = like_pattern(filters.q)
    return " AND ".join(clauses) or "1", params


def alert_count(
    store: ClickHouseStore, filters: Filters, start: datetime | None, end: datetime | None
) -> int:
    """How many alerts match ``filters`` and were detected in [start, end) (None: unbounded).

    The list's filters, counted from the views where they can answer exactly: stats_hourly
    without a company filter, company_hourly with one but no violation type, the signed change
    rows otherwise (free text, or an edge inside an hour).
    """
    whole_hours = all(
        t is None or (t.minute == 0 and t.second == 0 and t.microsecond == 0) for t in (start, end)
    )
    if not whole_hours or filters.q is not None:
        source = _CHANGES
    elif not filters.company_key:
        source = _HOURLY
    elif not filters.violation_type:
        source = _COMPANY_HOURLY
    else:
        source = _CHANGES
    where, params = _bounded_where(source, start, end, filters)
    row = store.query_rows(
        f"SELECT sum({source.weight}) AS total FROM {store.database}.{source.table} WHERE {where}",
        params,
    )[0]
    return int(row["total"] or 0)


@dataclass
class Statistics:
    total: int
    critical: int
    high: int
    pending: int
    total_amount: Decimal


def statistics(store: ClickHouseStore, window: Window, filters: Filters) -> Statistics:
    source, where, params = _stats_source(window, filters)
    w = source.weight
    row = store.query_rows(
        f"SELECT sum({w}) AS total, sumIf({w}, severity = 'CRITICAL') AS critical,"
        f" sumIf({w}, severity = 'HIGH') AS high, sumIf({w}, status = 'PENDING') AS pending,"
        f" toDecimal128(sum({source.amount}), 2) AS total_amount"
        f" FROM {store.database}.{source.table} WHERE {where}",
        params,
    )[0]
    return Statistics(
        int(row["total"] or 0),
        int(row["critical"] or 0),
        int(row["high"] or 0),
        int(row["pending"] or 0),
        row["total_amount"] or Decimal("0.00"),
    )


@dataclass
class TrendDay:
    date: date
    total_alerts: int = 0
    critical_alerts: int = 0
    high_alerts: int = 0
    medium_alerts: int = 0
    low_alerts: int = 0
    total_amount: Decimal = Decimal("0.00")
    resolved: int = 0
    resolution_seconds: int = 0

    @property
    def avg_resolution_hours(self) -> float | None:
        if self.resolved <= 0:
            return None
        return round(self.resolution_seconds / self.resolved / 3600, 4)


def trends(store: ClickHouseStore, window: Window, filters: Filters) -> list[TrendDay]:
    """One row per local day of the window, days without alerts included as zeros."""
    source, where, params = _stats_source(window, filters)
    w = source.weight
    # The daily view's days are the window's local days already (see _utc_days).
    day = "day" if source is _DAILY else f"toDate({source.time}, {{tz:String}})"
    rows = store.query_rows(
        f"SELECT {day} AS day, sum({w}) AS total_alerts,"
        f" sumIf({w}, severity = 'CRITICAL') AS critical_alerts,"
        f" sumIf({w}, severity = 'HIGH') AS high_alerts,"
        f" sumIf({w}, severity = 'MEDIUM') AS medium_alerts,"
        f" sumIf({w}, severity = 'LOW') AS low_alerts,"
        f" toDecimal128(sum({source.amount}), 2) AS total_amount,"
        f" sum({source.resolved}) AS resolved,"
        f" sum({source.resolution_seconds}) AS resolution_seconds"
        f" FROM {store.database}.{source.table} WHERE {where} GROUP BY day",
        params,
    )
    by_day = {row.pop("day"): row for row in rows}
    return [TrendDay(day, **_ints(by_day.get(day, {}))) for day in window.days()]


def _ints(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, Decimal) else int(v)) for k, v in row.items()}


@dataclass
class CompanyRisk:
    company_key: str
    company_name: str
    total_violations: int
    critical: int
    high: int
    total_amount: Decimal
    last_violation_date: date | None
    risk_score: Decimal = field(init=False)

    def __post_init__(self) -> None:
        self.risk_score = company_risk(self.critical, self.high, self.total_amount)


def company_risk(critical: int, high: int, total_amount: Decimal) -> Decimal:
    """The replaced dashboard's score: critical x 10 + high x 5 + total amount / 100,000."""
    return Decimal(critical * 10 + high * 5) + total_amount / Decimal(100_000)


def top_companies(
    store: ClickHouseStore, window: Window, filters: Filters, limit: int = 10
) -> list[CompanyRisk]:
    """The ``limit`` companies with the highest risk score in the window."""
    if _utc_days(window) and not (
        filters.status or filters.region or filters.violation_type or filters.q is not None
    ):
        source = _COMPANY_DAILY
        where, params = _daily_where(source, window, filters)
    else:
        source = _source(_COMPANY_HOURLY, window, filters, lacks=("violation_type",))
        where, params = _where(source, window, filters)
    w = source.weight
    params["limit"] = limit
    rows = store.query_rows(
        f"SELECT company_key, sum({w}) AS total, sumIf({w}, severity = 'CRITICAL') AS critical,"
        f" sumIf({w}, severity = 'HIGH') AS high, toDecimal128(sum({source.amount}), 2) AS amount"
        f" FROM {store.database}.{source.table} WHERE {where}"
        " GROUP BY company_key HAVING total != 0"
        " ORDER BY critical * 1000000 + high * 500000 + amount DESC, total DESC, company_key"
        " LIMIT {limit:UInt32}",
        params,
    )
    last_at = _last_violations(store, source, where, params, [row["company_key"] for row in rows])
    names = display_names(store, [row["company_key"] for row in rows])
    tz = ZoneInfo(window.zone)
    return [
        CompanyRisk(
            row["company_key"],
            names.get(row["company_key"], row["company_key"]),
            int(row["total"]),
            int(row["critical"]),
            int(row["high"]),
            row["amount"],
            _local_date(last_at.get(row["company_key"]), tz),
        )
        for row in rows
    ]


def _last_violations(
    store: ClickHouseStore, source: _Source, where: str, params: dict[str, Any], keys: list[str]
) -> dict[str, datetime]:
    """When each company's latest alert in the window was detected (of ``keys`` only: the
    grouping by time is the costly part, so it runs for the companies shown, not for all).

    A bucket's +1 and -1 rows may still sit in different parts, so buckets are summed first and
    only those whose alerts did not all cancel count.
    """
    if not keys:
        return {}
    rows = store.query_rows(
        "SELECT company_key, toDateTime64(max(t), 3, 'UTC') AS last_at FROM ("
        f" SELECT company_key, {source.time} AS t, sum({source.weight}) AS n"
        f" FROM {store.database}.{source.table}"
        f" WHERE {where} AND company_key IN {{shown:Array(String)}}"
        " GROUP BY company_key, t HAVING n != 0)"
        " GROUP BY company_key",
        {**params, "shown": keys},
    )
    return {row["company_key"]: row["last_at"] for row in rows}


@dataclass
class RegionFigures:
    region: str
    alerts: int
    critical: int
    high: int
    pending: int
    amount: Decimal


def regions(store: ClickHouseStore, window: Window, filters: Filters) -> list[RegionFigures]:
    """Every region with alerts in the window, most alerts first (ties: by region)."""
    source = _source(_HOURLY, window, filters, lacks=("company_key",))
    where, params = _where(source, window, filters)
    w = source.weight
    rows = store.query_rows(
        # Aliases differ from the view's columns (alerts, amount), which they would shadow.
        f"SELECT region, sum({w}) AS total, sumIf({w}, severity = 'CRITICAL') AS critical,"
        f" sumIf({w}, severity = 'HIGH') AS high, sumIf({w}, status = 'PENDING') AS pending,"
        f" toDecimal128(sum({source.amount}), 2) AS total_amount"
        f" FROM {store.database}.{source.table} WHERE {where}"
        " GROUP BY region HAVING total != 0 ORDER BY total DESC, region",
        params,
    )
    return [
        RegionFigures(
            row["region"],
            int(row["total"]),
            int(row["critical"]),
            int(row["high"]),
            int(row["pending"]),
            row["total_amount"],
        )
        for row in rows
    ]


def _local_date(value: datetime | None, tz: ZoneInfo) -> date | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(tz).date()


def display_names(store: ClickHouseStore, keys: list[str]) -> dict[str, str]:
    """The most used spelling of each company (ties: the alphabetically last)."""
    if not keys:
        return {}
    rows = store.query_rows(
        "SELECT company_key, argMax(company_name, (n, company_name)) AS name FROM ("
        " SELECT company_key, company_name, sum(alerts) AS n"
        f" FROM {store.database}.company_names WHERE company_key IN {{keys:Array(String)}}"
        " GROUP BY company_key, company_name HAVING n > 0)"
        " GROUP BY company_key",
        {"keys": keys},
    )
    return {row["company_key"]: row["name"] for row in rows}

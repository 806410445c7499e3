"""Query parameters shared by the endpoints, validated into plain values or a 400 naming them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Annotated, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from litestar.params import QueryParameter

from api.errors import ApiError, nul_problem
from olap.queries import (
    SEVERITIES,
    STATUSES,
    Filters,
    Window,
    window_between,
    window_for_days,
    window_of_instants,
)

__all__ = ["Page", "Limits", "check_known", "parse_filters", "parse_page", "parse_window"]


def _documented(description: str) -> object:
    return Annotated[str | None, QueryParameter(description=description)]


# How the query parameters appear in the OpenAPI schema. Handlers declare them for the schema;
# the parse_* functions below validate them all in one place, with messages naming them.
SeverityParam = _documented("LOW, MEDIUM, HIGH or CRITICAL; several comma-separated")
StatusParam = _documented("PENDING, REVIEWING, RESOLVED or DISMISSED; several comma-separated")
RegionParam = _documented("Region code such as CA; several comma-separated")
PageParam = _documented("Page number, from 1")
PageSizeParam = _documented("Rows per page, 1 to 500 (default 20)")
CursorParam = _documented("Keyset cursor: a next_cursor from an earlier page")
DaysParam = _documented("Days back from today, today included: 1 to 36600 (default 30)")
SinceParam = _documented("First day (2024-05-01, included) or instant (ISO 8601)")
UntilParam = _documented("Last day (included) or instant (excluded), ISO 8601")
ZoneParam = _documented("IANA zone for day boundaries (default the server's, UTC)")

MAX_FILTER_VALUES = 50
MAX_DAYS = 36_600  # a century of daily rows: decades of history stay reachable


@dataclass(frozen=True)
class Limits:
    default_page_size: int = 20
    max_page_size: int = 500


LIMITS = Limits()


@dataclass(frozen=True)
class Page:
    number: int
    size: int
    cursor: str | None


FILTER_PARAMETERS = ("severity", "status", "region")
LIST_PARAMETERS = (*FILTER_PARAMETERS, "page", "page_size", "cursor")
AGGREGATE_PARAMETERS = (*FILTER_PARAMETERS, "days", "since", "until", "tz")
# Sent by browsers and by the replaced Django REST framework's clients, and harmless.
_IGNORED_PARAMETERS = ("format", "_")


def check_known(query: Mapping[str, list[str]], known: tuple[str, ...]) -> None:
    """A misspelt parameter is an error, not a silently unfiltered answer."""
    for name, values in query.items():
        for value in values:
            if problem := nul_problem(value):
                raise ApiError(400, f"{name} {problem}", parameter=name)
        if name not in known and name not in _IGNORED_PARAMETERS:
            raise ApiError(
                400,
                f"unknown parameter {name!r}; this endpoint takes {', '.join(known)}",
                parameter=name,
                allowed=list(known),
            )


def _values(query: Mapping[str, list[str]], name: str) -> list[str]:
    values: list[str] = []
    for raw in query.get(name, []):
        values += [part.strip() for part in raw.split(",") if part.strip()]
    return values


def _choices(query: Mapping[str, list[str]], name: str, allowed: tuple[str, ...]) -> tuple:
    values = [value.upper() for value in _values(query, name)]
    if len(values) > MAX_FILTER_VALUES:
        raise ApiError(400, f"{name} takes at most {MAX_FILTER_VALUES} values", parameter=name)
    for value in values:
        if value not in allowed:
            raise ApiError(
                400,
                f"{name}={value!r} is not one of {', '.join(allowed)}",
                parameter=name,
                allowed=list(allowed),
            )
    return tuple(dict.fromkeys(values))


def parse_filters(query: Mapping[str, list[str]]) -> Filters:
    """severity, status and region: each one value, several comma-separated, or repeated."""
    regions = _values(query, "region")
    if len(regions) > MAX_FILTER_VALUES:
        raise ApiError(400, f"region takes at most {MAX_FILTER_VALUES} values", parameter="region")
    for region in regions:
        if len(region) > 100:
            raise ApiError(400, "region is longer than 100 characters", parameter="region")
    return Filters(
        severity=_choices(query, "severity", SEVERITIES),
        status=_choices(query, "status", STATUSES),
        region=tuple(dict.fromkeys(regions)),
    )


def _single(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name, [])
    if len(values) > 1:
        raise ApiError(400, f"{name} was given {len(values)} times; give it once", parameter=name)
    return values[0].strip() if values and values[0].strip() else None


def _positive_int(query: Mapping[str, list[str]], name: str, high: int) -> int | None:
    raw = _single(query, name)
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ApiError(400, f"{name}={raw!r} must be a whole number from 1", parameter=name)
    if int(raw) > high:
        raise ApiError(400, f"{name}={raw} is over the limit of {high}", parameter=name)
    return int(raw)


def parse_page(query: Mapping[str, list[str]], limits: Limits = LIMITS) -> Page:
    number = _positive_int(query, "page", 10**9) or 1
    size = _positive_int(query, "page_size", limits.max_page_size) or limits.default_page_size
    cursor = _single(query, "cursor")
    if cursor is not None and _single(query, "page") is not None:
        raise ApiError(400, "give either page or cursor, not both", parameter="cursor")
    return Page(number, size, cursor)


def parse_zone(query: Mapping[str, list[str]], default: str) -> str:
    zone = _single(query, "tz") or default
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ApiError(
            400,
            f"tz={zone!r} is not an IANA time zone such as UTC or Europe/Paris",
            parameter="tz",
        ) from None
    return zone


def _moment(raw: str, name: str, zone: str) -> date | datetime:
    try:
        if len(raw) == 10:
            return date.fromisoformat(raw)
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            400, f"{name}={raw!r} is not an ISO date (2024-05-31) or date-time", parameter=name
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(zone))


def parse_window(query: Mapping[str, list[str]], default_zone: str) -> Window:
    """``days`` (default 30) back from today, or ``since``/``until`` (days included)."""
    zone = parse_zone(query, default_zone)
    days = _positive_int(query, "days", MAX_DAYS)
    since_raw, until_raw = _single(query, "since"), _single(query, "until")
    if days is not None and (since_raw or until_raw):
        raise ApiError(400, "give either days or since/until, not both", parameter="days")
    if since_raw is None and until_raw is None:
        return window_for_days(days or 30, zone)

    today = datetime.now(ZoneInfo(zone)).date()
    since = _moment(since_raw, "since", zone) if since_raw else None
    until = _moment(until_raw, "until", zone) if until_raw else None
    if isinstance(since, datetime) or isinstance(until, datetime):
        return _instant_window(since, until, zone)
    first = since or (until - _days(29))  # type: ignore[operator]
    last = until or today
    _check_order(first, last)
    if (last - first).days + 1 > MAX_DAYS:
        raise ApiError(400, f"the window is longer than {MAX_DAYS} days", parameter="since")
    return window_between(first, last, zone)


def _instant_window(
    since: date | datetime | None, until: date | datetime | None, zone: str
) -> Window:
    tz = ZoneInfo(zone)
    start = _as_instant(since, tz) if since else datetime.now(timezone.utc) - _days(30)
    end = _as_instant(until, tz, end=True) if until else datetime.now(timezone.utc)
    _check_order(start, end)
    if (end - start).days > MAX_DAYS:
        raise ApiError(400, f"the window is longer than {MAX_DAYS} days", parameter="since")
    return window_of_instants(start, end, zone)


def _as_instant(value: date | datetime, tz: ZoneInfo, end: bool = False) -> datetime:
    if isinstance(value, datetime):
        return value
    day = value + _days(1) if end else value
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def _check_order(first: date | datetime, last: date | datetime) -> None:
    if first > last:
        raise ApiError(400, f"since ({first}) is after until ({last})", parameter="since")


def _days(count: int) -> timedelta:
    return timedelta(days=count)

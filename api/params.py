"""Query parameters shared by the endpoints, validated into plain values or a 400 naming them."""

from __future__ import annotations

import math
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

__all__ = [
    "ChartSize",
    "Page",
    "Limits",
    "check_known",
    "parse_chart_size",
    "parse_filters",
    "parse_list_window",
    "parse_ordering",
    "parse_page",
    "parse_window",
    "window_expiry",
]


def _documented(description: str) -> object:
    return Annotated[str | None, QueryParameter(description=description)]


def _documented_list(description: str) -> object:
    return Annotated[list[str] | None, QueryParameter(description=description)]


# How the query parameters appear in the OpenAPI schema. Handlers declare them for the schema;
# the parse_* functions below validate them all in one place, with messages naming them.
SeverityParam = _documented("LOW, MEDIUM, HIGH or CRITICAL; several comma-separated")
StatusParam = _documented("PENDING, REVIEWING, RESOLVED or DISMISSED; several comma-separated")
RegionParam = _documented("Region code such as CA; several comma-separated")
CompanyParam = _documented_list(
    "Company name, any spelling of it (matched by normalised key); repeat for several"
    " (names hold commas, so no comma-splitting)"
)
ViolationTypeParam = _documented_list("Violation type, exactly; repeat for several")
TextParam = _documented(
    "Free text found in the company name or violation type, any case; % and _ are literal;"
    " at most 200 characters"
)
OrderingParam = _documented(
    "Sort order: detected_at, amount, severity (by rank), company_name or status; a leading"
    " '-' sorts descending (default -detected_at)"
)
WidthParam = _documented("Chart width in pixels, 200 to 2000")
HeightParam = _documented("Chart height in pixels, 150 to 2000")
ScaleParam = _documented("PNG pixel ratio, 0.5 to 4 (default 1)")
PageParam = _documented("Page number, from 1")
PageSizeParam = _documented("Rows per page, 1 to 500 (default 20)")
CursorParam = _documented("Keyset cursor: a next_cursor from an earlier page")
DaysParam = _documented("Days back from today, today included: 1 to 36600 (default 30)")
SinceParam = _documented("First day (2024-05-01, included) or instant (ISO 8601)")
UntilParam = _documented("Last day (included) or instant (excluded), ISO 8601")
ZoneParam = _documented("IANA zone for day boundaries (default the server's, UTC)")

MAX_FILTER_VALUES = 50
MAX_VALUE_LENGTH = 200
MAX_REGION_LENGTH = 100
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


FILTER_PARAMETERS = ("severity", "status", "region", "company", "violation_type", "q")
WINDOW_PARAMETERS = ("days", "since", "until", "tz")
PAGE_PARAMETERS = ("page", "page_size", "cursor")
LIST_PARAMETERS = (*FILTER_PARAMETERS, *WINDOW_PARAMETERS, "ordering", *PAGE_PARAMETERS)
EXPORT_PARAMETERS = (*FILTER_PARAMETERS, *WINDOW_PARAMETERS, "ordering")
AGGREGATE_PARAMETERS = (*FILTER_PARAMETERS, *WINDOW_PARAMETERS)
CHART_PARAMETERS = (*AGGREGATE_PARAMETERS, "width", "height", "scale")
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


def _checked(name: str, values: list[str], longest: int) -> tuple[str, ...]:
    if len(values) > MAX_FILTER_VALUES:
        raise ApiError(400, f"{name} takes at most {MAX_FILTER_VALUES} values", parameter=name)
    for value in values:
        if len(value) > longest:
            raise ApiError(
                400, f"a {name} value is longer than {longest} characters", parameter=name
            )
    return tuple(dict.fromkeys(values))


def _exact_values(query: Mapping[str, list[str]], name: str) -> list[str]:
    """Repeated values taken whole: company names and violation types may hold commas."""
    return [raw.strip() for raw in query.get(name, []) if raw.strip()]


def parse_filters(query: Mapping[str, list[str]]) -> Filters:
    """severity, status and region: each one value, several comma-separated, or repeated;
    company and violation_type: repeated, never split; q: one piece of free text.

    Company names come back as given; ``workflow.alerts.company_keys`` resolves their keys."""
    q = _single(query, "q")
    if q is not None and len(q) > MAX_VALUE_LENGTH:
        raise ApiError(400, f"q is longer than {MAX_VALUE_LENGTH} characters", parameter="q")
    return Filters(
        severity=_choices(query, "severity", SEVERITIES),
        status=_choices(query, "status", STATUSES),
        region=_checked("region", _values(query, "region"), MAX_REGION_LENGTH),
        company=_checked("company", _exact_values(query, "company"), MAX_VALUE_LENGTH),
        violation_type=_checked(
            "violation_type", _exact_values(query, "violation_type"), MAX_VALUE_LENGTH
        ),
        q=q,
    )


def parse_ordering(query: Mapping[str, list[str]], allowed: tuple[str, ...], default: str) -> str:
    ordering = _single(query, "ordering") or default
    if ordering not in allowed:
        raise ApiError(
            400,
            f"ordering={ordering!r} is not one of {', '.join(allowed)}",
            parameter="ordering",
            allowed=list(allowed),
        )
    return ordering


def parse_list_window(query: Mapping[str, list[str]], default_zone: str) -> Window | None:
    """The list's time range on detected_at: none unless days, since or until is given."""
    zone = parse_zone(query, default_zone)
    if not any(_single(query, name) for name in ("days", "since", "until")):
        return None
    return parse_window(query, zone)


@dataclass(frozen=True)
class ChartSize:
    width: int | None
    height: int | None
    scale: float


CHART_WIDTH = (200, 2000)
CHART_HEIGHT = (150, 2000)
CHART_SCALE = (0.5, 4.0)


def parse_chart_size(query: Mapping[str, list[str]]) -> ChartSize:
    """width and height in pixels (each chart has its own default) and the PNG scale."""
    width = _positive_int(query, "width", CHART_WIDTH[1])
    height = _positive_int(query, "height", CHART_HEIGHT[1])
    for name, value, low in (("width", width, CHART_WIDTH[0]), ("height", height, CHART_HEIGHT[0])):
        if value is not None and value < low:
            raise ApiError(400, f"{name}={value} is under the minimum of {low}", parameter=name)
    raw = _single(query, "scale")
    scale = 1.0
    if raw is not None:
        try:
            scale = float(raw)
        except ValueError:
            raise ApiError(400, f"scale={raw!r} is not a number", parameter="scale") from None
        if not CHART_SCALE[0] <= scale <= CHART_SCALE[1]:
            raise ApiError(
                400,
                f"scale={raw} is outside {CHART_SCALE[0]} to {CHART_SCALE[1]}",
                parameter="scale",
            )
    return ChartSize(width, height, scale)


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


def window_expiry(query: Mapping[str, list[str]], window: Window) -> float | None:
    """Until when (Unix time) the same parameters name ``window`` again, or None if never.

    ``days``, or ``since`` without ``until``, ends today: the same parameters name other days
    from the next local midnight, the window's end. Dated bounds on both sides (or ``until``
    alone, a date) never move. A date-time bound beside one left open is measured from "now",
    so the window is new at every instant.
    """
    since, until = _single(query, "since"), _single(query, "until")
    instants = any(raw is not None and len(raw) != 10 for raw in (since, until))
    if until is not None and (since is not None or not instants):
        return math.inf
    if instants:
        return None
    return window.end.timestamp()


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

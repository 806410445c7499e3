"""The aggregate endpoints, answered from ClickHouse: statistics, risk trends, top companies,
regions.

Each takes the list filters (severity, status, region, company, violation_type, q) and a
window: ``days`` back from today (default 30, as the replaced dashboard had) or
``since``/``until``, with day boundaries in ``tz`` (default the server's MSD_TIMEZONE, UTC unless
set). Responses carry the replication watermark in ``X-Replication-Watermark`` and say in
``X-Cache`` whether the cache had the answer. With ClickHouse down, the cache answers the
question's last answer marked ``X-Cache: stale`` (its watermark in ``X-Replication-Watermark``),
or the error handler answers 503.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any, Callable

import msgspec
from anyio.to_thread import run_sync
from litestar import MediaType, Request, Response, get
from litestar.datastructures import State

from api.auth import required_role
from api.cache import AnswerCache, answer_key
from api.fast_lane import FastLane
from api.params import (
    AGGREGATE_PARAMETERS,
    CompanyParam,
    DaysParam,
    RegionParam,
    SeverityParam,
    SinceParam,
    StatusParam,
    TextParam,
    UntilParam,
    ViolationTypeParam,
    ZoneParam,
    check_known,
    parse_filters,
    parse_window,
    window_expiry,
)
from api.routing import answer
from api.schemas import CompanyOut, RegionOut, StatisticsOut, TrendOut
from msd.runtime import Services
from olap.queries import Filters, Window

__all__ = [
    "aggregate_handlers",
    "cache_key",
    "question_key",
    "read_question",
    "resolve_companies",
]

WATERMARK_HEADER = "X-Replication-Watermark"


def _query(request: Request) -> dict[str, list[str]]:
    return {key: request.query_params.getall(key) for key in request.query_params}


# How long an answer may stay in memory. Not a freshness bound: keys carry the watermark, so a
# cached answer is never older than what has replicated. These are the old dashboard's TTLs.
TTL_SECONDS = {
    "statistics": 300.0,
    "risk_trends": 600.0,
    "top_companies": 900.0,
    "regions": 600.0,
}


def read_question(
    query: dict[str, list[str]], known: tuple[str, ...], default_zone: str
) -> tuple[Window, Filters]:
    """The window and filters a request asks about, or a 400 naming the parameter at fault."""
    check_known(query, known)
    return parse_window(query, default_zone), parse_filters(query)


def resolve_companies(services: Services, filters: Filters) -> Filters:
    """The filters with the normalised keys of the company names, which ClickHouse matches."""
    if not filters.company:
        return filters
    return replace(filters, company_key=answer("companies.keys", services, filters.company))


async def _run(name: str, request: Request, state: State, encode: Callable[[Any], Any]) -> Response:
    """A cached answer known in memory is served on the event loop; anything that reads a
    store (Redis, ClickHouse) runs in a worker thread. Each fresh answer tells the fast lane
    (``api.fast_lane``) what its URL asks, so that the URL's next requests are answered there."""
    services: Services = state.services
    query = _query(request)
    window, filters = read_question(query, AGGREGATE_PARAMETERS, services.settings.timezone)

    # Read the watermark first: the answer then holds at least everything it names.
    watermark = await services.watermark_on_loop()
    question = question_key(name, window, filters)
    key = answer_key(question, watermark.header())

    def compute() -> bytes:
        rows = answer(name, services, window, resolve_companies(services, filters))
        return msgspec.json.encode(encode(rows))

    cache: AnswerCache = state.cache
    cached = cache.in_memory(key) or await run_sync(
        cache.get_or_compute, key, TTL_SECONDS[name], compute
    )
    window_header = f"{window.first_day}/{window.last_day};tz={window.zone}"
    expires_at = window_expiry(query, window)
    if not cached.stale and expires_at is not None:
        fast_lane: FastLane = state.fast_lane
        fast_lane.remember(
            request.scope["path"],
            request.scope["query_string"],
            request.headers.get("host"),
            question=question,
            role=required_role(request.route_handler, "GET") or "viewer",
            window_header=window_header,
            expires_at=expires_at,
        )
    headers = {"X-Window": window_header, **cached.headers(watermark.header())}
    return Response(cached.body, media_type=MediaType.JSON, headers=headers)


def cache_key(
    name: str, window: Window, filters: Filters, watermark: str, extra: tuple[Any, ...] = ()
) -> str:
    """The cache key of ``question_key`` at ``watermark``."""
    return answer_key(question_key(name, window, filters, extra), watermark)


def question_key(name: str, window: Window, filters: Filters, extra: tuple[Any, ...] = ()) -> str:
    """Equal for equal questions whatever the parameters' order or spelling; distinct otherwise.

    Values are JSON-encoded, so no value can pass for two (a company "A, B" is not "A" and "B").
    """
    normal = json.dumps(
        [
            name,
            window.start.isoformat(),
            window.end.isoformat(),
            window.zone,
            window.first_day.isoformat(),
            window.last_day.isoformat(),
            sorted(filters.severity),
            sorted(filters.status),
            sorted(filters.region),
            sorted(filters.company),
            sorted(filters.violation_type),
            filters.q,
            list(extra),
        ]
    )
    return f"{name}:{hashlib.sha256(normal.encode()).hexdigest()[:32]}"


def _statistics_body(stats: Any) -> StatisticsOut:
    return StatisticsOut(
        total=stats.total,
        critical=stats.critical,
        high=stats.high,
        pending=stats.pending,
        total_amount=float(stats.total_amount),
    )


def _trends_body(rows: list[Any]) -> list[TrendOut]:
    return [
        TrendOut(
            date=row.date,
            total_alerts=row.total_alerts,
            critical_alerts=row.critical_alerts,
            high_alerts=row.high_alerts,
            medium_alerts=row.medium_alerts,
            low_alerts=row.low_alerts,
            total_amount=float(row.total_amount),
            avg_resolution_time=row.avg_resolution_hours,
        )
        for row in rows
    ]


def _companies_body(rows: list[Any]) -> list[CompanyOut]:
    return [
        CompanyOut(
            company_name=row.company_name,
            total_violations=row.total_violations,
            total_amount=float(row.total_amount),
            risk_score=float(round(row.risk_score, 4)),
            last_violation_date=row.last_violation_date,
        )
        for row in rows
    ]


def _regions_body(rows: list[Any]) -> list[RegionOut]:
    return [
        RegionOut(
            region=row.region,
            alerts=row.alerts,
            critical=row.critical,
            high=row.high,
            pending=row.pending,
            amount=float(row.amount),
        )
        for row in rows
    ]


@get("/api/alerts/statistics/", summary="Totals over a window")
async def statistics(
    request: Request,
    state: State,
    severity: SeverityParam = None,
    status: StatusParam = None,
    region: RegionParam = None,
    company: CompanyParam = None,
    violation_type: ViolationTypeParam = None,
    q: TextParam = None,
    days: DaysParam = None,
    since: SinceParam = None,
    until: UntilParam = None,
    tz: ZoneParam = None,
) -> Response[StatisticsOut]:
    return await _run("statistics", request, state, _statistics_body)


@get("/api/alerts/risk_trends/", summary="One row per day of the window")
async def risk_trends(
    request: Request,
    state: State,
    severity: SeverityParam = None,
    status: StatusParam = None,
    region: RegionParam = None,
    company: CompanyParam = None,
    violation_type: ViolationTypeParam = None,
    q: TextParam = None,
    days: DaysParam = None,
    since: SinceParam = None,
    until: UntilParam = None,
    tz: ZoneParam = None,
) -> Response[list[TrendOut]]:
    return await _run("risk_trends", request, state, _trends_body)


@get("/api/alerts/top_companies/", summary="Ten companies by risk score")
async def top_companies(
    request: Request,
    state: State,
    severity: SeverityParam = None,
    status: StatusParam = None,
    region: RegionParam = None,
    company: CompanyParam = None,
    violation_type: ViolationTypeParam = None,
    q: TextParam = None,
    days: DaysParam = None,
    since: SinceParam = None,
    until: UntilParam = None,
    tz: ZoneParam = None,
) -> Response[list[CompanyOut]]:
    return await _run("top_companies", request, state, _companies_body)


@get("/api/alerts/regions/", summary="Figures per region, most alerts first")
async def regions(
    request: Request,
    state: State,
    severity: SeverityParam = None,
    status: StatusParam = None,
    region: RegionParam = None,
    company: CompanyParam = None,
    violation_type: ViolationTypeParam = None,
    q: TextParam = None,
    days: DaysParam = None,
    since: SinceParam = None,
    until: UntilParam = None,
    tz: ZoneParam = None,
) -> Response[list[RegionOut]]:
    return await _run("regions", request, state, _regions_body)


aggregate_handlers = [statistics, risk_trends, top_companies, regions]

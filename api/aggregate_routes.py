"""The aggregate endpoints, answered from ClickHouse: statistics, risk trends, top companies.

Each takes the list filters (severity, status, region) and a window: ``days`` back from today
(default 30, as the replaced dashboard had) or ``since``/``until``, with day boundaries in ``tz``
(default the server's MSD_TIMEZONE, UTC unless set). Responses carry the replication watermark
in ``X-Replication-Watermark`` and say in ``X-Cache`` whether the cache had the answer. With
ClickHouse down, the cache answers the question's last answer marked ``X-Cache: stale`` (its
watermark in ``X-Replication-Watermark``), or the error handler answers 503.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable

import msgspec
from litestar import MediaType, Request, Response, get
from litestar.datastructures import State

from api.cache import answer_key
from api.params import (
    AGGREGATE_PARAMETERS,
    DaysParam,
    RegionParam,
    SeverityParam,
    SinceParam,
    StatusParam,
    UntilParam,
    ZoneParam,
    check_known,
    parse_filters,
    parse_window,
)
from api.routing import answer
from api.schemas import CompanyOut, StatisticsOut, TrendOut
from msd.runtime import Services
from olap.queries import Filters, Window

__all__ = ["aggregate_handlers"]

WATERMARK_HEADER = "X-Replication-Watermark"


def _query(request: Request) -> dict[str, list[str]]:
    return {key: request.query_params.getall(key) for key in request.query_params}


# How long an answer may stay in memory. Not a freshness bound: keys carry the watermark, so a
# cached answer is never older than what has replicated. These are the old dashboard's TTLs.
TTL_SECONDS = {"statistics": 300.0, "risk_trends": 600.0, "top_companies": 900.0}


def _run(name: str, request: Request, state: State, encode: Callable[[Any], Any]) -> Response:
    services: Services = state.services
    query = _query(request)
    check_known(query, AGGREGATE_PARAMETERS)
    filters = parse_filters(query)
    window = parse_window(query, services.settings.timezone)

    # Read the watermark first: the answer then holds at least everything it names.
    watermark = services.watermark()
    key = _cache_key(name, window, filters, watermark.header())
    cached = state.cache.get_or_compute(
        key,
        TTL_SECONDS[name],
        lambda: msgspec.json.encode(encode(answer(name, services, window, filters))),
    )
    headers = {
        "X-Window": f"{window.first_day}/{window.last_day};tz={window.zone}",
        **cached.headers(watermark.header()),
    }
    return Response(cached.body, media_type=MediaType.JSON, headers=headers)


def _cache_key(name: str, window: Window, filters: Filters, watermark: str) -> str:
    """Equal for equal questions whatever the parameters' order or spelling; distinct otherwise.

    The watermark stays readable after the ``@``: a stale answer says which one it reflects.
    """
    normal = "|".join(
        [
            name,
            window.start.isoformat(),
            window.end.isoformat(),
            window.zone,
            window.first_day.isoformat(),
            window.last_day.isoformat(),
            ",".join(sorted(filters.severity)),
            ",".join(sorted(filters.status)),
            ",".join(sorted(filters.region)),
        ]
    )
    return answer_key(f"{name}:{hashlib.sha256(normal.encode()).hexdigest()[:32]}", watermark)


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


@get("/api/alerts/statistics/", sync_to_thread=True, summary="Totals over a window")
def statistics(
    request: Request,
    state: State,
    severity: SeverityParam = None,
    status: StatusParam = None,
    region: RegionParam = None,
    days: DaysParam = None,
    since: SinceParam = None,
    until: UntilParam = None,
    tz: ZoneParam = None,
) -> Response[StatisticsOut]:
    return _run("statistics", request, state, _statistics_body)


@get("/api/alerts/risk_trends/", sync_to_thread=True, summary="One row per day of the window")
def risk_trends(
    request: Request,
    state: State,
    severity: SeverityParam = None,
    status: StatusParam = None,
    region: RegionParam = None,
    days: DaysParam = None,
    since: SinceParam = None,
    until: UntilParam = None,
    tz: ZoneParam = None,
) -> Response[list[TrendOut]]:
    return _run("risk_trends", request, state, _trends_body)


@get("/api/alerts/top_companies/", sync_to_thread=True, summary="Ten companies by risk score")
def top_companies(
    request: Request,
    state: State,
    severity: SeverityParam = None,
    status: StatusParam = None,
    region: RegionParam = None,
    days: DaysParam = None,
    since: SinceParam = None,
    until: UntilParam = None,
    tz: ZoneParam = None,
) -> Response[list[CompanyOut]]:
    return _run("top_companies", request, state, _companies_body)


aggregate_handlers = [statistics, risk_trends, top_companies]

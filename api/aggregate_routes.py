"""The aggregate endpoints, answered from ClickHouse: statistics, risk trends, top companies.

Each takes the list filters (severity, status, region) and a window: ``days`` back from today
(default 30, as the replaced dashboard had) or ``since``/``until``, with day boundaries in ``tz``
(default the server's MSD_TIMEZONE, UTC unless set). Responses carry the replication watermark
in ``X-Replication-Watermark``.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.datastructures import State

from api.params import (
    DaysParam,
    RegionParam,
    SeverityParam,
    SinceParam,
    StatusParam,
    UntilParam,
    ZoneParam,
    parse_filters,
    parse_window,
)
from api.routing import answer
from api.schemas import CompanyOut, StatisticsOut, TrendOut
from msd.runtime import Services

__all__ = ["aggregate_handlers"]

WATERMARK_HEADER = "X-Replication-Watermark"


def _query(request: Request) -> dict[str, list[str]]:
    return {key: request.query_params.getall(key) for key in request.query_params}


def _run(name: str, request: Request, state: State) -> tuple[Any, dict[str, str]]:
    services: Services = state.services
    query = _query(request)
    filters = parse_filters(query)
    window = parse_window(query, services.settings.timezone)

    # Read the watermark first: the answer then holds at least everything it names.
    watermark = services.watermark()
    result = answer(name, services, window, filters)
    headers = {
        WATERMARK_HEADER: watermark.header(),
        "X-Window": f"{window.first_day}/{window.last_day};tz={window.zone}",
    }
    return result, headers


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
    stats, headers = _run("statistics", request, state)
    body = StatisticsOut(
        total=stats.total,
        critical=stats.critical,
        high=stats.high,
        pending=stats.pending,
        total_amount=float(stats.total_amount),
    )
    return Response(body, headers=headers)


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
    rows, headers = _run("risk_trends", request, state)
    body = [
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
    return Response(body, headers=headers)


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
    rows, headers = _run("top_companies", request, state)
    body = [
        CompanyOut(
            company_name=row.company_name,
            total_violations=row.total_violations,
            total_amount=float(row.total_amount),
            risk_score=float(round(row.risk_score, 4)),
            last_violation_date=row.last_violation_date,
        )
        for row in rows
    ]
    return Response(body, headers=headers)


aggregate_handlers = [statistics, risk_trends, top_companies]

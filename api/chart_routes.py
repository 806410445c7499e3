"""``GET /api/charts/{name}.{fmt}``: the dashboard's charts as PNG, SVG, HTML or Vega-Lite JSON,
and ``GET /ui/vendor/vega.js``, the script that draws the JSON specs in a browser, offline.

A chart takes the aggregates' filters and window, plus ``width``, ``height`` and (PNG)
``scale``. Its bytes are cached like the aggregates: under the normalised question and the
replication watermark, so a chart is redrawn as soon as replication moves.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
from typing import Any

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.params import FromPath

from api.aggregate_routes import (
    TTL_SECONDS,
    WATERMARK_HEADER,
    cache_key,
    read_question,
    resolve_companies,
)
from api.errors import ApiError
from api.params import (
    CHART_PARAMETERS,
    ChartSize,
    CompanyParam,
    DaysParam,
    HeightParam,
    RegionParam,
    ScaleParam,
    SeverityParam,
    SinceParam,
    StatusParam,
    TextParam,
    UntilParam,
    ViolationTypeParam,
    WidthParam,
    ZoneParam,
    parse_chart_size,
)
from api.routing import answer
from msd.runtime import Services
from olap.queries import Filters, Window
from ui.charts import CHARTS, FORMATS, ChartContext, build_chart, offline_bundle, render

__all__ = ["MEDIA_TYPES", "chart_bytes", "chart_handlers", "parse_chart_name"]

logger = logging.getLogger(__name__)

MEDIA_TYPES = {
    "png": "image/png",
    "svg": "image/svg+xml",
    "html": "text/html",
    "json": "application/json",
}
VENDOR_PATH = "/ui/vendor/vega.js"


def parse_chart_name(file_name: str) -> tuple[str, str]:
    """``trends.png`` -> ("trends", "png"), or a 404 naming the charts and formats there are."""
    name, _, fmt = file_name.rpartition(".")
    if name not in CHARTS or fmt not in FORMATS:
        raise ApiError(
            404,
            f"no chart {file_name!r}: charts are {', '.join(CHARTS)}, formats"
            f" {', '.join(FORMATS)} (e.g. /api/charts/trends.png)",
            parameter="name",
        )
    return name, fmt


def _context(window: Window, filters: Filters, size: ChartSize) -> ChartContext:
    shown = [
        ("severity", filters.severity),
        ("status", filters.status),
        ("region", filters.region),
        ("company", filters.company),
        ("violation type", filters.violation_type),
        ("text", (f'"{filters.q}"',) if filters.q is not None else ()),
    ]
    return ChartContext(
        window.first_day, window.last_day, window.zone, shown, size.width, size.height
    )


def chart_bytes(
    services: Services, name: str, fmt: str, window: Window, filters: Filters, size: ChartSize
) -> bytes:
    """Chart ``name`` over the aggregate it draws, rendered as ``fmt``."""
    query, _ = CHARTS[name]
    rows = answer(query, services, window, resolve_companies(services, filters))
    spec = build_chart(name, rows, _context(window, filters, size))
    return render(spec, fmt, scale=size.scale)


@get("/api/charts/{file_name:str}", sync_to_thread=True, summary="A chart: PNG, SVG, HTML, JSON")
def chart(
    request: Request,
    state: State,
    file_name: FromPath[str],
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
    width: WidthParam = None,
    height: HeightParam = None,
    scale: ScaleParam = None,
) -> Response[bytes]:
    services: Services = state.services
    name, fmt = parse_chart_name(file_name)
    query = {key: request.query_params.getall(key) for key in request.query_params}
    window, filters = read_question(query, CHART_PARAMETERS, services.settings.timezone)
    size = parse_chart_size(query)

    watermark = services.watermark()
    extra: tuple[Any, ...] = (fmt, size.width, size.height, size.scale if fmt == "png" else 1)
    key = cache_key(f"chart.{name}", window, filters, watermark.header(), extra)
    cached = state.cache.get_or_compute(
        key,
        TTL_SECONDS[CHARTS[name][0]],
        lambda: chart_bytes(services, name, fmt, window, filters, size),
    )
    headers = {
        WATERMARK_HEADER: watermark.header(),
        "X-Window": f"{window.first_day}/{window.last_day};tz={window.zone}",
        "X-Cache": "hit" if cached.hit else "miss",
    }
    if fmt == "html":
        headers["Content-Disposition"] = f'inline; filename="{name}.html"'
    return Response(cached.body, media_type=MEDIA_TYPES[fmt], headers=headers)


_vendor: tuple[bytes, bytes, str] | None = None


def _vendor_script() -> tuple[bytes, bytes, str]:
    """The bundle raw and gzipped, and its ETag; made once per process."""
    global _vendor
    if _vendor is None:
        raw = offline_bundle().encode("utf-8")
        _vendor = (raw, gzip.compress(raw, 9, mtime=0), hashlib.sha256(raw).hexdigest()[:20])
    return _vendor


@get(
    VENDOR_PATH,
    sync_to_thread=True,
    opt={"public": True},
    media_type="text/javascript",
    include_in_schema=False,
    summary="Vega, Vega-Lite and vega-embed, offline",
)
def vendor_vega(request: Request) -> Response[bytes]:
    raw, packed, etag = _vendor_script()
    headers = {
        # The content changes only with the vl-convert-python version; the ETag catches that.
        "Cache-Control": "public, max-age=604800",
        "ETag": f'"{etag}"',
        "Vary": "Accept-Encoding",
    }
    if request.headers.get("if-none-match") == f'"{etag}"':
        return Response(b"", status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(packed, media_type="text/javascript", headers=headers)
    return Response(raw, media_type="text/javascript", headers=headers)


chart_handlers = [chart, vendor_vega]

"""The Litestar application: routes, error format, OpenAPI, and the services it runs on."""

from __future__ import annotations

import logging
import time

from litestar import Litestar, Router, get
from litestar.config.app import AppConfig
from litestar.config.compression import CompressionConfig
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.response import Response
from litestar.types import ASGIApp, Receive, Scope, Send

from api.access_routes import access_handlers
from api.aggregate_routes import aggregate_handlers
from api.alert_routes import alert_handlers
from api.auth import authorize
from api.batch_routes import batch_handlers, close_batch_queue, take_over_unfinished_tasks
from api.cache import AnswerCache
from api.chart_routes import chart_handlers
from api.errors import document_problems, exception_handlers
from api.export_routes import export_handlers
from api.fast_lane import FastLane
from api.live_routes import close_live_feed, live_handlers
from api.metrics import Metrics
from api.ratelimit import RateLimiter
from api.schemas import Health
from api.ui_routes import load_assets, ui_handlers
from jobs.reconcile import reconcile_gauges
from msd.runtime import Services
from ui.fonts import use_font_dir

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 10 * 1024 * 1024
# Gzip for the dashboard's page, its files and its text charts only: other API answers stay as they
# were (their clients and benchmarks saw them uncompressed), the event stream must not wait in a
# compressor's buffer, and the chart library under /ui/vendor/ is served gzipped by its route.
COMPRESSION = CompressionConfig(
    backend="gzip",
    gzip_compress_level=6,
    minimum_size=500,
    exclude=r"^/(?!ui/(?!vendor/)|api/charts/[^/]+\.(?:json|svg|html)$|$)",
)


@get("/health", sync_to_thread=True, opt={"public": True}, summary="Whether both stores answer")
def health(state: State) -> Health:
    services: Services = state.services
    reasons: dict[str, str] = {}
    try:
        # Read from PostgreSQL even when the watermark is known in memory: this is the probe.
        watermark = services.replicator.read_watermark_now()
    except Exception as error:  # health reports the failure instead of failing itself
        logger.warning("health: PostgreSQL did not answer: %s", error)
        reasons["postgres"] = _reason(error)
        watermark = None
    try:
        services.store.query_rows("SELECT 1 AS ok")
    except Exception as error:
        logger.warning("health: ClickHouse did not answer: %s", error)
        reasons["clickhouse"] = _reason(error)
    if not state.cache.probe():
        reasons["cache"] = "Redis is not answering; answers are computed uncached"
    status = "unhealthy" if "postgres" in reasons else "degraded" if reasons else "ok"
    return Health(
        status=status,
        postgres="unavailable" if "postgres" in reasons else "ok",
        clickhouse="unavailable" if "clickhouse" in reasons else "ok",
        cache="degraded" if "cache" in reasons else "ok",
        watermark=watermark.position if watermark else "unknown",
        replicated_events=watermark.events if watermark else 0,
        reasons=reasons,
    )


@get("/health/live", opt={"public": True}, summary="Whether the process answers (no store read)")
async def live() -> dict[str, str]:
    # A liveness probe must not fail because a store is away (that is what /health reports),
    # and it is the floor the other endpoints' speed is measured against: it does nothing else.
    return {"status": "alive"}


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}"[:300]


@get(
    "/metrics",
    sync_to_thread=True,
    opt={"public": True},
    media_type="text/plain; version=0.0.4",
    summary="Counters in Prometheus text format",
)
def metrics(state: State) -> Response[str]:
    services: Services = state.services
    gauges: dict[str, tuple[float, str]] = {
        "cache_degraded": (1.0 if state.cache.degraded else 0.0, "1 while Redis is not answering")
    }
    try:
        watermark = services.replicator.read_watermark_now()
        gauges["replicated_events"] = (float(watermark.events), "Change events replicated")
        gauges |= reconcile_gauges(services.db, services.store.database)
    except Exception as error:  # the metrics page must answer even when PostgreSQL does not
        logger.warning("metrics: PostgreSQL did not answer: %s", error)
    body = state.metrics.render(gauges)
    return Response(body, media_type="text/plain; version=0.0.4")


@get("/api/", sync_to_thread=False, summary="What this service serves (the dashboard is at /)")
def index() -> dict[str, str]:
    return {
        "alerts": "/api/alerts/",
        "alert": "/api/alerts/{alert_id}/",
        "history": "/api/alerts/{alert_id}/history/",
        "batch_process": "/api/alerts/batch_process/",
        "task": "/api/tasks/{task_id}/",
        "statistics": "/api/alerts/statistics/",
        "risk_trends": "/api/alerts/risk_trends/",
        "top_companies": "/api/alerts/top_companies/",
        "regions": "/api/alerts/regions/",
        "charts": "/api/charts/{trends,top_companies,regions}.{png,svg,html,json}",
        "export": "/api/exports/alerts.csv",
        "health": "/health",
        "liveness": "/health/live",
        "metrics": "/metrics",
        "session": "/api/session/",
        "users": "/api/users/",
        "tokens": "/api/tokens/",
        "chart_library": "/ui/vendor/vega.js",
        "openapi": "/schema/openapi.json",
        "live": "/api/live/",
        "dashboard": "/",
    }


def _request_log(app: ASGIApp) -> ASGIApp:
    """One log line per request: method, path, status and time (query strings and auth left out)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 0}

        async def record(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)  # type: ignore[arg-type]

        await app(scope, receive, record)  # type: ignore[arg-type]
        logger.info(
            "%s %s %d %.1fms",
            scope["method"],
            scope["path"],
            status["code"],
            (time.perf_counter() - started) * 1000,
        )

    return middleware


def create_app(
    services: Services, *, on_shutdown: list | None = None, take_over_tasks: bool = False
) -> Litestar:
    """The API over ``services``; the caller owns them (and closes them in ``on_shutdown``).

    ``take_over_tasks``: at start, run the batch tasks a previous embedded process left
    unfinished (``msd serve`` sets it; tests start apps that must not pick up others' tasks).
    """
    use_font_dir(services.settings.chart_font_dir)
    metrics_ = Metrics()
    cache = AnswerCache(services.settings.redis_url, metrics_)
    shared_counter = cache.count if services.settings.redis_url else None
    rate_limiter = RateLimiter(services.settings.rate_limit, shared_counter)
    fast_lane = FastLane(services, cache, rate_limiter)
    app = Litestar(
        # One router, registered at once: Litestar registers a handler again whenever a later
        # one shares its path, and a second registration runs a sync handler in a thread that
        # starts another thread (and a handler returning a Response then fails).
        route_handlers=[
            Router(
                path="/",
                route_handlers=document_problems(
                    [
                        *access_handlers,
                        *alert_handlers,
                        *aggregate_handlers,
                        *batch_handlers,
                        *chart_handlers,
                        *export_handlers,
                        health,
                        live,
                        metrics,
                        index,
                        *live_handlers,
                        *ui_handlers,
                    ]
                ),
            )
        ],
        state=State(
            {
                "services": services,
                "metrics": metrics_,
                "cache": cache,
                "rate_limiter": rate_limiter,
                "fast_lane": fast_lane,
                "ui_assets": load_assets(),
            }
        ),
        guards=[authorize],
        exception_handlers=exception_handlers,  # type: ignore[arg-type]
        request_max_body_size=MAX_BODY_BYTES,
        compression_config=COMPRESSION,
        on_startup=[take_over_unfinished_tasks] if take_over_tasks else [],
        on_shutdown=[
            close_batch_queue,
            close_live_feed,
            cache.close,
            services.close_on_loop,
            *(on_shutdown or []),
        ],
        openapi_config=OpenAPIConfig(
            title="Market supervision alerts",
            version="0.1.0",
            path="/schema",
        ),
        # Logging is the command's (msd.cli sets one format for every module); Litestar's own
        # default would replace it with another format once the app starts.
        logging_config=None,
        on_app_init=[_quiet],
    )
    # Litestar hands every HTTP request to its asgi_handler (error handling around the router).
    # The request log and the fast lane go in front of it: cached answers skip the router, and
    # every request is logged, those the router finds no route for included.
    app.asgi_handler = _request_log(fast_lane.in_front_of(app.asgi_handler))
    return app


def _quiet(config: AppConfig) -> AppConfig:
    config.debug = False
    return config

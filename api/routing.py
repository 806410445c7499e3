"""Which store answers which query: the whole routing table of the API in one place.

Workflow state (the alert list and its CSV export, one alert, its history, status changes, new
alerts) is read and written in PostgreSQL, the source of truth, which also turns company names
into the normalised keys both stores match on. The alert list and its count may read from a
PostgreSQL read replica (``Services.reader``) and so trail the primary by the replica's delay;
one alert and its history always read the primary, so that a client sees its own change at once.
The list's count is the one query both stores answer: ClickHouse counts the filtered set first
(cached at the watermark, so it costs a lookup); a set it counts at or below
``MSD_EXACT_COUNT_LIMIT`` is then counted exactly in PostgreSQL, cheaply because it is small; a
larger one keeps ClickHouse's count, which holds everything replicated up to the watermark (and,
with ClickHouse down, PostgreSQL counts it all). Aggregates (statistics, trends, top companies,
regions, and the charts drawn from them) are read from ClickHouse. Answers from ClickHouse carry
the replication watermark they reflect: everything committed in PostgreSQL up to it is included.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable

from api.cache import AnswerCache, answer_key
from msd.runtime import Services
from olap import queries
from olap.queries import Filters, Window
from olap.store import StoreUnavailableError
from workflow import alerts
from workflow.alerts import ListFilters

__all__ = ["ROUTES", "ListCount", "Store", "answer", "list_count"]

# How long a replicated count may stay in memory (its key carries the watermark, so never stale).
COUNT_TTL_SECONDS = 300.0
_SET_FILTERS = ("severity", "status", "region", "company", "violation_type")


class Store(Enum):
    POSTGRES = "postgresql"
    CLICKHOUSE = "clickhouse"


def _list(services: Services, filters: ListFilters, **page: Any) -> list[dict[str, Any]]:
    return alerts.list_alerts(services.reader, filters, **page)


def _count(services: Services, filters: ListFilters) -> int:
    return alerts.count_alerts(services.reader, filters)


def _replicated_count(services: Services, filters: ListFilters) -> int:
    wanted = Filters(
        severity=tuple(filters.severity),
        status=tuple(filters.status),
        region=tuple(filters.region),
        company=tuple(filters.company),
        company_key=_company_keys(services, tuple(filters.company)) if filters.company else (),
        violation_type=tuple(filters.violation_type),
        q=filters.q,
    )
    return queries.alert_count(services.store, wanted, filters.since, filters.until)


def _export(services: Services, filters: ListFilters, **how: Any) -> Any:
    return alerts.iter_alerts(services.db, filters, **how)


def _company_keys(services: Services, names: tuple[str, ...]) -> tuple[str, ...]:
    return alerts.company_keys(services.db, names)


def _detail(services: Services, alert_id: str) -> dict[str, Any]:
    return alerts.get_alert(services.db, alert_id)


def _history(services: Services, alert_id: str) -> list[dict[str, Any]]:
    return alerts.alert_history(services.db, alert_id)


def _change_status(services: Services, alert_id: str, status: str, **how: Any) -> dict:
    return alerts.change_status(services.db, alert_id, status, **how)


def _create(services: Services, new: list[alerts.NewAlert], **who: str) -> Any:
    return alerts.create_alerts(services.db, new, **who)


def _watermark(services: Services) -> Any:
    """How far replication has come: the one-row read the live feed polls."""
    return services.watermark()


def _statistics(services: Services, window: Window, filters: Filters) -> Any:
    return queries.statistics(services.store, window, filters)


def _trends(services: Services, window: Window, filters: Filters) -> Any:
    return queries.trends(services.store, window, filters)


def _top_companies(services: Services, window: Window, filters: Filters) -> Any:
    return queries.top_companies(services.store, window, filters)


def _regions(services: Services, window: Window, filters: Filters) -> Any:
    return queries.regions(services.store, window, filters)


ROUTES: dict[str, tuple[Store, Callable[..., Any]]] = {
    "alerts.list": (Store.POSTGRES, _list),
    "alerts.count": (Store.POSTGRES, _count),
    "alerts.count_replicated": (Store.CLICKHOUSE, _replicated_count),
    "alerts.export": (Store.POSTGRES, _export),
    "companies.keys": (Store.POSTGRES, _company_keys),
    "alerts.detail": (Store.POSTGRES, _detail),
    "alerts.history": (Store.POSTGRES, _history),
    "alerts.change_status": (Store.POSTGRES, _change_status),
    "alerts.create": (Store.POSTGRES, _create),
    "live.watermark": (Store.POSTGRES, _watermark),
    "statistics": (Store.CLICKHOUSE, _statistics),
    "risk_trends": (Store.CLICKHOUSE, _trends),
    "top_companies": (Store.CLICKHOUSE, _top_companies),
    "regions": (Store.CLICKHOUSE, _regions),
}


def answer(name: str, services: Services, *args: Any, **kwargs: Any) -> Any:
    """Run the named query on the store the table assigns it."""
    _, run = ROUTES[name]
    return run(services, *args, **kwargs)


def store_of(name: str) -> Store:
    return ROUTES[name][0]


@dataclass(frozen=True)
class ListCount:
    """The list's ``count`` and who counted it; ``watermark`` is set when ClickHouse did."""

    value: int
    store: Store
    watermark: str | None = None

    def headers(self) -> dict[str, str]:
        if self.watermark is None:
            return {"X-Count-Source": self.store.value}
        return {"X-Count-Source": self.store.value, "X-Replication-Watermark": self.watermark}


def list_count(services: Services, cache: AnswerCache, filters: ListFilters) -> ListCount:
    """The count of the filtered list: exact when small, ClickHouse's when large (see above)."""
    limit = services.settings.exact_count_limit
    if limit > 0:
        watermark = services.watermark().header()
        key = answer_key(_count_question(filters), watermark)

        def compute() -> bytes:
            return str(answer("alerts.count_replicated", services, filters)).encode()

        try:
            replicated = cache.get_or_compute(key, COUNT_TTL_SECONDS, compute)
        except StoreUnavailableError:
            replicated = None
        if replicated is not None and not replicated.stale and int(replicated.body) > limit:
            return ListCount(int(replicated.body), Store.CLICKHOUSE, watermark)
    return ListCount(answer("alerts.count", services, filters), Store.POSTGRES)


def _count_question(filters: ListFilters) -> str:
    """Equal for equal filters in any order; JSON, so no value can pass for two."""
    return json.dumps(
        [
            "alerts.count",
            *(sorted(getattr(filters, name)) for name in _SET_FILTERS),
            filters.q,
            None if filters.since is None else filters.since.isoformat(),
            None if filters.until is None else filters.until.isoformat(),
        ],
        ensure_ascii=False,
    )

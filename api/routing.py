"""Which store answers which query: the whole routing table of the API in one place.

Workflow state (the alert list and its CSV export, one alert, its history, status changes, new
alerts) is read and written in PostgreSQL, the source of truth, which also turns company names
into the normalised keys both stores match on. The alert list and its count may read from a
PostgreSQL read replica (``Services.reader``) and so trail the primary by the replica's delay;
one alert and its history always read the primary, so that a client sees its own change at once.
Aggregates (statistics, trends, top companies, regions, and the charts drawn from them) are read
from ClickHouse. Answers from ClickHouse carry the replication watermark they reflect: everything
committed in PostgreSQL up to it is included.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Callable

from msd.runtime import Services
from olap import queries
from olap.queries import Filters, Window
from workflow import alerts
from workflow.alerts import ListFilters

__all__ = ["ROUTES", "Store", "answer"]


class Store(Enum):
    POSTGRES = "postgresql"
    CLICKHOUSE = "clickhouse"


def _list(services: Services, filters: ListFilters, **page: Any) -> list[dict[str, Any]]:
    return alerts.list_alerts(services.reader, filters, **page)


def _count(services: Services, filters: ListFilters) -> int:
    return alerts.count_alerts(services.reader, filters)


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

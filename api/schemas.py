"""Request and response bodies. Field names are the replaced dashboard's, so its clients work."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "AlertIn",
    "AlertOut",
    "AlertPage",
    "CompanyOut",
    "HistoryEntry",
    "RegionOut",
    "StatisticsOut",
    "StatusChange",
    "TrendOut",
]

Severity = Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"]
Status = Literal["PENDING", "REVIEWING", "RESOLVED", "DISMISSED"]


class AlertOut(msgspec.Struct):
    id: int
    alert_id: str
    company_name: str
    violation_type: str
    severity: str
    status: str
    # Exact decimal as a string ("1350000.00"), as the replaced API sent it; null when unknown.
    amount: str | None
    region: str
    detected_at: datetime
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    assignee: str | None
    version: int

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "AlertOut":
        amount = row["amount"]
        values = {name: row[name] for name in cls.__struct_fields__}
        values["amount"] = None if amount is None else f"{amount:.2f}"
        return cls(**values)


class AlertPage(msgspec.Struct):
    """One page of the alert list.

    ``count`` is exact up to MSD_EXACT_COUNT_LIMIT; above it, ClickHouse's count of the filtered
    set as of the replication watermark (the ``X-Count-Source`` header says which store counted).
    """

    count: int
    next: str | None
    previous: str | None
    results: list[AlertOut]
    next_cursor: str | None = None


class AlertIn(msgspec.Struct, forbid_unknown_fields=True):
    alert_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    company_name: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    violation_type: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    severity: Severity
    detected_at: datetime
    status: Status = "PENDING"
    amount: Annotated[str, msgspec.Meta(pattern=r"^\d{1,13}(\.\d{1,2})?$")] | None = None
    region: Annotated[str, msgspec.Meta(max_length=100)] = ""
    resolved_at: datetime | None = None
    assignee: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class StatusChange(msgspec.Struct, forbid_unknown_fields=True):
    # Checked by the handler, so that any case is accepted and a bad one lists the statuses.
    status: Annotated[str, msgspec.Meta(max_length=20, examples=["REVIEWING"])]
    note: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    version: int | None = None


class StatisticsOut(msgspec.Struct):
    total: int
    critical: int
    high: int
    pending: int
    total_amount: float


class TrendOut(msgspec.Struct):
    date: date
    total_alerts: int
    critical_alerts: int
    high_alerts: int
    medium_alerts: int
    low_alerts: int
    total_amount: float
    # Mean hours from detection to resolution of the day's resolved alerts; null when none.
    avg_resolution_time: float | None


class CompanyOut(msgspec.Struct):
    company_name: str
    total_violations: int
    total_amount: float
    risk_score: float
    last_violation_date: date | None


class RegionOut(msgspec.Struct):
    region: str
    alerts: int
    critical: int
    high: int
    pending: int
    amount: float


class HistoryEntry(msgspec.Struct):
    event_id: int
    op: str
    actor: str
    source: str
    note: str | None
    occurred_at: datetime
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class Health(msgspec.Struct):
    """``status``: ok; degraded (ClickHouse or Redis down: workflow still served); unhealthy
    (PostgreSQL down: nothing is). ``reasons`` says, per part that is down, what failed."""

    status: str
    postgres: str
    clickhouse: str
    cache: str
    watermark: str
    replicated_events: int
    reasons: dict[str, str] = {}

"""The ``/api/alerts/`` endpoints: the paginated list, one alert, its history, changes."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import msgspec
from litestar import Request, Response, get, patch, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody

from api.auth import audit_source, principal_of
from api.errors import ApiError, nul_problem
from api.params import (
    LIST_PARAMETERS,
    WINDOW_PARAMETERS,
    CompanyParam,
    CursorParam,
    DaysParam,
    OrderingParam,
    PageParam,
    PageSizeParam,
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
    parse_list_window,
    parse_ordering,
    parse_page,
)
from api.routing import answer, list_count
from api.schemas import AlertIn, AlertOut, AlertPage, HistoryEntry, StatusChange
from msd.runtime import Services
from workflow.alert_times import time_problem
from workflow.alerts import (
    DEFAULT_ORDERING,
    ORDERINGS,
    TRANSITIONS,
    AlertNotFound,
    InvalidCursor,
    InvalidTransition,
    ListFilters,
    NewAlert,
    StaleVersion,
    encode_cursor,
    filters_fingerprint,
)

__all__ = ["alert_handlers", "list_question"]

logger = logging.getLogger(__name__)

MAX_CREATE = 1000


def _services(state: State) -> Services:
    return state.services


def _query(request: Request) -> dict[str, list[str]]:
    return {key: request.query_params.getall(key) for key in request.query_params}


def _page_url(request: Request, **changes: Any) -> str:
    query = _query(request)
    for key, value in changes.items():
        query.pop("page" if key == "cursor" else "cursor", None)
        query[key] = [str(value)]
    # The replaced API's URLs end in a slash; Litestar hands the path over without it.
    path = request.url.path.rstrip("/") + "/"
    return f"{str(request.base_url).rstrip('/')}{path}?{urlencode(query, doseq=True)}"


def list_question(
    query: dict[str, list[str]], known: tuple[str, ...], default_zone: str
) -> tuple[ListFilters, str, str]:
    """The filters, ordering and the filters' fingerprint (which a cursor must match)."""
    check_known(query, known)
    filters = parse_filters(query)
    window = parse_list_window(query, default_zone)
    ordering = parse_ordering(query, ORDERINGS, DEFAULT_ORDERING)
    where = ListFilters(
        severity=filters.severity,
        status=filters.status,
        region=filters.region,
        company=filters.company,
        violation_type=filters.violation_type,
        q=filters.q,
        since=window.start if window else None,
        until=window.end if window else None,
    )
    # As asked rather than as computed, so that paging on with days=7 past midnight still works.
    asked = [f"{name}={query.get(name, [''])[0].strip()}" for name in WINDOW_PARAMETERS]
    return where, ordering, filters_fingerprint(where, asked if window else ())


@get("/api/alerts/", sync_to_thread=True, summary="List alerts, newest first unless ordered")
def list_alerts(
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
    ordering: OrderingParam = None,
    page: PageParam = None,
    page_size: PageSizeParam = None,
    cursor: CursorParam = None,
) -> Response[AlertPage]:
    services = _services(state)
    query = _query(request)
    where, ordering_, scope = list_question(query, LIST_PARAMETERS, services.settings.timezone)
    pagination = parse_page(query)

    try:
        rows = answer(
            "alerts.list",
            services,
            where,
            limit=pagination.size + 1,
            offset=(pagination.number - 1) * pagination.size,
            after=pagination.cursor,
            ordering=ordering_,
            scope=scope,
        )
    except InvalidCursor as error:
        raise ApiError(400, str(error), parameter="cursor") from None
    count = list_count(services, state.cache, where)
    if pagination.cursor is None and pagination.number > 1 and not rows:
        raise ApiError(404, f"page {pagination.number} is past the last page", parameter="page")

    more = len(rows) > pagination.size
    rows = rows[: pagination.size]
    next_cursor = encode_cursor(rows[-1], ordering_, scope) if more and rows else None
    page = AlertPage(
        count=count.value,
        next=_next_url(request, pagination, next_cursor) if more else None,
        previous=_page_url(request, page=pagination.number - 1)
        if pagination.cursor is None and pagination.number > 1
        else None,
        results=[AlertOut.from_row(row) for row in rows],
        next_cursor=next_cursor,
    )
    return Response(page, headers=count.headers())


def _next_url(request: Request, pagination: Any, next_cursor: str | None) -> str:
    if pagination.cursor is not None:
        return _page_url(request, cursor=next_cursor)
    return _page_url(request, page=pagination.number + 1)


@get("/api/alerts/{alert_id:str}/", sync_to_thread=True, summary="One alert")
def get_alert(state: State, alert_id: FromPath[str]) -> AlertOut:
    try:
        return AlertOut.from_row(answer("alerts.detail", _services(state), alert_id))
    except AlertNotFound:
        raise ApiError(404, f"no alert with alert_id {alert_id!r}", parameter="alert_id") from None


@get("/api/alerts/{alert_id:str}/history/", sync_to_thread=True, summary="An alert's changes")
def get_history(state: State, alert_id: FromPath[str]) -> list[HistoryEntry]:
    entries = answer("alerts.history", _services(state), alert_id)
    if not entries:
        raise ApiError(
            404, f"no alert with alert_id {alert_id!r} was ever recorded", parameter="alert_id"
        )
    return [HistoryEntry(**entry) for entry in entries]


@patch("/api/alerts/{alert_id:str}/", sync_to_thread=True, summary="Change an alert's status")
def change_status(
    request: Request, state: State, alert_id: FromPath[str], data: JSONBody[StatusChange]
) -> AlertOut:
    if problem := nul_problem(data.note):
        raise ApiError(400, f"note {problem}", field="note")
    status = data.status.strip().upper()
    if status not in TRANSITIONS:
        raise ApiError(
            400,
            f"status {data.status!r} is not one of {', '.join(TRANSITIONS)}",
            field="status",
            allowed=list(TRANSITIONS),
        )
    try:
        row = answer(
            "alerts.change_status",
            _services(state),
            alert_id,
            status,
            actor=principal_of(request).name,
            source=audit_source(principal_of(request)),
            note=data.note,
            expected_version=data.version,
        )
    except AlertNotFound:
        raise ApiError(404, f"no alert with alert_id {alert_id!r}", parameter="alert_id") from None
    except InvalidTransition as error:
        raise ApiError(
            409,
            f"{error}; allowed from {error.current}: {', '.join(error.allowed)}",
            field="status",
            allowed=list(error.allowed),
        ) from None
    except StaleVersion as error:
        raise ApiError(409, str(error), field="version") from None
    return AlertOut.from_row(row)


@post("/api/alerts/", sync_to_thread=True, summary="Create one alert or a list of them")
def create_alerts(request: Request, state: State, data: JSONBody[Any]) -> Response[list[AlertOut]]:
    items = _decode_new_alerts(data)
    principal = principal_of(request)
    created, existing = answer(
        "alerts.create",
        _services(state),
        items,
        actor=principal.name,
        source=audit_source(principal),
    )
    if existing:
        raise ApiError(
            409,
            f"alert_id already exists: {', '.join(existing[:20])}; nothing was created",
            field="alert_id",
        )
    return Response([AlertOut.from_row(row) for row in created], status_code=201)


def _decode_new_alerts(data: Any) -> list[NewAlert]:
    many = isinstance(data, list)
    raw_items = data if many else [data]
    if not raw_items:
        raise ApiError(400, "the list of alerts is empty", field="body")
    if len(raw_items) > MAX_CREATE:
        raise ApiError(
            413, f"at most {MAX_CREATE} alerts per request, got {len(raw_items)}", field="body"
        )
    errors: list[dict[str, str]] = []
    items: list[NewAlert] = []
    for index, raw in enumerate(raw_items):
        where = f"[{index}]" if many else ""
        try:
            alert = msgspec.convert(_normalise(raw), AlertIn, strict=False)
            item = _new_alert(alert)
        except msgspec.ValidationError as error:
            field = f"{where}.{_path(error)}".strip(".") or "body"
            errors.append({"field": field, "message": f"{field}: {_message(error)}"})
            continue
        except ValueError as error:
            field = f"{where}.{error.args[0]}".strip(".")
            errors.append({"field": field, "message": f"{field}: {error.args[1]}"})
            continue
        items.append(item)
    duplicates = _duplicate_ids(items)
    errors += [{"field": "alert_id", "message": f"{d!r} appears twice"} for d in duplicates]
    if errors:
        raise ApiError(400, "; ".join(e["message"] for e in errors[:10]), errors=errors)
    return items


def _normalise(raw: Any) -> Any:
    """Accept what people type: lower-case enums, and a bare date for a time (midnight UTC)."""
    if not isinstance(raw, dict):
        return raw
    fixed = dict(raw)
    for name in ("severity", "status"):
        if isinstance(fixed.get(name), str):
            fixed[name] = fixed[name].strip().upper()
    for name in ("detected_at", "resolved_at"):
        value = fixed.get(name)
        if isinstance(value, str) and len(value.strip()) == 10:
            fixed[name] = value.strip() + "T00:00:00Z"
    if isinstance(fixed.get("amount"), (int, float)) and not isinstance(fixed["amount"], bool):
        fixed["amount"] = repr(fixed["amount"])  # JSON numbers welcome; checked as text
    return fixed


def _path(error: msgspec.ValidationError) -> str:
    text = str(error)
    return text.split("at `$", 1)[1].rstrip("`").lstrip(".") if "at `$" in text else ""


def _message(error: msgspec.ValidationError) -> str:
    text = str(error).split(" - at `$", 1)[0]
    if "regex" in text or "pattern" in text:
        return "must be a decimal amount with at most 13 digits and 2 decimals, e.g. 1350000.50"
    return text


def _duplicate_ids(items: list[NewAlert]) -> list[str]:
    seen: set[str] = set()
    return [i.alert_id for i in items if i.alert_id in seen or seen.add(i.alert_id)]


def _new_alert(alert: AlertIn) -> NewAlert:
    """The alert to store; ValueError(field, message) for a NUL byte or times that make no sense."""
    for name in ("alert_id", "company_name", "violation_type", "region", "assignee", "amount"):
        if problem := nul_problem(getattr(alert, name)):
            raise ValueError(name, problem)
    detected_at = _utc(alert.detected_at)
    resolved_at = None if alert.resolved_at is None else _utc(alert.resolved_at)
    now = datetime.now(timezone.utc)
    if problem := time_problem(detected_at, resolved_at, now=now):
        raise ValueError(*problem)
    if resolved_at is None and alert.status in ("RESOLVED", "DISMISSED"):
        resolved_at = max(now, detected_at)  # closed on arrival: closed now
    return NewAlert(
        alert_id=alert.alert_id.strip(),
        company_name=alert.company_name.strip(),
        violation_type=alert.violation_type.strip(),
        severity=alert.severity,
        detected_at=detected_at,
        status=alert.status,
        amount=None if alert.amount is None else Decimal(alert.amount),
        region=alert.region.strip(),
        resolved_at=resolved_at,
        assignee=alert.assignee,
    )


def _utc(moment: datetime) -> datetime:
    """A time without a zone is taken as UTC, never as the server's local time."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


alert_handlers = [list_alerts, get_alert, get_history, change_status, create_alerts]

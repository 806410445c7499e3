"""Reading and changing alerts in PostgreSQL: the list, one alert, its history, status changes."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Iterable, Iterator, Sequence

import psycopg
from psycopg import sql

from msd.like import like_pattern
from workflow.db import Database

__all__ = [
    "ALERT_COLUMNS",
    "DEFAULT_ORDERING",
    "TRANSITIONS",
    "AlertNotFound",
    "InvalidCursor",
    "InvalidTransition",
    "ListFilters",
    "ORDERINGS",
    "StaleVersion",
    "alert_history",
    "change_status",
    "company_keys",
    "count_alerts",
    "create_alerts",
    "get_alert",
    "iter_alerts",
    "list_alerts",
    "list_query",
]

logger = logging.getLogger(__name__)

ALERT_COLUMNS = (
    "id",
    "alert_id",
    "company_name",
    "company_key",
    "violation_type",
    "severity",
    "status",
    "amount",
    "region",
    "detected_at",
    "created_at",
    "updated_at",
    "resolved_at",
    "assignee",
    "version",
)

# Which status may follow which. Closing is allowed from any open state; a closed alert can only
# be reopened into review, so that every reopening leaves a trace of someone looking again.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "PENDING": ("REVIEWING", "RESOLVED", "DISMISSED"),
    "REVIEWING": ("PENDING", "RESOLVED", "DISMISSED"),
    "RESOLVED": ("REVIEWING",),
    "DISMISSED": ("REVIEWING",),
}


class AlertNotFound(LookupError):
    pass


class InvalidTransition(ValueError):
    def __init__(self, current: str, wanted: str) -> None:
        super().__init__(f"an alert in {current} cannot move to {wanted}")
        self.current = current
        self.wanted = wanted
        self.allowed = TRANSITIONS[current]


class StaleVersion(ValueError):
    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"the alert is at version {actual}, not {expected}: reload it first")
        self.expected = expected
        self.actual = actual


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True)
class ListFilters:
    """What the list and the export select; empty means no filter.

    ``company`` is matched by company key, so any spelling of a company finds all of them;
    ``q`` is found case-insensitively in the company name or the violation type; ``since`` and
    ``until`` bound detected_at as [since, until).
    """

    severity: Sequence[str] = ()
    status: Sequence[str] = ()
    region: Sequence[str] = ()
    company: Sequence[str] = ()
    violation_type: Sequence[str] = ()
    q: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _where(filters: ListFilters) -> tuple[sql.Composable, list[Any]]:
    clauses: list[sql.Composable] = []
    params: list[Any] = []
    for name in ("severity", "status", "region", "violation_type"):
        values = list(getattr(filters, name))
        if values:
            clauses.append(sql.SQL("{} = ANY(%s)").format(sql.Identifier(name)))
            params.append(values)
    if filters.company:
        clauses.append(
            sql.SQL("company_key = ANY(ARRAY(SELECT msd_company_key(n) FROM unnest(%s::text[]) n))")
        )
        params.append(list(filters.company))
    if filters.q is not None:
        # Backslash is ILIKE's default escape character; like_pattern escapes with it.
        clauses.append(sql.SQL("(company_name ILIKE %s OR violation_type ILIKE %s)"))
        params += [like_pattern(filters.q)] * 2
    if filters.since is not None:
        clauses.append(sql.SQL("detected_at >= %s"))
        params.append(filters.since)
    if filters.until is not None:
        clauses.append(sql.SQL("detected_at < %s"))
        params.append(filters.until)
    if not clauses:
        return sql.SQL("TRUE"), params
    return sql.SQL(" AND ").join(clauses), params


def company_keys(db: Database, names: Sequence[str]) -> tuple[str, ...]:
    """The normalised key of each company name, as the alerts table computes it."""
    with db.reading() as conn:
        rows = conn.execute(
            "SELECT DISTINCT msd_company_key(n) FROM unnest(%s::text[]) n", (list(names),)
        ).fetchall()
        conn.rollback()
    return tuple(sorted(row[0] for row in rows))


def _select() -> sql.Composable:
    return sql.SQL("SELECT {} FROM alerts").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in ALERT_COLUMNS)
    )


def _rows(cursor: psycopg.Cursor) -> list[dict[str, Any]]:
    return [dict(zip(ALERT_COLUMNS, row)) for row in cursor.fetchall()]


@dataclass(frozen=True)
class _Order:
    """One sort order of the list: the SQL it sorts by, and its key read back from a row."""

    expression: str
    key_of_row: Any
    key_of_text: Any


def _amount_key(row: dict[str, Any]) -> str:
    return "-1" if row["amount"] is None else str(row["amount"])


_SEVERITY_RANK = {"LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}

# Each order's expression is what migration 0004 indexes together with id, so that a keyset
# page at any depth is an index range scan. An alert without amount sorts as -1, below every
# amount (amounts are never negative), and severity by rank, LOW < MEDIUM < HIGH < CRITICAL.
_ORDERS: dict[str, _Order] = {
    "detected_at": _Order(
        "detected_at", lambda r: r["detected_at"].isoformat(), datetime.fromisoformat
    ),
    "amount": _Order("coalesce(amount, -1)", _amount_key, Decimal),
    "severity": _Order("msd_severity_rank(severity)", lambda r: _SEVERITY_RANK[r["severity"]], int),
    "company_name": _Order("company_name", lambda r: r["company_name"], str),
    "status": _Order("status", lambda r: r["status"], str),
}
ORDERINGS = tuple(name for field in _ORDERS for name in (field, "-" + field))
DEFAULT_ORDERING = "-detected_at"


def _order(ordering: str) -> tuple[_Order, bool]:
    descending = ordering.startswith("-")
    name = ordering.removeprefix("-")
    if name not in _ORDERS:
        raise ValueError(f"ordering {ordering!r} is not one of {', '.join(ORDERINGS)}")
    return _ORDERS[name], descending


def _order_by(ordering: str) -> sql.Composable:
    order, descending = _order(ordering)
    direction = "DESC" if descending else "ASC"
    return sql.SQL(f"ORDER BY {order.expression} {direction}, id {direction}")


def filters_fingerprint(filters: ListFilters, window_parameters: Sequence[str] = ()) -> str:
    """Short and equal for equal filters whatever their order; a cursor carries it."""
    normal = {
        "severity": sorted(filters.severity),
        "status": sorted(filters.status),
        "region": sorted(filters.region),
        "company": sorted(filters.company),
        "violation_type": sorted(filters.violation_type),
        "q": filters.q,
        "window": list(window_parameters),
    }
    return hashlib.sha256(json.dumps(normal, sort_keys=True).encode()).hexdigest()[:16]


def encode_cursor(alert: dict[str, Any], ordering: str = DEFAULT_ORDERING, scope: str = "") -> str:
    """A cursor after ``alert``: the ordering, the filters' fingerprint, the sort key and id."""
    order, _ = _order(ordering)
    raw = json.dumps([ordering, scope, order.key_of_row(alert), alert["id"]], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, ordering: str, scope: str) -> tuple[Any, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        given_ordering, given_scope, key, pk = json.loads(raw)
        order, _ = _order(given_ordering)
        key, pk = order.key_of_text(str(key)), int(pk)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, ArithmeticError):
        raise InvalidCursor(f"cursor {cursor[:40]!r} is not one this API handed out") from None
    if given_ordering != ordering:
        raise InvalidCursor(
            f"this cursor pages ordering={given_ordering}, not {ordering}: give the same"
            " ordering as the page it came from, or start again without cursor"
        )
    if given_scope != scope:
        raise InvalidCursor(
            "this cursor belongs to other filters: give the same filters and window as the page"
            " it came from, or start again without cursor"
        )
    return key, pk


def list_query(
    filters: ListFilters,
    *,
    limit: int,
    offset: int = 0,
    after: str | None = None,
    ordering: str = DEFAULT_ORDERING,
    scope: str = "",
) -> tuple[sql.Composable, list[Any]]:
    """The list's SELECT and its parameters (see ``list_alerts``)."""
    where, params = _where(filters)
    if after is not None:
        key, pk = _decode_cursor(after, ordering, scope)
        order, descending = _order(ordering)
        comparison = "<" if descending else ">"
        where = sql.SQL("{} AND ({}, id) {} (%s, %s)").format(
            where, sql.SQL(order.expression), sql.SQL(comparison)
        )
        params += [key, pk]
        offset = 0
    query = sql.SQL("{} WHERE {} {} LIMIT %s OFFSET %s").format(
        _select(), where, _order_by(ordering)
    )
    return query, [*params, limit, offset]


def list_alerts(
    db: Database,
    filters: ListFilters,
    *,
    limit: int,
    offset: int = 0,
    after: str | None = None,
    ordering: str = DEFAULT_ORDERING,
    scope: str = "",
) -> list[dict[str, Any]]:
    """Sorted by ``ordering`` then id. ``after`` is a cursor from a previous page with the same
    ordering and filters (their fingerprint is ``scope``); with it, ``offset`` is ignored."""
    query, params = list_query(
        filters, limit=limit, offset=offset, after=after, ordering=ordering, scope=scope
    )
    with db.reading() as conn:
        rows = _rows(conn.execute(query, params))
        conn.rollback()
    return rows


def iter_alerts(
    db: Database,
    filters: ListFilters,
    *,
    ordering: str = DEFAULT_ORDERING,
    columns: Sequence[str] = ALERT_COLUMNS,
    chunk: int = 5000,
) -> Iterator[list[tuple[Any, ...]]]:
    """Every selected alert, in chunks of ``chunk`` rows read through a server-side cursor.

    PostgreSQL keeps the result; this process holds one chunk at a time, so an export of any
    size takes the memory of one chunk. The connection stays taken until the iterator ends or
    is closed.
    """
    where, params = _where(filters)
    query = sql.SQL("SELECT {} FROM alerts WHERE {} {}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in columns), where, _order_by(ordering)
    )
    with db.reading() as conn:
        with conn.cursor(name="msd_export") as cursor:
            cursor.itersize = chunk
            cursor.execute(query, params)
            while rows := cursor.fetchmany(chunk):
                yield rows
        conn.rollback()


def count_alerts(db: Database, filters: ListFilters) -> int:
    where, params = _where(filters)
    with db.reading() as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM alerts WHERE {}").format(where), params)
        count = int(row.fetchone()[0])  # type: ignore[index]
        conn.rollback()
    return count


def get_alert(db: Database, alert_id: str) -> dict[str, Any]:
    with db.reading() as conn:
        rows = _rows(conn.execute(sql.SQL("{} WHERE alert_id = %s").format(_select()), (alert_id,)))
        conn.rollback()
    if not rows:
        raise AlertNotFound(alert_id)
    return rows[0]


def change_status(
    db: Database,
    alert_id: str,
    status: str,
    *,
    actor: str,
    source: str = "api",
    note: str | None = None,
    expected_version: int | None = None,
) -> dict[str, Any]:
    """Move one alert to ``status`` if the transition table allows; the same status is a no-op."""
    with db.transaction(actor=actor, source=source, note=note) as conn:
        rows = _rows(
            conn.execute(
                sql.SQL("{} WHERE alert_id = %s FOR UPDATE").format(_select()), (alert_id,)
            )
        )
        if not rows:
            raise AlertNotFound(alert_id)
        alert = rows[0]
        if expected_version is not None and expected_version != alert["version"]:
            raise StaleVersion(expected_version, alert["version"])
        if alert["status"] == status:
            return alert
        if status not in TRANSITIONS[alert["status"]]:
            raise InvalidTransition(alert["status"], status)

        updated = _rows(
            conn.execute(
                sql.SQL("UPDATE alerts SET status = %s WHERE id = %s RETURNING {}").format(
                    sql.SQL(", ").join(sql.Identifier(c) for c in ALERT_COLUMNS)
                ),
                (status, alert["id"]),
            )
        )
    logger.info("alert %s moved %s -> %s by %s", alert_id, alert["status"], status, actor)
    return updated[0]


@dataclass(frozen=True)
class NewAlert:
    alert_id: str
    company_name: str
    violation_type: str
    severity: str
    detected_at: datetime
    status: str = "PENDING"
    amount: Decimal | None = None
    region: str = ""
    resolved_at: datetime | None = None
    assignee: str | None = None


_NEW_COLUMNS = (
    "alert_id",
    "company_name",
    "violation_type",
    "severity",
    "detected_at",
    "status",
    "amount",
    "region",
    "resolved_at",
    "assignee",
)


def create_alerts(
    db: Database, alerts: Iterable[NewAlert], *, actor: str, source: str = "api"
) -> tuple[list[dict[str, Any]], list[str]]:
    """Insert new alerts in one transaction; return (created, ids that already existed).

    Nothing is inserted when any id already exists, so a client can fix and resend the request.
    """
    items = list(alerts)
    with db.transaction(actor=actor, source=source) as conn:
        existing = [
            row[0]
            for row in conn.execute(
                "SELECT alert_id FROM alerts WHERE alert_id = ANY(%s)",
                ([a.alert_id for a in items],),
            )
        ]
        if existing:
            return [], existing
        insert = sql.SQL("INSERT INTO alerts ({}) VALUES ({}) RETURNING {}").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in _NEW_COLUMNS),
            sql.SQL(", ").join(sql.Placeholder() * len(_NEW_COLUMNS)),
            sql.SQL(", ").join(sql.Identifier(c) for c in ALERT_COLUMNS),
        )
        created = []
        cursor = conn.cursor()
        for item in items:
            cursor.execute(insert, [getattr(item, c) for c in _NEW_COLUMNS])
            created += _rows(cursor)
    return created, []


def alert_history(db: Database, alert_id: str) -> list[dict[str, Any]]:
    """Every recorded change of one alert, oldest first: who, when, from where, before, after."""
    with db.reading() as conn:
        cursor = conn.execute(
            "SELECT event_id, op, actor, source, note, occurred_at, before, after"
            " FROM alert_events WHERE alert_id = %s ORDER BY event_id",
            (alert_id,),
        )
        columns = [c.name for c in cursor.description or []]
        rows = [dict(zip(columns, row)) for row in cursor.fetchall()]
        conn.rollback()
    return rows

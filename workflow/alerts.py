"""Reading and changing alerts in PostgreSQL: the list, one alert, its history, status changes."""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Iterable, Sequence

import psycopg
from psycopg import sql

from workflow.db import Database

__all__ = [
    "ALERT_COLUMNS",
    "TRANSITIONS",
    "AlertNotFound",
    "InvalidCursor",
    "InvalidTransition",
    "ListFilters",
    "StaleVersion",
    "alert_history",
    "change_status",
    "count_alerts",
    "create_alerts",
    "get_alert",
    "list_alerts",
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
    severity: Sequence[str] = ()
    status: Sequence[str] = ()
    region: Sequence[str] = ()


def _where(filters: ListFilters) -> tuple[sql.Composable, list[Any]]:
    clauses: list[sql.Composable] = []
    params: list[Any] = []
    for name in ("severity", "status", "region"):
        values = list(getattr(filters, name))
        if values:
            clauses.append(sql.SQL("{} = ANY(%s)").format(sql.Identifier(name)))
            params.append(values)
    if not clauses:
        return sql.SQL("TRUE"), params
    return sql.SQL(" AND ").join(clauses), params


def _select() -> sql.Composable:
    return sql.SQL("SELECT {} FROM alerts").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in ALERT_COLUMNS)
    )


def _rows(cursor: psycopg.Cursor) -> list[dict[str, Any]]:
    return [dict(zip(ALERT_COLUMNS, row)) for row in cursor.fetchall()]


def encode_cursor(alert: dict[str, Any]) -> str:
    raw = f"{alert['detected_at'].isoformat()}|{alert['id']}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, pk = raw.split("|")
        return datetime.fromisoformat(moment), int(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor(f"cursor {cursor[:40]!r} is not one this API handed out") from None


def list_alerts(
    db: Database, filters: ListFilters, *, limit: int, offset: int = 0, after: str | None = None
) -> list[dict[str, Any]]:
    """Newest first. ``after`` is a cursor from a previous page; with it, ``offset`` is ignored."""
    where, params = _where(filters)
    if after is not None:
        moment, pk = _decode_cursor(after)
        where = sql.SQL("{} AND (detected_at, id) < (%s, %s)").format(where)
        params += [moment, pk]
        offset = 0
    query = sql.SQL("{} WHERE {} ORDER BY detected_at DESC, id DESC LIMIT %s OFFSET %s").format(
        _select(), where
    )
    with db.reading() as conn:
        rows = _rows(conn.execute(query, [*params, limit, offset]))
        conn.rollback()
    return rows


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

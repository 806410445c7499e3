"""Repairing what reconciliation found, only through the replication path.

ClickHouse's figures for an alert are the sum of its signed rows. Where replication worked, an
alert's rows net to exactly one +1 row of its current state (none once deleted); a lost batch
leaves less, a stray row more, a lost update a stale state. For every alert with a row in a
differing day/severity/status cell, on either side, the repair computes two signed multisets of
states: what ClickHouse's rows net to now, and what they must net to now (PostgreSQL at the same
consistent point as in ``olap.reconcile``: the alerts, minus what pending events will still
add). The difference is written as ordinary change events in ``alert_events``: a state ClickHouse
holds too often becomes an event's before-side (a -1 row), a state it lacks an after-side (a +1
row). The replicator then turns them into rows like any other event, so every table and view
moves together and nothing is ever written to ClickHouse aside.

That is exact whatever went wrong, since only net sums matter: missing rows, extra rows and stale
states are all the same difference of multisets. It is idempotent: correction events not yet
replicated are pending events, already counted in what ClickHouse must hold, so a second repair
finds nothing to do, before or after they replicate.

The events keep the audit trail honest: source ``reconcile``, actor ``msd reconcile``, and a note
saying they repair ClickHouse, not the alert. A state known only to ClickHouse (a stray row) is
written with times chosen so that the replicator's rounding gives back exactly that row; each is
checked in PostgreSQL before it is written.

One limit: ClickHouse's VersionedCollapsingMergeTree cancels a +1 and a -1 row of one alert and
version whatever their other values. Replication never writes two different states under one
version, and neither does a repair unless PostgreSQL itself changed a row without its triggers
(the version then stays while the values change); the hourly views stay exact even then.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import psycopg

from olap.reconcile import (
    FIELDS,
    PROJECTION,
    AppliedState,
    Cell,
    ReconcileError,
    at_consistent_point,
    expected_rows,
)
from olap.store import ClickHouseStore
from workflow.db import Database

__all__ = ["RepairResult", "repair_cells"]

logger = logging.getLogger(__name__)

ACTOR = "msd reconcile"
SOURCE = "reconcile"
NOTE = "repairs ClickHouse's copy of this alert (the alert itself did not change)"

# One replicated state of an alert: (alert_pk, alert_id, version, company_key, company_name,
# violation_type, severity, status, region, amount, detected_ms, resolved_ms, resolution_seconds).
State = tuple

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class RepairResult:
    alerts: int
    events: int


@dataclass
class _Expected:
    states: Counter
    sources: dict[State, str]


def repair_cells(db: Database, store: ClickHouseStore, cells: list[Cell]) -> RepairResult:
    """Write the correction events for every alert touching ``cells``; what was written."""
    if not cells:
        return RepairResult(0, 0)
    (held, expected), _ = at_consistent_point(
        db, store, lambda conn, state: _read_alerts(conn, state, store, cells)
    )
    corrections = _corrections(held, expected.states)
    if not corrections:
        logger.info("repair: every alert in the differing cells already nets right")
        return RepairResult(0, 0)
    events = _write_events(db, corrections, expected.sources)
    logger.info(
        "repair: wrote %d correction events for %d alerts; replication applies them",
        events,
        len(corrections),
    )
    return RepairResult(len(corrections), events)


def _read_alerts(
    conn: psycopg.Connection, state: AppliedState, store: ClickHouseStore, cells: list[Cell]
) -> tuple[Counter, _Expected]:
    keys = _cell_arrays(cells)
    pks = _postgres_pks(conn, state, keys) | _clickhouse_pks(store, cells)
    return _clickhouse_states(store, sorted(pks)), _expected_states(conn, state, sorted(pks))


def _cell_arrays(cells: list[Cell]) -> dict[str, list]:
    return {
        "days": [day for day, _, _ in cells],
        "severities": [severity for _, severity, _ in cells],
        "statuses": [status for _, _, status in cells],
    }


def _postgres_pks(conn: psycopg.Connection, state: AppliedState, keys: dict) -> set[int]:
    rows = conn.execute(
        "SELECT DISTINCT alert_pk FROM (" + expected_rows() + ") AS expected"
        " WHERE (date '1970-01-01' + floor(detected_ms / 86400000.0)::int, severity, status)"
        " IN (SELECT * FROM unnest(%(days)s::date[], %(severities)s::text[],"
        " %(statuses)s::text[]))",
        state.params() | keys,
    ).fetchall()
    return {row[0] for row in rows}


def _clickhouse_pks(store: ClickHouseStore, cells: list[Cell]) -> set[int]:
    rows = store.query_rows(
        f"SELECT DISTINCT alert_pk FROM {store.database}.alert_changes"
        " WHERE concat(toString(toDate(detected_at)), '|', toString(severity), '|',"
        " toString(status)) IN {cells:Array(String)}",
        {"cells": [f"{day.isoformat()}|{severity}|{status}" for day, severity, status in cells]},
    )
    return {int(row["alert_pk"]) for row in rows}


def _clickhouse_states(store: ClickHouseStore, pks: list[int]) -> Counter:
    if not pks:
        return Counter()
    rows = store.query_rows(
        "SELECT alert_pk, alert_id, version, company_key, company_name,"
        " toString(violation_type) AS vt, toString(severity) AS sev, toString(status) AS st,"
        " toString(region) AS rg, amount, toUnixTimestamp64Milli(detected_at) AS detected_ms,"
        " toUnixTimestamp64Milli(resolved_at) AS resolved_ms, resolution_seconds,"
        f" sum(sign) AS net FROM {store.database}.alert_changes"
        " WHERE alert_pk IN {pks:Array(Int64)}"
        " GROUP BY alert_pk, alert_id, version, company_key, company_name, vt, sev, st, rg,"
        " amount, detected_ms, resolved_ms, resolution_seconds"
        " HAVING net != 0",
        {"pks": pks},
    )
    held: Counter = Counter()
    for row in rows:
        net = int(row.pop("net"))
        held[_state(tuple(row.values()))] += net
    return held


def _expected_states(conn: psycopg.Connection, state: AppliedState, pks: list[int]) -> _Expected:
    """What ClickHouse must hold for ``pks``, with the jsonb each state can be written from."""
    rows = conn.execute(
        "SELECT alert_pk, alert_id, version, company_key, company_name, violation_type,"
        " severity, status, region, amount, detected_ms, resolved_ms, resolution_seconds,"
        " sum(sign) FROM ("
        + expected_rows("a.id = ANY(%(pks)s)", "e.alert_pk = ANY(%(pks)s)")
        + ") AS expected GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13",
        state.params() | {"pks": pks},
    ).fetchall()
    states: Counter = Counter()
    for row in rows:
        if row[-1] != 0:
            states[_state(row[:-1])] += int(row[-1])
    return _Expected(states, _postgres_sources(conn, pks))


def _postgres_sources(conn: psycopg.Connection, pks: list[int]) -> dict[State, str]:
    """Every state PostgreSQL has a record of for ``pks`` (as jsonb text), by replicated form."""
    projected = PROJECTION.format(
        source=f"SELECT 0 AS sign, r.* FROM jsonb_to_record(known.j) AS r({FIELDS})"
    )
    rows = conn.execute(
        "SELECT known.j::text, p.* FROM ("
        " SELECT to_jsonb(a) AS j FROM alerts a WHERE a.id = ANY(%(pks)s)"
        " UNION ALL SELECT e.before FROM alert_events e"
        "  WHERE e.alert_pk = ANY(%(pks)s) AND e.before IS NOT NULL"
        " UNION ALL SELECT e.after FROM alert_events e"
        "  WHERE e.alert_pk = ANY(%(pks)s) AND e.after IS NOT NULL) AS known,"
        f" LATERAL ({projected}) AS p",
        {"pks": pks},
    ).fetchall()
    return {_state(row[2:]): row[0] for row in rows}


def _state(values: tuple) -> State:
    values = tuple(values)
    amount = Decimal(str(values[9])).quantize(Decimal("0.01"))
    resolved = None if values[11] is None else int(values[11])
    return (
        int(values[0]),
        *values[1:2],
        int(values[2]),
        *values[3:9],
        amount,
        int(values[10]),
        resolved,
        int(values[12]),
    )


def _corrections(held: Counter, expected: Counter) -> dict[int, Counter]:
    """Per alert, the signed states to add so that ClickHouse's rows net to ``expected``."""
    by_alert: dict[int, Counter] = defaultdict(Counter)
    for state in set(held) | set(expected):
        missing = expected.get(state, 0) - held.get(state, 0)
        if missing:
            by_alert[state[0]][state] += missing
    return dict(by_alert)


def _write_events(db: Database, corrections: dict[int, Counter], sources: dict[State, str]) -> int:
    written = 0
    with db.transaction(actor=ACTOR, source=SOURCE, note=NOTE) as conn:
        for alert_pk, states in sorted(corrections.items()):
            removals = [s for s, n in states.items() if n < 0 for _ in range(-n)]
            additions = [s for s, n in states.items() if n > 0 for _ in range(n)]
            while removals or additions:
                before = removals.pop() if removals else None
                after = additions.pop() if additions else None
                _insert_event(conn, alert_pk, before, after, sources)
                written += 1
        conn.execute("SELECT pg_notify('msd_alert_events', '')")
    return written


def _insert_event(
    conn: psycopg.Connection,
    alert_pk: int,
    before: State | None,
    after: State | None,
    sources: dict[State, str],
) -> None:
    op = "U" if before and after else ("D" if before else "I")
    named = before or after
    assert named is not None
    conn.execute(
        "INSERT INTO alert_events (alert_pk, alert_id, op, before, after, actor, source, note)"
        " VALUES (%s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s)",
        (
            alert_pk,
            named[1],
            op,
            _document(conn, before, sources),
            _document(conn, after, sources),
            ACTOR,
            SOURCE,
            NOTE,
        ),
    )


def _document(
    conn: psycopg.Connection, state: State | None, sources: dict[State, str]
) -> str | None:
    if state is None:
        return None
    text = sources.get(state) or json.dumps(_synthesized(state))
    _check_round_trip(conn, text, state)
    return text


def _synthesized(state: State) -> dict[str, Any]:
    """A jsonb alert the replicator turns into exactly ``state``'s row."""
    detected_us, resolved_us = _times(state)
    return {
        "id": state[0],
        "alert_id": state[1],
        "version": state[2],
        "company_key": state[3],
        "company_name": state[4],
        "violation_type": state[5],
        "severity": state[6],
        "status": state[7],
        "region": state[8],
        "amount": str(state[9]),
        "detected_at": _iso(detected_us),
        "resolved_at": None if resolved_us is None else _iso(resolved_us),
    }


def _times(state: State) -> tuple[int, int | None]:
    """Microsecond times that round to the row's milliseconds and whole resolution seconds."""
    detected_ms, resolved_ms, seconds = state[10], state[11], state[12]
    detected = _rounding_to(detected_ms, 1_000)
    if resolved_ms is None:
        return detected_ms * 1_000, None
    resolved = _rounding_to(resolved_ms, 1_000)
    span = _rounding_to(seconds, 1_000_000)
    low = max(resolved[0], detected[0] + span[0])
    high = min(resolved[1], detected[1] + span[1])
    if low > high:
        raise ReconcileError(
            f"ClickHouse holds a row of alert {state[1]!r} (alert_pk {state[0]}) whose"
            f" resolution_seconds {seconds} does not match its times; no event can cancel it"
        )
    resolved_us = low
    detected_us = max(detected[0], resolved_us - span[1])
    return detected_us, resolved_us


def _rounding_to(whole: int, unit: int) -> tuple[int, int]:
    """The integers y with round_half_away_from_zero(y / unit) == whole (PostgreSQL's ::bigint)."""
    half = unit // 2
    if whole > 0:
        return whole * unit - half, whole * unit + half - 1
    if whole < 0:
        return whole * unit - half + 1, whole * unit + half
    return -half + 1, half - 1


def _iso(microseconds: int) -> str:
    return (_EPOCH + timedelta(microseconds=microseconds)).isoformat()


def _check_round_trip(conn: psycopg.Connection, document: str, state: State) -> None:
    row = conn.execute(
        PROJECTION.format(
            source=f"SELECT 1 AS sign, r.* FROM jsonb_to_record(%s::jsonb) AS r({FIELDS})"
        ),
        (document,),
    ).fetchone()
    assert row is not None
    if _state(row[1:]) != state:
        raise ReconcileError(
            f"the correction event for alert {state[1]!r} would not replicate as the row it"
            f" must cancel or add ({_state(row[1:])} instead of {state}); nothing was written"
        )

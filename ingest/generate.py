"""Seeded demo alerts in the native schema, shaped after the real CFPB and Violation Tracker files.

Distributions (each drawn from ``random.Random(seed)``, so one seed always gives the same rows
for the same ``now``; ``now`` defaults to the start of the current UTC day):

* companies: 2,000 names made from word lists ("Northwind Savings Bank"), fixed for every
  seed. Alerts fall on them with a Zipf-like weight 1/rank^1.3, so the top three companies get
  about 45% of all alerts, as the three credit bureaus hold 5,386 of the 9,690 CFPB complaints.
  About 6% of companies are also written a second way ("NORTHWIND SAVINGS BANK N.A." for
  "Northwind Savings Bank, N.A."), on a third of their alerts, so company_key has work to do.
* violation types: 41 names with weights; credit reporting issues lead, as in CFPB's issues,
  then workplace safety, wages and environment, as in Violation Tracker's offense groups.
* region: the 50 states and DC weighted by 2020 population; 3% have none (286 of 9,690 CFPB
  complaints have no state).
* severity: LOW 40%, MEDIUM 35%, HIGH 20%, CRITICAL 5%.
* amount: none on 30% of alerts (CFPB has no amounts at all); otherwise log-normal with a median
  near $200,000 (Violation Tracker's median penalty), higher for higher severities, kept
  within that file's range, $5,000 to $20.8 bn. Sigma is 1.8 (90th percentile about $2 M):
  the file's own 90th percentile, $12 M, is inflated by exports that kept only the largest
  penalties of 13 agencies.
* detected_at: over the last ``days`` days; weekdays carry about four times a weekend day,
  most alerts fall in office hours.
* status by age: new alerts are mostly PENDING or REVIEWING; of those in the oldest sixth of
  the window about 70% are RESOLVED and 11% DISMISSED. RESOLVED ones get resolved_at hours to
  days after detected_at (log-normal, median about 30 hours), never after ``now``. Worked
  alerts (REVIEWING, RESOLVED, DISMISSED) have an assignee.
"""

from __future__ import annotations

import logging
import math
import random
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from itertools import accumulate
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa

from ingest.formats import load_format
from ingest.pipeline import load_source
from ingest.readers import Item, Source
from ingest.rejects import RejectWriter
from ingest.report import IngestReport
from ingest.vocabulary import (
    ASSIGNEES,
    COMPANY_KINDS,
    COMPANY_PLACES,
    FINANCIAL_KINDS,
    FINANCIAL_TRADES,
    OTHER_TRADES,
    STATE_POPULATION,
    VIOLATION_TYPES,
)
from workflow.db import Database

__all__ = ["BATCH_ROWS", "SCHEMA", "company_names", "generate_alerts", "load_generated"]

logger = logging.getLogger(__name__)

BATCH_ROWS = 100_000
COMPANIES = 2_000
_UTC = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema([
    ("alert_id", pa.string()), ("company_name", pa.string()), ("violation_type", pa.string()),
    ("severity", pa.string()), ("status", pa.string()), ("amount", pa.decimal128(15, 2)),
    ("region", pa.string()), ("detected_at", _UTC), ("resolved_at", _UTC),
    ("assignee", pa.string()),
])

# The company list is the same for every seed: one market, many samples of its alerts.
_COMPANY_SEED = 20_240_101
_ZIPF_EXPONENT = 1.3
_VARIANT_SHARE = 0.06
_VARIANT_USE = 0.33
_TRADES = (*FINANCIAL_TRADES, *OTHER_TRADES)
_SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
_SEVERITY_WEIGHTS = (40, 35, 20, 5)
# Added to the log of the amount: weighted by the severity mix they average to zero.
_SEVERITY_SHIFT = {"LOW": -0.6, "MEDIUM": 0.0, "HIGH": 0.8, "CRITICAL": 1.6}
_MEDIAN_AMOUNT = 200_000
_AMOUNT_SIGMA = 1.8
_AMOUNT_RANGE = (5_000.0, 20_800_000_000.0)
_NO_AMOUNT = 0.30
_NO_REGION = 0.03
# Monday first; a weekday carries about four times a Sunday.
_WEEKDAY_WEIGHTS = (1.15, 1.1, 1.05, 1.0, 0.9, 0.35, 0.25)
_HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 3, 5, 9, 12, 12, 11, 9, 11, 12, 11, 9, 6, 4, 3, 2, 2, 1, 1)
_RESOLVE_MEDIAN_HOURS = 30.0
_MICROS = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def company_names() -> list[tuple[str, str | None]]:
    """The 2,000 companies, most alerts first: (name, second spelling or None)."""
    rng = random.Random(_COMPANY_SEED)
    names: dict[str, None] = {}
    while len(names) < COMPANIES:
        trade = rng.choice(_TRADES)
        financial = trade in FINANCIAL_TRADES
        kind = rng.choice([*FINANCIAL_KINDS, *COMPANY_KINDS] if financial else COMPANY_KINDS)
        if kind.split(" ")[0] not in trade:
            names[f"{rng.choice(COMPANY_PLACES)} {trade} {kind}"] = None

    return [(name, _respelled(name) if rng.random() < _VARIANT_SHARE else None) for name in names]


def generate_alerts(
    count: int, *, seed: int = 7, days: int = 60, now: datetime | None = None
) -> Iterator[pa.RecordBatch]:
    """``count`` demo alerts as record batches of up to BATCH_ROWS rows in the native schema."""
    for columns in _generated_columns(count, seed=seed, days=days, now=now):
        arrays = [pa.array(columns[field.name], field.type) for field in SCHEMA]
        yield pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)


def load_generated(
    db: Database,
    count: int,
    *,
    seed: int = 7,
    days: int = 60,
    now: datetime | None = None,
    actor: str = "generator",
    progress: bool = False,
) -> IngestReport:
    """Generate ``count`` demo alerts and load them through the same COPY path as files."""
    started = time.perf_counter()
    label = f"generated(count={count}, seed={seed})"
    # The generated values are already typed: they go to the mapper as they are, not through
    # Arrow and back.
    rows = _generated_rows(_generated_columns(count, seed=seed, days=days, now=now))
    source = Source(label, SCHEMA.names, rows)
    rejects = RejectWriter(Path.cwd() / f"generated-{seed}.rejects.csv")
    try:
        report = load_source(db, source, load_format("native"), rejects, actor=actor,
                             progress=progress)
    finally:
        rejects.close()
    return IngestReport.of([report], time.perf_counter() - started)


class _Tables:
    """Cumulative weights for the draws, computed once per run."""

    def __init__(self, end: datetime, days: int) -> None:
        self.end = _micros(end)
        self.window = days * 86_400 * _MICROS
        self.days = days
        self.companies = company_names()
        weights = [1 / rank ** _ZIPF_EXPONENT for rank in range(1, COMPANIES + 1)]
        self.company_weights = list(accumulate(weights))
        self.violations = [name for name, _ in VIOLATION_TYPES]
        self.violation_weights = list(accumulate(w for _, w in VIOLATION_TYPES))
        self.states = [code for code, _ in STATE_POPULATION]
        self.state_weights = list(accumulate(w for _, w in STATE_POPULATION))
        self.day_starts, self.day_weights = self._days(end)
        self.hour_weights = list(accumulate(_HOUR_WEIGHTS))

    def _days(self, end: datetime) -> tuple[list[int], list[float]]:
        # The last day is the one holding the last microsecond before ``end``.
        last = (end - timedelta(microseconds=1)).replace(hour=0, minute=0, second=0,
                                                         microsecond=0)
        starts = [last - timedelta(days=back) for back in range(self.days)]
        weights = [_WEEKDAY_WEIGHTS[start.weekday()] for start in starts]
        return [_micros(start) for start in starts], list(accumulate(weights))


def _generated_columns(
    count: int, *, seed: int, days: int, now: datetime | None
) -> Iterator[dict[str, list[Any]]]:
    """The columns of each batch of up to BATCH_ROWS alerts, times in microseconds since 1970."""
    if count < 0 or days < 1:
        raise ValueError(f"count must be >= 0 and days >= 1, not count={count}, days={days}")

    rng = random.Random(seed)
    end = _utc(now) if now else datetime.now(timezone.utc).replace(hour=0, minute=0, second=0,
                                                                  microsecond=0)
    tables = _Tables(end, days)
    for first in range(0, count, BATCH_ROWS):
        yield _columns(rng, tables, seed, first, min(BATCH_ROWS, count - first))


def _generated_rows(batches: Iterator[dict[str, list[Any]]]) -> Iterator[Item]:
    number = 0
    for columns in batches:
        columns["detected_at"] = [_moment(micros) for micros in columns["detected_at"]]
        columns["resolved_at"] = [_moment(micros) for micros in columns["resolved_at"]]
        for row in zip(*(columns[name] for name in SCHEMA.names)):
            number += 1
            yield number, row


def _moment(micros: int | None) -> datetime | None:
    return None if micros is None else _EPOCH + timedelta(microseconds=micros)


def _columns(
    rng: random.Random, tables: _Tables, seed: int, first: int, size: int
) -> dict[str, list[Any]]:
    ranks = rng.choices(range(COMPANIES), cum_weights=tables.company_weights, k=size)
    severities = rng.choices(_SEVERITIES, cum_weights=list(accumulate(_SEVERITY_WEIGHTS)), k=size)
    detected = _detected_micros(rng, tables, size)
    statuses = [_status(rng, tables, moment) for moment in detected]

    columns: dict[str, list[Any]] = {
        "alert_id": [f"demo-{seed}-{first + n + 1}" for n in range(size)],
        "company_name": [_company(rng, tables.companies[rank]) for rank in ranks],
        "violation_type": rng.choices(tables.violations, cum_weights=tables.violation_weights,
                                      k=size),
        "severity": severities,
        "status": statuses,
        "amount": [_amount(rng, severity) for severity in severities],
        "region": _regions(rng, tables, size),
        "detected_at": detected,
        "resolved_at": [_resolved(rng, tables, moment, status)
                        for moment, status in zip(detected, statuses)],
        "assignee": [None if status == "PENDING" else rng.choice(ASSIGNEES) for status in statuses],
    }
    return columns


def _detected_micros(rng: random.Random, tables: _Tables, size: int) -> list[int]:
    days = rng.choices(tables.day_starts, cum_weights=tables.day_weights, k=size)
    hours = rng.choices(range(24), cum_weights=tables.hour_weights, k=size)
    moments = [day + int((hour + rng.random()) * 3600 * _MICROS) for day, hour in zip(days, hours)]
    # A moment later than now on the current day moves back a day.
    return [m if m < tables.end else m - 86_400 * _MICROS for m in moments]


def _status(rng: random.Random, tables: _Tables, detected: int) -> str:
    age = (tables.end - detected) / tables.window
    resolved, dismissed = 0.05 + 0.70 * age, 0.02 + 0.10 * age
    reviewing = 0.03 + 0.25 * (1 - age)
    draw = rng.random()
    if draw < resolved:
        return "RESOLVED"
    if draw < resolved + dismissed:
        return "DISMISSED"
    return "REVIEWING" if draw < resolved + dismissed + reviewing else "PENDING"


def _resolved(rng: random.Random, tables: _Tables, detected: int, status: str) -> int | None:
    if status != "RESOLVED":
        return None

    hours = rng.lognormvariate(math.log(_RESOLVE_MEDIAN_HOURS), 1.0)
    resolved = detected + int(hours * 3600 * _MICROS)
    # Not after now: a late resolution lands somewhere between detection and now instead.
    if resolved < tables.end:
        return resolved
    return detected + int(rng.random() * (tables.end - detected))


def _amount(rng: random.Random, severity: str) -> Decimal | None:
    if rng.random() < _NO_AMOUNT:
        return None

    mu = math.log(_MEDIAN_AMOUNT) + _SEVERITY_SHIFT[severity]
    value = min(max(rng.lognormvariate(mu, _AMOUNT_SIGMA), _AMOUNT_RANGE[0]), _AMOUNT_RANGE[1])
    return Decimal(round(value * 100)) / 100


def _regions(rng: random.Random, tables: _Tables, size: int) -> list[str]:
    states = rng.choices(tables.states, cum_weights=tables.state_weights, k=size)
    return [state if rng.random() >= _NO_REGION else "" for state in states]


def _company(rng: random.Random, spellings: tuple[str, str | None]) -> str:
    name, variant = spellings
    if variant is not None and rng.random() < _VARIANT_USE:
        return variant
    return name


def _respelled(name: str) -> str:
    # Capitals, and the comma before the ending dropped or added with the ending's dots
    # dropped: spelled differently, the same company_key ("ACME BANK N.A", "Acme Bank, N.A.").
    head, _, ending = name.rpartition(" ")
    if "," in name:
        return name.replace(",", "").upper()
    if ending.endswith("."):
        return f"{head}, {ending.replace('.', '')}".upper()
    return name.upper()


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)

"""The validated alert: what one good row becomes, checked against the ``alerts`` table's rules."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Literal

import msgspec

from ingest.errors import RowError
from workflow.alert_times import time_problem

__all__ = ["ALERT_FIELDS", "Alert", "REQUIRED_FIELDS", "validate_alert"]

Severity = Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"]
Status = Literal["PENDING", "REVIEWING", "RESOLVED", "DISMISSED"]
UtcTime = Annotated[datetime, msgspec.Meta(tz=True)]

CENT = Decimal("0.01")
# numeric(15, 2) holds at most 13 digits before the point.
AMOUNT_LIMIT = Decimal(10) ** 13
_ENUM_FIELDS = ("severity", "status")
_ALLOWED = {"severity": Severity.__args__, "status": Status.__args__}
_AT_PATH = re.compile(r" - at `\$\.(\w+)`")


class Alert(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One alert as the source states it; lengths and enums are the table's CHECK constraints."""

    alert_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    company_name: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    violation_type: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    severity: Severity
    detected_at: UtcTime
    status: Status = "PENDING"
    amount: Decimal | None = None
    region: Annotated[str, msgspec.Meta(max_length=100)] = ""
    resolved_at: UtcTime | None = None
    assignee: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None

    def __post_init__(self) -> None:
        if self.amount is None:
            return

        if self.amount < 0:
            raise ValueError(f"amount {self.amount} is negative - at `$.amount`")
        # Compared before rounding too: quantize() itself fails on numbers of 28 digits or more.
        if self.amount >= AMOUNT_LIMIT or self.amount.quantize(CENT, ROUND_HALF_UP) >= AMOUNT_LIMIT:
            raise ValueError(
                f"amount {self.amount} has more than 13 digits before the point - at `$.amount`"
            )


ALERT_FIELDS: tuple[str, ...] = Alert.__struct_fields__
REQUIRED_FIELDS: tuple[str, ...] = (
    "alert_id", "company_name", "violation_type", "severity", "detected_at"
)


def validate_alert(values: dict[str, Any], *, now: datetime) -> Alert:
    """The alert for mapped ``values`` (None meaning absent), or RowError naming field and value.

    Its times obey the rules every alert's do (workflow.alert_times), judged at ``now``.
    """
    alert = _converted(values)
    if problem := time_problem(alert.detected_at, alert.resolved_at, now=now):
        raise RowError(" ".join(problem))
    return alert


def _converted(values: dict[str, Any]) -> Alert:
    if None in values.values():
        present = {name: value for name, value in values.items() if value is not None}
    else:
        present = values.copy()
    for name in _ENUM_FIELDS:
        value = present.get(name)
        if isinstance(value, str):
            present[name] = value.strip().upper()

    try:
        return msgspec.convert(present, Alert)
    except msgspec.ValidationError as error:
        raise RowError(_reason(str(error), values)) from None


def _reason(message: str, values: dict[str, Any]) -> str:
    match = _AT_PATH.search(message)
    if match is None:
        missing = re.search(r"missing required field `(\w+)`", message)
        return f"{missing.group(1)} is missing" if missing else message

    name = match.group(1)
    if name == "amount":
        return message[: match.start()]
    return f"{name} {_shown(values.get(name))} {_plain(message[: match.start()], name)}"


def _plain(detail: str, name: str) -> str:
    longest = re.fullmatch(r"Expected `str` of length <= (\d+)", detail)
    if longest:
        return f"is longer than {longest.group(1)} characters"
    if detail.startswith("Invalid enum value"):
        return "is not one of " + ", ".join(_ALLOWED[name])
    if detail == "Expected `str` of length >= 1":
        return "is empty"
    return f"is not valid: {detail}"


def _shown(value: Any) -> str:
    text = str(value)
    if len(text) > 60:
        return f"{text[:40]!r}... ({len(text)} characters)"
    return repr(text)

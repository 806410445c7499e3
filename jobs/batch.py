"""Set-wise batch changes of alerts: one UPDATE per chunk, every change through the triggers.

A batch names alert ids and one action. Each chunk is one statement that changes exactly the
alerts whose current status allows the action, so the audit trail and replication see each
change once, attributed to the batch's actor with source ``batch`` and its note.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import psycopg

from workflow.alerts import TRANSITIONS
from workflow.db import Database

__all__ = [
    "ACTIONS",
    "CHUNK_SIZE",
    "MAX_LISTED_OUTCOMES",
    "Action",
    "BatchResult",
    "ChunkResult",
    "apply_chunk",
    "chunks",
    "dedupe",
    "run_batch",
]

logger = logging.getLogger(__name__)

CHUNK_SIZE = 5_000
MAX_LISTED_OUTCOMES = 1_000
OPEN = ("PENDING", "REVIEWING")
CLOSED = ("RESOLVED", "DISMISSED")


@dataclass(frozen=True)
class Action:
    """What a batch does: move to ``target`` status (or set the assignee) from ``allowed_from``."""

    name: str
    target: str | None
    allowed_from: tuple[str, ...]


# The old dashboard's batch only started reviews; reopening is kept apart from review so that a
# closed alert is never reopened by a batch that meant to pick up new work.
ACTIONS: dict[str, Action] = {
    "review": Action("review", "REVIEWING", ("PENDING",)),
    "resolve": Action("resolve", "RESOLVED", OPEN),
    "dismiss": Action("dismiss", "DISMISSED", OPEN),
    "reopen": Action("reopen", "REVIEWING", CLOSED),
    "assign": Action("assign", None, OPEN),
}

for _action in ACTIONS.values():
    assert _action.target is None or all(
        _action.target in TRANSITIONS[s] for s in _action.allowed_from
    ), f"batch action {_action.name} allows a move the transition table forbids"


@dataclass
class ChunkResult:
    """What one chunk did: counts by outcome and the alerts that did not change."""

    changed: int = 0
    unchanged: int = 0
    not_found: int = 0
    invalid_transition: int = 0
    outcomes: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "changed": self.changed,
            "unchanged": self.unchanged,
            "not_found": self.not_found,
            "invalid_transition": self.invalid_transition,
        }


@dataclass
class BatchResult(ChunkResult):
    """The whole batch: the chunk counts summed, the outcome list capped, duplicates counted."""

    duplicates: int = 0

    def add(self, chunk: ChunkResult) -> None:
        for name, value in chunk.counts().items():
            setattr(self, name, getattr(self, name) + value)
        room = MAX_LISTED_OUTCOMES - len(self.outcomes)
        self.outcomes += chunk.outcomes[: max(room, 0)]


def dedupe(alert_ids: Sequence[str]) -> list[str]:
    """The ids once each, in the order first given."""
    return list(dict.fromkeys(alert_ids))


def chunks(alert_ids: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(alert_ids), size):
        yield list(alert_ids[start : start + size])


def _update_sql(action: Action) -> str:
    # Rows are locked in id order so that two batches over the same alerts never deadlock. The
    # locked ids go to the UPDATE as one array, which it finds through the primary key; joined
    # as a subquery instead, the planner hashes them against a scan of the whole table.
    change = "assignee = %(assignee)s" if action.target is None else "status = %(target)s"
    same_assignee = " AND assignee IS DISTINCT FROM %(assignee)s" if action.target is None else ""
    return (
        f"UPDATE alerts SET {change} WHERE id = ANY(ARRAY("
        "SELECT id FROM alerts WHERE alert_id = ANY(%(ids)s)"
        f" AND status = ANY(%(allowed)s){same_assignee} ORDER BY id FOR UPDATE))"
        " RETURNING alert_id"
    )


def apply_chunk(
    conn: psycopg.Connection, alert_ids: list[str], action: Action, assignee: str | None = None
) -> ChunkResult:
    """Apply ``action`` to distinct ``alert_ids`` in the caller's (attributed) transaction."""
    params = {
        "ids": alert_ids,
        "allowed": list(action.allowed_from),
        "target": action.target,
        "assignee": assignee,
    }
    changed = {row[0] for row in conn.execute(_update_sql(action), params)}

    rest = [alert_id for alert_id in alert_ids if alert_id not in changed]
    current = _current(conn, rest)
    result = ChunkResult(changed=len(changed))
    for alert_id in rest:
        _classify(result, alert_id, current.get(alert_id), action, assignee)
    return result


def _current(conn: psycopg.Connection, alert_ids: list[str]) -> dict[str, tuple[str, str | None]]:
    if not alert_ids:
        return {}
    rows = conn.execute(
        "SELECT alert_id, status, assignee FROM alerts WHERE alert_id = ANY(%s)", (alert_ids,)
    )
    return {alert_id: (status, assignee) for alert_id, status, assignee in rows}


def _classify(
    result: ChunkResult,
    alert_id: str,
    current: tuple[str, str | None] | None,
    action: Action,
    assignee: str | None,
) -> None:
    if current is None:
        outcome, status = "not_found", None
    elif _already_there(current, action, assignee):
        outcome, status = "unchanged", current[0]
    else:
        outcome, status = "invalid_transition", current[0]

    setattr(result, outcome, getattr(result, outcome) + 1)
    if len(result.outcomes) < MAX_LISTED_OUTCOMES:
        result.outcomes.append({"alert_id": alert_id, "outcome": outcome, "status": status})


def _already_there(current: tuple[str, str | None], action: Action, assignee: str | None) -> bool:
    status, current_assignee = current
    if action.target is None:
        return current_assignee == assignee
    return status == action.target


def run_batch(
    db: Database,
    alert_ids: Sequence[str],
    action: str = "review",
    *,
    actor: str,
    assignee: str | None = None,
    note: str | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> BatchResult:
    """Apply one action to many alerts directly, one transaction per chunk (no task record)."""
    chosen = ACTIONS[action]
    unique = dedupe(alert_ids)
    result = BatchResult(duplicates=len(alert_ids) - len(unique))

    for chunk in chunks(unique, chunk_size):
        with db.transaction(actor=actor, source="batch", note=note) as conn:
            result.add(apply_chunk(conn, chunk, chosen, assignee))
    logger.info("batch %s by %s over %d alerts: %s", action, actor, len(unique), result.counts())
    return result

"""Batch task records in PostgreSQL (table ``batch_tasks``): creation, progress and the end."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from jobs.batch import MAX_LISTED_OUTCOMES, ChunkResult
from workflow.db import Database

__all__ = [
    "BatchRequest",
    "BatchTask",
    "Claim",
    "IdempotencyConflict",
    "begin_attempt",
    "claim_chunk",
    "create_task",
    "delete_task",
    "fail_task",
    "finish_task",
    "get_task",
    "record_chunk",
    "unfinished_task_ids",
]

logger = logging.getLogger(__name__)

_COLUMNS = (
    "task_id, idempotency_key, request, state, total, chunk_size, chunks_done, processed,"
    " counts, outcomes, error, attempts, runs, created_at, started_at, finished_at"
)
# The same without the request's ids: a batch of 100,000 ids is about 1.5 MB of JSON, which a
# client polling for progress every few milliseconds would otherwise make PostgreSQL send and
# Python parse each time, competing for the CPU with the batch itself.
_COLUMNS_WITHOUT_IDS = _COLUMNS.replace(" request,", " request - 'alert_ids',")


class IdempotencyConflict(ValueError):
    """The idempotency key already names a task with a different request."""


@dataclass(frozen=True)
class BatchRequest:
    """A validated batch request; ``alert_ids`` holds each id once."""

    alert_ids: list[str]
    action: str = "review"
    actor: str = "api"
    assignee: str | None = None
    note: str | None = None
    duplicates: int = 0
    # How the request arrived, for the audit trail: "batch token:12", "batch session".
    source: str = "batch"

    def as_json(self) -> dict[str, Any]:
        return {
            "alert_ids": self.alert_ids,
            "action": self.action,
            "actor": self.actor,
            "assignee": self.assignee,
            "note": self.note,
            "duplicates": self.duplicates,
            "source": self.source,
        }

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_json(), sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class BatchTask:
    task_id: str
    idempotency_key: str | None
    request: dict[str, Any]
    state: str
    total: int
    chunk_size: int
    chunks_done: int
    processed: int
    counts: dict[str, int]
    outcomes: list[dict[str, Any]]
    error: str | None
    attempts: int
    runs: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def chunks_total(self) -> int:
        return -(-self.total // self.chunk_size)

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")


def create_task(
    db: Database, request: BatchRequest, *, chunk_size: int, idempotency_key: str | None = None
) -> tuple[BatchTask, bool]:
    """Record a queued task; with a key already used for this request, return that task."""
    counts = {"changed": 0, "unchanged": 0, "not_found": 0, "invalid_transition": 0}
    counts["duplicates"] = request.duplicates
    with db.transaction(source="batch") as conn:
        row = conn.execute(
            "INSERT INTO batch_tasks (task_id, idempotency_key, request_hash, request, total,"
            " chunk_size, counts) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            f" ON CONFLICT (idempotency_key) DO NOTHING RETURNING {_COLUMNS_WITHOUT_IDS}",
            (
                uuid.uuid4().hex,
                idempotency_key,
                request.digest(),
                Jsonb(request.as_json()),
                len(request.alert_ids),
                chunk_size,
                Jsonb(counts),
            ),
        ).fetchone()
        if row is not None:
            return replace(_task(row), request=request.as_json()), True
        return _same_request(conn, idempotency_key, request), False


def _same_request(conn: psycopg.Connection, key: str | None, request: BatchRequest) -> BatchTask:
    row = conn.execute(
        f"SELECT {_COLUMNS_WITHOUT_IDS}, request_hash FROM batch_tasks WHERE idempotency_key = %s",
        (key,),
    ).fetchone()
    assert row is not None, "ON CONFLICT on the key means a row with that key exists"
    if row[-1] != request.digest():
        raise IdempotencyConflict(
            f"idempotency_key {key!r} was used for task {row[0]} with a different request;"
            " send that request again or use a new key"
        )
    return replace(_task(row[:-1]), request=request.as_json())


def _task(row: tuple[Any, ...]) -> BatchTask:
    return BatchTask(*row)


def get_task(db: Database, task_id: str, *, alert_ids: bool = True) -> BatchTask | None:
    """The task; with ``alert_ids=False`` its request lacks the ids (for reads of progress)."""
    columns = _COLUMNS if alert_ids else _COLUMNS_WITHOUT_IDS
    with db.reading() as conn:
        row = conn.execute(
            f"SELECT {columns} FROM batch_tasks WHERE task_id = %s", (task_id,)
        ).fetchone()
    return None if row is None else _task(row)


def delete_task(db: Database, task_id: str) -> None:
    """Forget a task that could not be queued, so that its idempotency key can be sent again."""
    with db.transaction(source="batch") as conn:
        conn.execute("DELETE FROM batch_tasks WHERE task_id = %s AND state = 'queued'", (task_id,))


def begin_attempt(db: Database, task_id: str, *, new_run: bool, max_runs: int) -> BatchTask | None:
    """Count one more attempt of an unfinished task and mark it running; None when finished.

    ``new_run`` says that this attempt is the first of a delivery that holds the task's lock: it
    also counts a run. A task that already had ``max_runs`` runs, none of which finished it, is
    failed here instead (and returned so): each of those runs died mid-way, as another likely would.
    """
    with db.transaction(source="batch") as conn:
        row = conn.execute(
            "SELECT runs, processed, total FROM batch_tasks"
            " WHERE task_id = %s AND state IN ('queued', 'running') FOR UPDATE",
            (task_id,),
        ).fetchone()
        if row is None:
            return None
        if new_run and row[0] >= max_runs:
            return _fail_in(conn, task_id, _interrupted_reason(*row))
        row = conn.execute(
            "UPDATE batch_tasks SET state = 'running', attempts = attempts + 1,"
            " runs = runs + %s, started_at = coalesce(started_at, now()), updated_at = now()"
            f" WHERE task_id = %s RETURNING {_COLUMNS}",
            (int(new_run), task_id),
        ).fetchone()
    return _task(row)


def _interrupted_reason(runs: int, processed: int, total: int) -> str:
    those = "1 run that" if runs == 1 else f"{runs} runs that each"
    return (
        f"stopped after {those} ended without finishing it (the process running it died or was"
        f" killed mid-run), at {processed:,} of {total:,} alerts; not run again."
        " Look in the worker's log for what stopped it. The alerts already changed stay changed:"
        " send the batch again with a new idempotency_key to change the rest."
    )


def _fail_in(conn: psycopg.Connection, task_id: str, reason: str) -> BatchTask | None:
    row = conn.execute(
        "UPDATE batch_tasks SET state = 'failed', error = %s, finished_at = now(),"
        f" updated_at = now() WHERE task_id = %s RETURNING {_COLUMNS_WITHOUT_IDS}",
        (reason, task_id),
    ).fetchone()
    return None if row is None else _task(row)


@dataclass(frozen=True)
class Claim:
    """The task's tallies so far, read under the row lock the chunk's transaction holds."""

    counts: dict[str, int]
    listed: int


def claim_chunk(conn: psycopg.Connection, task_id: str, index: int) -> Claim | None:
    """Lock the task row; its tallies when chunk ``index`` is the next one not yet committed."""
    row = conn.execute(
        "SELECT chunks_done, counts, jsonb_array_length(outcomes) FROM batch_tasks"
        " WHERE task_id = %s FOR UPDATE",
        (task_id,),
    ).fetchone()
    if row is None or row[0] != index:
        return None
    return Claim(counts=row[1], listed=row[2])


def record_chunk(
    conn: psycopg.Connection,
    task_id: str,
    claim: Claim,
    index: int,
    processed: int,
    result: ChunkResult,
) -> None:
    """Add one chunk's counts and outcomes, in the transaction that applied the chunk."""
    counts = dict(claim.counts)
    for name, value in result.counts().items():
        counts[name] = counts.get(name, 0) + value
    listed = result.outcomes[: max(MAX_LISTED_OUTCOMES - claim.listed, 0)]

    conn.execute(
        "UPDATE batch_tasks SET chunks_done = %s, processed = %s, counts = %s,"
        " outcomes = outcomes || %s, updated_at = now() WHERE task_id = %s",
        (index + 1, processed, Jsonb(counts), Jsonb(listed), task_id),
    )


def finish_task(db: Database, task_id: str) -> None:
    with db.transaction(source="batch") as conn:
        conn.execute(
            "UPDATE batch_tasks SET state = 'done', error = NULL, finished_at = now(),"
            " updated_at = now() WHERE task_id = %s",
            (task_id,),
        )


def fail_task(db: Database, task_id: str, reason: str) -> None:
    with db.transaction(source="batch") as conn:
        _fail_in(conn, task_id, reason)


def unfinished_task_ids(db: Database) -> list[str]:
    with db.reading() as conn:
        rows = conn.execute(
            "SELECT task_id FROM batch_tasks WHERE state IN ('queued', 'running')"
            " ORDER BY created_at"
        ).fetchall()
    return [row[0] for row in rows]

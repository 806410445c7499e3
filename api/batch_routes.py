"""Batch changes of alerts as tasks: ``POST /api/alerts/batch_process/`` and ``/api/tasks/``.

The replaced dashboard answered the batch with ``task_id`` and ``status``; so does this one,
with 202, and the task then runs on Taskiq (a Redis stream and ``msd worker`` in server mode,
the serving process itself in embedded mode). Its state is read back from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody

from api.auth import audit_source, principal_of
from api.errors import ApiError, nul_problem
from jobs.batch import ACTIONS, dedupe
from jobs.queue import BatchQueue, QueueUnavailable
from jobs.task_state import BatchRequest, BatchTask, IdempotencyConflict, get_task
from msd.runtime import Services
from workflow.accounts import Principal

__all__ = ["batch_handlers"]

logger = logging.getLogger(__name__)

MAX_IDS = 100_000
MAX_ID_LENGTH = 128
MAX_NOTE_LENGTH = 2_000
MAX_ASSIGNEE_LENGTH = 200
MAX_KEY_LENGTH = 200
FIELDS = ("alert_ids", "action", "assignee", "note", "idempotency_key")
# Another process will take the task once Redis answers again; a client may retry soon.
RETRY_AFTER_SECONDS = "5"
# Tells a field the body left out from one it sent as null.
_MISSING = object()


class TaskAccepted(msgspec.Struct):
    task_id: str
    status: str


class TaskOut(msgspec.Struct):
    task_id: str
    status: str
    state: str
    action: str
    progress: dict[str, Any]
    counts: dict[str, int]
    outcomes: list[dict[str, Any]]
    outcomes_listed: int
    error: str | None
    attempts: int
    runs: int
    timings: dict[str, Any]


async def take_over_unfinished_tasks(app: Any) -> None:
    """At start of an embedded serving process: finish batches a previous one left running."""
    await _queue(app.state).take_over()


async def close_batch_queue(app: Any) -> None:
    queue = app.state.get("batch_queue")
    if queue is not None:
        await queue.close()


def _queue(state: State) -> BatchQueue:
    """The app's batch queue, made on first use (tests may place their own in the state)."""
    queue = state.get("batch_queue")
    if queue is None:
        services: Services = state.services
        queue = BatchQueue(services.settings, services.db)
        state.batch_queue = queue
    return queue


@post("/api/alerts/batch_process/", summary="Change many alerts in one background task")
async def batch_process(
    request: Request, state: State, data: JSONBody[Any]
) -> Response[TaskAccepted]:
    batch, key = _decode(data, request.headers.get("idempotency-key"), principal_of(request))
    try:
        task = await _queue(state).submit(batch, key)
    except QueueUnavailable as error:
        raise ApiError(
            503,
            f"{error}; nothing was queued, send the batch again later",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        ) from None
    except IdempotencyConflict as error:
        raise ApiError(409, str(error), field="idempotency_key") from None
    return Response(
        TaskAccepted(task_id=task.task_id, status=task.state),
        status_code=202,
        headers={"Location": f"/api/tasks/{task.task_id}/"},
    )


@get("/api/tasks/{task_id:str}/", summary="A batch task's state, progress and outcomes")
async def get_batch_task(state: State, task_id: FromPath[str]) -> TaskOut:
    services: Services = state.services
    # A task read after a restart of this (embedded) process may be one it must take over.
    await _queue(state).take_over()
    task = await asyncio.to_thread(get_task, services.db, task_id, alert_ids=False)
    if task is None:
        raise ApiError(404, f"no task with task_id {task_id!r}", parameter="task_id")
    return _task_out(task)


def _decode(
    data: Any, header_key: str | None, principal: Principal
) -> tuple[BatchRequest, str | None]:
    if not isinstance(data, dict):
        raise ApiError(400, 'the body must be an object: {"alert_ids": [...]}', field="body")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ApiError(
            400, f"unknown field {unknown[0]!r}; known: {', '.join(FIELDS)}", field=unknown[0]
        )
    ids = _alert_ids(data.get("alert_ids", _MISSING))
    action = _action(data.get("action", "review"))
    assignee = _assignee(action, data.get("assignee"))
    note = _text(data.get("note"), "note", MAX_NOTE_LENGTH)
    key = _idempotency_key(data.get("idempotency_key"), header_key)

    unique = dedupe(ids)
    batch = BatchRequest(
        unique,
        action,
        principal.name,
        assignee,
        note,
        duplicates=len(ids) - len(unique),
        source=audit_source(principal, "batch"),
    )
    return batch, key


def _alert_ids(raw: Any) -> list[str]:
    if raw is _MISSING:
        raise ApiError(400, "alert_ids is missing: send a list of alert ids", field="alert_ids")
    if not isinstance(raw, list):
        raise ApiError(
            400,
            f"alert_ids is {_json_type(raw)}: send a list of alert ids",
            field="alert_ids",
        )
    if not raw:
        raise ApiError(400, "alert_ids is empty: name at least one alert", field="alert_ids")
    if len(raw) > MAX_IDS:
        raise ApiError(
            413,
            f"at most {MAX_IDS:,} alert_ids per batch, got {len(raw):,}; split the batch",
            field="alert_ids",
        )
    errors = [
        {"field": f"alert_ids[{index}]", "message": f"alert_ids[{index}] {problem}"}
        for index, value in enumerate(raw)
        if (problem := _id_problem(value))
    ]
    if errors:
        raise ApiError(400, "; ".join(e["message"] for e in errors[:10]), errors=errors[:100])
    return [value.strip() for value in raw]


def _id_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"is {_json_type(value)}, not a string"
    if not 1 <= len(value.strip()) <= MAX_ID_LENGTH:
        return f"must be 1 to {MAX_ID_LENGTH} characters"
    return nul_problem(value)


def _json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, as the client wrote it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {list: "an array", dict: "an object", str: "a string"}.get(type(value), "a value")


def _action(raw: Any) -> str:
    action = raw.strip().lower() if isinstance(raw, str) else raw
    if action not in ACTIONS:
        raise ApiError(
            400,
            f"action {raw!r} is not one of {', '.join(ACTIONS)}",
            field="action",
            allowed=list(ACTIONS),
        )
    return action


def _assignee(action: str, raw: Any) -> str | None:
    assignee = _text(raw, "assignee", MAX_ASSIGNEE_LENGTH)
    if action == "assign" and assignee is None:
        raise ApiError(400, "action assign needs an assignee", field="assignee")
    if action != "assign" and assignee is not None:
        raise ApiError(400, f"assignee is for action assign, not {action}", field="assignee")
    return assignee


def _text(raw: Any, name: str, most: int) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not 1 <= len(raw.strip()) <= most:
        raise ApiError(400, f"{name} must be a string of 1 to {most} characters", field=name)
    if problem := nul_problem(raw):
        raise ApiError(400, f"{name} {problem}", field=name)
    return raw.strip()


def _idempotency_key(body_key: Any, header_key: str | None) -> str | None:
    key = _text(body_key, "idempotency_key", MAX_KEY_LENGTH)
    header = _text(header_key, "idempotency_key", MAX_KEY_LENGTH)
    if key is not None and header is not None and key != header:
        raise ApiError(
            400,
            "the Idempotency-Key header and the idempotency_key field differ; send one",
            field="idempotency_key",
        )
    return key or header


def _task_out(task: BatchTask) -> TaskOut:
    return TaskOut(
        task_id=task.task_id,
        status=task.state,
        state=task.state,
        action=task.request["action"],
        progress={
            "processed": task.processed,
            "total": task.total,
            "chunks_done": task.chunks_done,
            "chunks_total": task.chunks_total,
            "percent": round(100 * task.processed / task.total, 1) if task.total else 100.0,
        },
        counts=task.counts,
        outcomes=task.outcomes,
        outcomes_listed=len(task.outcomes),
        error=task.error,
        attempts=task.attempts,
        runs=task.runs,
        timings=_timings(task),
    )


def _timings(task: BatchTask) -> dict[str, Any]:
    return {
        "created_at": task.created_at,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
        "queued_seconds": _seconds(task.created_at, task.started_at),
        "run_seconds": _seconds(task.started_at, task.finished_at),
    }


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else round((end - start).total_seconds(), 3)


batch_handlers = [batch_process, get_batch_task]

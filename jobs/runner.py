"""Running one batch task to its end: chunk by chunk, resumable, retried on transient errors."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import psycopg

from jobs import task_state
from jobs.batch import ACTIONS, apply_chunk
from jobs.task_state import BatchTask
from workflow.db import Database

__all__ = ["RetryPolicy", "run_task"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How often a task is tried before it fails, and how long it waits between attempts."""

    # Attempts within one run (one delivery that holds the task's lock), for transient errors.
    attempts: int = 3
    first_delay: float = 0.5
    factor: float = 2.0
    # A chunk waits this long for a row another transaction holds; then the attempt is retried.
    lock_timeout_ms: int = 5_000
    # Runs a task may have before it is failed instead of run again (MSD_BATCH_MAX_RUNS): a run
    # leaves its task unfinished only when its process dies (or cannot record the end), and a
    # batch that kills its worker every time would otherwise be delivered again forever.
    max_runs: int = 3

    def delay(self, attempt: int) -> float:
        return self.first_delay * self.factor ** (attempt - 1)


@dataclass
class _Delivery:
    """One delivery of a task; its run is counted by the first attempt that begins."""

    task_id: str
    run_counted: bool = False


def run_task(db: Database, task_id: str, policy: RetryPolicy = RetryPolicy()) -> str:
    """Run the task unless it is finished; return the state it ends in (or ``missing``)."""
    delivery = _Delivery(task_id)
    for attempt in range(1, policy.attempts + 1):
        try:
            with _only_runner(db.url, task_id):
                return _attempt(db, delivery, policy)
        except psycopg.OperationalError as error:
            if attempt == policy.attempts:
                return _fail(db, task_id, f"gave up after {attempt} attempts: {error}")
            logger.warning(
                "task %s attempt %d of %d failed (%s); retrying in %.2fs",
                task_id,
                attempt,
                policy.attempts,
                error,
                policy.delay(attempt),
            )
            time.sleep(policy.delay(attempt))
        except Exception as error:
            logger.exception("task %s failed on a permanent error", task_id)
            return _fail(db, task_id, f"{type(error).__name__}: {error}")
    return "failed"


@contextmanager
def _only_runner(url: str, task_id: str) -> Iterator[None]:
    """Hold the task's advisory lock on a connection of its own for the whole attempt.

    A second delivery of the same task (redelivered while the first still runs) waits here and
    then finds the task finished; when a runner dies its connection closes and frees the lock.
    """
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 7201))", (task_id,))
        yield


def _attempt(db: Database, delivery: _Delivery, policy: RetryPolicy) -> str:
    task_id = delivery.task_id
    task = task_state.begin_attempt(
        db, task_id, new_run=not delivery.run_counted, max_runs=policy.max_runs
    )
    delivery.run_counted = True
    if task is None:
        return _state_of_finished(db, task_id)
    if task.state == "failed":
        logger.error("task %s failed: %s", task_id, task.error)
        return "failed"
    logger.info(
        "task %s run %d attempt %d: %s over %d alerts from chunk %d of %d",
        task_id,
        task.runs,
        task.attempts,
        task.request["action"],
        task.total,
        task.chunks_done,
        task.chunks_total,
    )
    started = time.perf_counter()

    for index in range(task.chunks_done, task.chunks_total):
        _run_chunk(db, task, index, policy.lock_timeout_ms)
    task_state.finish_task(db, task_id)
    logger.info("task %s done in %.2fs", task_id, time.perf_counter() - started)
    return "done"


def _state_of_finished(db: Database, task_id: str) -> str:
    task = task_state.get_task(db, task_id)
    if task is None:
        logger.warning("task %s is not in batch_tasks (never queued here); skipped", task_id)
        return "missing"
    logger.info("task %s is already %s; nothing to run", task_id, task.state)
    return task.state


def _run_chunk(db: Database, task: BatchTask, index: int, lock_timeout_ms: int) -> None:
    request = task.request
    ids = request["alert_ids"][index * task.chunk_size : (index + 1) * task.chunk_size]
    source = request.get("source", "batch")
    with db.transaction(actor=request["actor"], source=source, note=request["note"]) as conn:
        conn.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
        claim = task_state.claim_chunk(conn, task.task_id, index)
        if claim is None:
            logger.info("task %s chunk %d was committed by another run", task.task_id, index)
            return

        result = apply_chunk(conn, ids, ACTIONS[request["action"]], request["assignee"])
        processed = min((index + 1) * task.chunk_size, task.total)
        task_state.record_chunk(conn, task.task_id, claim, index, processed, result)
    logger.debug("task %s chunk %d: %s", task.task_id, index, result.counts())


def _fail(db: Database, task_id: str, reason: str) -> str:
    logger.error("task %s failed: %s", task_id, reason)
    try:
        task_state.fail_task(db, task_id, reason)
    except psycopg.Error as error:
        # The task stays unfinished in PostgreSQL, so a worker's recovery runs it again.
        logger.error("task %s: could not record the failure either: %s", task_id, error)
    return "failed"

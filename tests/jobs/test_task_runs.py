"""Batch tasks recorded in PostgreSQL: idempotent creation, resumable runs, retries, failure."""

from __future__ import annotations

import logging
import threading
import time

import psycopg
import pytest

from jobs import task_state
from jobs.batch import ACTIONS, apply_chunk
from jobs.runner import RetryPolicy, run_task
from jobs.task_state import BatchRequest, IdempotencyConflict
from tests.jobs.conftest import deliveries_waiting, seed, update_events
from workflow.db import Database

FAST = RetryPolicy(attempts=3, first_delay=0.05, lock_timeout_ms=100)


def test_same_idempotency_key_and_request_give_the_same_task(db: Database) -> None:
    request = BatchRequest(seed(db, 3))

    first, created = task_state.create_task(db, request, chunk_size=10, idempotency_key="k1")
    again, created_again = task_state.create_task(db, request, chunk_size=10, idempotency_key="k1")

    assert (created, created_again) == (True, False)
    assert again.task_id == first.task_id


def test_the_same_key_sent_at_once_from_many_clients_makes_one_task(db: Database) -> None:
    request = BatchRequest(seed(db, 3))
    answers: list[tuple[str, bool]] = []

    def send() -> None:
        task, created = task_state.create_task(db, request, chunk_size=10, idempotency_key="k")
        answers.append((task.task_id, created))

    senders = [threading.Thread(target=send) for _ in range(4)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(10)

    assert len({task_id for task_id, _ in answers}) == 1
    assert sorted(created for _, created in answers) == [False, False, False, True]


def test_a_key_reused_for_another_request_is_refused(db: Database) -> None:
    ids = seed(db, 3)
    task_state.create_task(db, BatchRequest(ids), chunk_size=10, idempotency_key="k1")

    with pytest.raises(IdempotencyConflict, match="different request"):
        task_state.create_task(db, BatchRequest(ids[:1]), chunk_size=10, idempotency_key="k1")


def test_a_progress_read_leaves_the_ids_out_and_a_run_reads_them_all(db: Database) -> None:
    ids = seed(db, 3)
    created, _ = task_state.create_task(db, BatchRequest(ids, note="n"), chunk_size=10)

    progress = task_state.get_task(db, created.task_id, alert_ids=False)
    full = task_state.get_task(db, created.task_id)

    assert progress is not None and full is not None
    assert "alert_ids" not in progress.request
    assert progress.request == {k: v for k, v in full.request.items() if k != "alert_ids"}
    assert full.request["alert_ids"] == ids and full.request["note"] == "n"
    assert created.request == full.request


def test_a_rerun_skips_chunks_already_committed_and_changes_nothing_twice(db: Database):
    ids = seed(db, 25)
    task, _ = task_state.create_task(db, BatchRequest(ids, note="n"), chunk_size=10)
    # A run that died after its first chunk committed: changes and progress, nothing more.
    with db.transaction(actor="api", source="batch") as conn:
        claim = task_state.claim_chunk(conn, task.task_id, 0)
        assert claim is not None
        result = apply_chunk(conn, ids[:10], ACTIONS["review"])
        task_state.record_chunk(conn, task.task_id, claim, 0, 10, result)

    assert run_task(db, task.task_id, FAST) == "done"

    done = task_state.get_task(db, task.task_id)
    assert done is not None and (done.chunks_done, done.processed) == (3, 25)
    assert done.counts["changed"] == 25
    assert update_events(db, "b-") == {alert_id: 1 for alert_id in ids}


def test_running_a_finished_task_again_changes_nothing(db: Database) -> None:
    ids = seed(db, 5)
    task, _ = task_state.create_task(db, BatchRequest(ids), chunk_size=2)
    run_task(db, task.task_id, FAST)

    assert run_task(db, task.task_id, FAST) == "done"

    again = task_state.get_task(db, task.task_id)
    assert again is not None and again.attempts == 1 and again.counts["changed"] == 5
    assert update_events(db, "b-") == {alert_id: 1 for alert_id in ids}


def _hold_row_lock(url: str, alert_id: str, seconds: float, locked: threading.Event) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("SELECT 1 FROM alerts WHERE alert_id = %s FOR UPDATE", (alert_id,))
        locked.set()
        time.sleep(seconds)


def test_a_lock_timeout_is_retried_and_the_task_completes(db: Database) -> None:
    ids = seed(db, 4)
    task, _ = task_state.create_task(db, BatchRequest(ids), chunk_size=10)
    locked = threading.Event()
    holder = threading.Thread(target=_hold_row_lock, args=(db.url, ids[2], 0.2, locked))
    holder.start()
    locked.wait(5)

    state = run_task(db, task.task_id, FAST)
    holder.join()

    done = task_state.get_task(db, task.task_id)
    assert state == "done" and done is not None and done.attempts >= 2
    assert done.counts["changed"] == 4


def test_transient_errors_are_tried_three_times_by_default_with_growing_delays(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    ids = seed(db, 4)
    task, _ = task_state.create_task(db, BatchRequest(ids), chunk_size=10)
    locked, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_row_lock_until, args=(db.url, ids[0], locked, release))
    holder.start()
    locked.wait(5)
    # The default attempts and factor; only the first delay and the lock wait are shortened.
    policy = RetryPolicy(first_delay=0.2, lock_timeout_ms=50)
    caplog.set_level(logging.WARNING, logger="jobs.runner")

    started = time.monotonic()
    state = run_task(db, task.task_id, policy)
    elapsed = time.monotonic() - started
    release.set()
    holder.join()

    failed = task_state.get_task(db, task.task_id)
    assert state == "failed" and failed is not None
    assert (failed.state, failed.attempts, failed.runs, failed.counts["changed"]) == (
        "failed",
        3,
        1,
        0,
    )
    assert "gave up after 3 attempts" in (failed.error or "") and "lock" in (failed.error or "")
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert [line.rsplit(" ", 1)[-1] for line in retries] == ["0.20s", "0.40s"]
    assert "attempt 1 of 3" in retries[0] and "attempt 2 of 3" in retries[1]
    assert elapsed >= 0.6


def _hold_row_lock_until(
    url: str, alert_id: str, locked: threading.Event, release: threading.Event
) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("SELECT 1 FROM alerts WHERE alert_id = %s FOR UPDATE", (alert_id,))
        locked.set()
        release.wait(30)


def _cut_connections_waiting_behind(url: str, holder_pid: int) -> int:
    """Terminate, as a server restart would, the backends waiting for ``holder_pid``'s locks."""
    deadline = time.monotonic() + 10
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            cut = conn.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE %s = ANY(pg_blocking_pids(pid))",
                (holder_pid,),
            ).fetchone()[0]
            if cut:
                return cut
            time.sleep(0.02)
    raise AssertionError("no connection came to wait for the held row")


def test_a_connection_the_server_cuts_mid_run_is_retried_and_the_task_completes(
    db: Database,
) -> None:
    ids = seed(db, 25)
    task, _ = task_state.create_task(db, BatchRequest(ids), chunk_size=10)
    result: list[str] = []
    runner = threading.Thread(
        target=lambda: result.append(
            run_task(db, task.task_id, RetryPolicy(first_delay=0.05, lock_timeout_ms=10_000))
        )
    )

    with psycopg.connect(db.url) as holder:
        # The second chunk's first alert: the run commits chunk 0, then waits here.
        holder.execute("SELECT 1 FROM alerts WHERE alert_id = %s FOR UPDATE", (ids[10],))
        runner.start()
        cut = _cut_connections_waiting_behind(db.url, holder.info.backend_pid)
    runner.join(30)

    done = task_state.get_task(db, task.task_id)
    assert cut == 1 and result == ["done"] and done is not None
    assert (done.state, done.attempts, done.runs, done.counts["changed"]) == ("done", 2, 1, 25)
    assert update_events(db, "b-") == {alert_id: 1 for alert_id in ids}


def test_a_permanent_error_fails_the_task_at_once_with_the_reason(db: Database) -> None:
    ids = seed(db, 3)
    # The API refuses an assignee this long; a task recorded without it (by hand, or by a
    # version with another limit) meets PostgreSQL's own check, which no retry can pass.
    request = BatchRequest(ids, action="assign", assignee="x" * 201)
    task, _ = task_state.create_task(db, request, chunk_size=10)

    state = run_task(db, task.task_id, FAST)

    failed = task_state.get_task(db, task.task_id)
    assert state == "failed" and failed is not None
    assert (failed.state, failed.attempts, failed.counts["changed"]) == ("failed", 1, 0)
    assert "CheckViolation" in (failed.error or "") and "assignee" in (failed.error or "")
    assert update_events(db, "b-") == {}


def _runs_ending_unfinished(db: Database, task_id: str, count: int) -> None:
    """What ``count`` runs whose process died mid-way leave behind: each began, none ended."""
    for _ in range(count):
        assert task_state.begin_attempt(db, task_id, new_run=True, max_runs=count) is not None


def test_a_task_whose_runs_all_died_is_failed_after_the_run_limit_not_run_again(
    db: Database,
) -> None:
    ids = seed(db, 25)
    task, _ = task_state.create_task(db, BatchRequest(ids), chunk_size=10)
    with db.transaction(actor="api", source="batch") as conn:
        claim = task_state.claim_chunk(conn, task.task_id, 0)
        assert claim is not None
        result = apply_chunk(conn, ids[:10], ACTIONS["review"])
        task_state.record_chunk(conn, task.task_id, claim, 0, 10, result)
    _runs_ending_unfinished(db, task.task_id, 3)

    state = run_task(db, task.task_id, RetryPolicy(max_runs=3))

    failed = task_state.get_task(db, task.task_id)
    assert state == "failed" and failed is not None
    assert (failed.state, failed.runs, failed.chunks_done) == ("failed", 3, 1)
    assert "after 3 runs" in (failed.error or "") and "at 10 of 25 alerts" in (failed.error or "")
    assert failed.finished_at is not None
    assert update_events(db, "b-") == {alert_id: 1 for alert_id in ids[:10]}


def test_a_task_under_the_run_limit_is_run_again_and_finishes(db: Database) -> None:
    ids = seed(db, 5)
    task, _ = task_state.create_task(db, BatchRequest(ids), chunk_size=10)
    _runs_ending_unfinished(db, task.task_id, 2)

    state = run_task(db, task.task_id, RetryPolicy(max_runs=3))

    done = task_state.get_task(db, task.task_id)
    assert state == "done" and done is not None and (done.runs, done.error) == (3, None)


def test_deliveries_that_wait_behind_a_run_are_not_counted_as_runs(db: Database) -> None:
    ids = seed(db, 6)
    task, _ = task_state.create_task(db, BatchRequest(ids), chunk_size=2)
    states: list[str] = []
    deliveries = [
        threading.Thread(target=lambda: states.append(run_task(db, task.task_id, FAST)))
        for _ in range(3)
    ]

    with psycopg.connect(db.url, autocommit=True) as conn:
        # Stands in for a run in progress elsewhere: three deliveries arrive and queue behind it.
        conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 7201))", (task.task_id,))
        for delivery in deliveries:
            delivery.start()
        deadline = time.monotonic() + 10
        while deliveries_waiting(db, task.task_id) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        waiting = deliveries_waiting(db, task.task_id)
    for delivery in deliveries:
        delivery.join(30)

    done = task_state.get_task(db, task.task_id)
    assert waiting == 3 and states == ["done"] * 3
    assert done is not None and (done.state, done.runs, done.attempts) == ("done", 1, 1)
    assert update_events(db, "b-") == {alert_id: 1 for alert_id in ids}

"""``POST /api/alerts/batch_process/`` and ``GET /api/tasks/{id}/``, embedded (in-process) mode."""

from __future__ import annotations

import re

from litestar.testing import TestClient

from jobs import task_state
from jobs.batch import ACTIONS, apply_chunk
from jobs.queue import BatchQueue
from jobs.task_state import BatchRequest
from msd.runtime import Services
from tests.api.conftest import seed_alerts
from tests.jobs.conftest import seed, statuses, update_events, wait_done
from tests.olap.truth import clickhouse_aggregates, postgres_aggregates

URL = "/api/alerts/batch_process/"


def test_batch_answers_202_with_task_id_and_status_then_runs_in_process(
    client: TestClient, services: Services
) -> None:
    ids = seed(services.db, 12)

    response = client.post(URL, json={"alert_ids": ids})

    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"task_id", "status"} and body["status"] == "queued"
    assert response.headers["location"] == f"/api/tasks/{body['task_id']}/"
    done = wait_done(client, body["task_id"])
    assert done["state"] == done["status"] == "done"
    assert done["progress"]["processed"] == done["progress"]["total"] == 12
    assert done["counts"]["changed"] == 12
    timings = done["timings"]
    assert timings["run_seconds"] is not None and timings["queued_seconds"] is not None
    assert timings["created_at"] <= timings["started_at"] <= timings["finished_at"]
    assert set(statuses(services.db, ids).values()) == {"REVIEWING"}


def test_task_reports_counts_duplicates_unknown_ids_and_outcomes(
    client: TestClient, services: Services
) -> None:
    pending = seed(services.db, 3, "PENDING", prefix="p-")
    closed = seed(services.db, 2, "RESOLVED", prefix="r-")
    reviewing = seed(services.db, 1, "REVIEWING", prefix="v-")
    alert_ids = [*pending, pending[0], *closed, *reviewing, "ghost-1"]

    task_id = client.post(URL, json={"alert_ids": alert_ids}).json()["task_id"]
    done = wait_done(client, task_id)

    assert done["counts"] == {
        "changed": 3,
        "unchanged": 1,
        "not_found": 1,
        "invalid_transition": 2,
        "duplicates": 1,
    }
    assert done["outcomes"] == [
        {"alert_id": "r-1", "outcome": "invalid_transition", "status": "RESOLVED"},
        {"alert_id": "r-2", "outcome": "invalid_transition", "status": "RESOLVED"},
        {"alert_id": "v-1", "outcome": "unchanged", "status": "REVIEWING"},
        {"alert_id": "ghost-1", "outcome": "not_found", "status": None},
    ]
    assert done["outcomes_listed"] == 4
    assert update_events(services.db, "p-") == {alert_id: 1 for alert_id in pending}


def test_action_and_note_reach_the_audit_trail_chunk_by_chunk(
    client: TestClient, services: Services
) -> None:
    client.app.state.batch_queue = BatchQueue(services.settings, services.db, chunk_size=3)
    ids = seed(services.db, 8)

    task_id = client.post(
        URL, json={"alert_ids": ids, "action": "dismiss", "note": "duplicate filings"}
    ).json()["task_id"]
    done = wait_done(client, task_id)

    assert done["progress"]["chunks_total"] == done["progress"]["chunks_done"] == 3
    history = client.get(f"/api/alerts/{ids[-1]}/history/").json()
    # The client fixture holds a token of no user, named "tests".
    assert history[-1]["actor"] == "token tests"
    assert re.fullmatch(r"batch token:\d+", history[-1]["source"])
    assert history[-1]["note"] == "duplicate filings"
    assert history[-1]["after"]["status"] == "DISMISSED"


def test_assign_through_the_api_sets_the_assignee_of_open_alerts_only(
    client: TestClient, services: Services
) -> None:
    open_ids = seed(services.db, 2, "PENDING", prefix="o-")
    closed_ids = seed(services.db, 1, "DISMISSED", prefix="c-")

    task_id = client.post(
        URL, json={"alert_ids": [*open_ids, *closed_ids], "action": "assign", "assignee": "kim"}
    ).json()["task_id"]
    done = wait_done(client, task_id)

    assert (done["action"], done["counts"]["changed"]) == ("assign", 2)
    assert done["outcomes"] == [
        {"alert_id": "c-1", "outcome": "invalid_transition", "status": "DISMISSED"}
    ]
    with services.db.reading() as conn:
        rows = dict(conn.execute("SELECT alert_id, assignee FROM alerts").fetchall())
    assert rows == {"o-1": "kim", "o-2": "kim", "c-1": None}
    assert set(statuses(services.db, open_ids).values()) == {"PENDING"}


def test_a_batchs_changes_replicate_and_the_aggregates_follow(
    client: TestClient, services: Services
) -> None:
    seed_alerts(services.db, 80)
    services.replicator.drain()
    with services.db.reading() as conn:
        pending = [
            row[0] for row in conn.execute("SELECT alert_id FROM alerts WHERE status = 'PENDING'")
        ]
    before = client.get("/api/alerts/statistics/", params={"days": 60}).json()

    task_id = client.post(URL, json={"alert_ids": pending, "action": "resolve"}).json()["task_id"]
    wait_done(client, task_id)
    services.replicator.drain()
    after = client.get("/api/alerts/statistics/", params={"days": 60}).json()

    assert before["pending"] == len(pending) > 0 and after["pending"] == 0
    assert after["total"] == before["total"]
    assert clickhouse_aggregates(services.store) == postgres_aggregates(services.db)


def test_same_idempotency_key_answers_with_the_same_task_and_runs_once(
    client: TestClient, services: Services
) -> None:
    ids = seed(services.db, 4)
    body = {"alert_ids": ids, "idempotency_key": "nightly-2026-12-04"}

    first = client.post(URL, json=body).json()
    wait_done(client, first["task_id"])
    second = client.post(
        URL, json={"alert_ids": ids}, headers={"Idempotency-Key": body["idempotency_key"]}
    )

    assert second.status_code == 202
    assert second.json() == {"task_id": first["task_id"], "status": "done"}
    assert update_events(services.db, "b-") == {alert_id: 1 for alert_id in ids}


def test_a_reused_idempotency_key_with_other_ids_is_a_conflict(
    client: TestClient, services: Services
) -> None:
    ids = seed(services.db, 2)
    client.post(URL, json={"alert_ids": ids, "idempotency_key": "k"})

    response = client.post(URL, json={"alert_ids": ids[:1], "idempotency_key": "k"})

    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == "idempotency_key"


MALFORMED = [
    ({"alert_ids": []}, "alert_ids", "empty"),
    ({}, "alert_ids", "missing"),
    ({"alert_ids": None}, "alert_ids", "alert_ids is null: send a list"),
    ({"alert_ids": "b-1"}, "alert_ids", "alert_ids is a string: send a list"),
    ({"alert_ids": ["b-1", 7]}, "alert_ids[1]", "alert_ids[1] is a number, not a string"),
    ({"alert_ids": ["b-1", None]}, "alert_ids[1]", "alert_ids[1] is null, not a string"),
    ({"alert_ids": [["b-1"]]}, "alert_ids[0]", "alert_ids[0] is an array, not a string"),
    ({"alert_ids": ["b-1", "  "]}, "alert_ids[1]", "1 to 128"),
    ({"alert_ids": ["b-1"], "action": "explode"}, "action", "not one of"),
    ({"alert_ids": ["b-1"], "action": "assign"}, "assignee", "needs an assignee"),
    ({"alert_ids": ["b-1"], "assignee": "kim"}, "assignee", "for action assign, not review"),
    ({"alert_ids": ["b-1"], "note": 5}, "note", "note must be a string of 1 to 2000"),
    ({"alert_ids": ["b-1"], "idempotency_key": ""}, "idempotency_key", "1 to 200 characters"),
    ({"alert_ids": ["b-1"], "alert_id": "b-2"}, "alert_id", "unknown field"),
    (["b-1"], "body", "must be an object"),
]


def test_malformed_batches_are_refused_with_400_naming_the_field(client: TestClient) -> None:
    # One client for all cases: each costs a fresh ClickHouse database otherwise.
    for body, field, words in MALFORMED:
        response = client.post(URL, json=body)

        assert response.status_code == 400, body
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["errors"][0]["field"] == field and words in problem["detail"], body


def test_more_than_100000_ids_is_413_naming_the_limit(client: TestClient) -> None:
    response = client.post(URL, json={"alert_ids": [f"a{n}" for n in range(100_001)]})

    assert response.status_code == 413
    assert "100,000" in response.json()["detail"]
    assert response.json()["errors"][0]["field"] == "alert_ids"


def test_exactly_100000_ids_are_taken_and_unknown_ones_are_counted_not_fatal(
    client: TestClient, services: Services
) -> None:
    known = seed(services.db, 3)
    ids = [*known, *(f"unknown-{n}" for n in range(100_000 - len(known)))]

    response = client.post(URL, json={"alert_ids": ids})
    done = wait_done(client, response.json()["task_id"], timeout=120)

    assert response.status_code == 202
    assert done["state"] == "done" and done["progress"]["total"] == 100_000
    assert (done["counts"]["changed"], done["counts"]["not_found"]) == (3, 99_997)
    assert done["outcomes_listed"] == len(done["outcomes"]) == 1_000
    assert done["outcomes"][0] == {"alert_id": "unknown-0", "outcome": "not_found", "status": None}


def test_an_unknown_task_is_404(client: TestClient) -> None:
    response = client.get("/api/tasks/no-such-task/")

    assert response.status_code == 404
    assert response.json()["errors"][0]["parameter"] == "task_id"


def test_a_task_failing_on_a_permanent_error_shows_failed_with_the_reason(
    client: TestClient, services: Services
) -> None:
    ids = seed(services.db, 2)
    # An assignee the API would refuse, recorded directly: PostgreSQL's own check refuses it.
    request = BatchRequest(ids, action="assign", assignee="x" * 201)
    task, _ = task_state.create_task(services.db, request, chunk_size=10)

    failed = wait_done(client, task.task_id)

    assert (failed["state"], failed["attempts"], failed["counts"]["changed"]) == ("failed", 1, 0)
    assert "alerts_assignee_check" in failed["error"]
    assert failed["timings"]["finished_at"] is not None


def test_a_task_left_unfinished_by_a_dead_process_is_taken_over_and_finished(
    client: TestClient, services: Services
) -> None:
    ids = seed(services.db, 9)
    task, _ = task_state.create_task(services.db, BatchRequest(ids), chunk_size=3)
    # What a serving process that died after its first chunk leaves behind.
    with services.db.transaction(actor="api", source="batch") as conn:
        claim = task_state.claim_chunk(conn, task.task_id, 0)
        assert claim is not None
        task_state.record_chunk(
            conn, task.task_id, claim, 0, 3, apply_chunk(conn, ids[:3], ACTIONS["review"])
        )
    task_state.begin_attempt(services.db, task.task_id, new_run=True, max_runs=3)

    done = wait_done(client, task.task_id)

    assert done["state"] == "done" and (done["attempts"], done["runs"]) == (2, 2)
    assert done["counts"]["changed"] == 9
    assert update_events(services.db, "b-") == {alert_id: 1 for alert_id in ids}

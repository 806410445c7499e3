"""The set-wise batch function: transitions, counts, outcomes and the audit trail."""

from __future__ import annotations

import pytest

from jobs.batch import MAX_LISTED_OUTCOMES, run_batch
from tests.jobs.conftest import seed, statuses, update_events
from workflow.db import Database


@pytest.mark.parametrize(
    ("action", "target", "changes", "unchanged", "invalid"),
    [
        ("review", "REVIEWING", {"PENDING"}, {"REVIEWING"}, {"RESOLVED", "DISMISSED"}),
        ("resolve", "RESOLVED", {"PENDING", "REVIEWING"}, {"RESOLVED"}, {"DISMISSED"}),
        ("dismiss", "DISMISSED", {"PENDING", "REVIEWING"}, {"DISMISSED"}, {"RESOLVED"}),
        ("reopen", "REVIEWING", {"RESOLVED", "DISMISSED"}, {"REVIEWING"}, {"PENDING"}),
    ],
)
def test_each_action_moves_only_alerts_whose_status_allows_it(
    db: Database, action: str, target: str, changes: set, unchanged: set, invalid: set
) -> None:
    ids = {s: seed(db, 3, s, prefix=f"{s[:3]}-") for s in changes | unchanged | invalid}
    every = [alert_id for group in ids.values() for alert_id in group]

    result = run_batch(db, every, action, actor="ops", chunk_size=4)

    after = statuses(db, every)
    assert {after[a] for s in changes for a in ids[s]} == {target}
    assert all(after[a] == s for s in unchanged | invalid for a in ids[s])
    assert (result.changed, result.unchanged, result.invalid_transition) == (
        3 * len(changes),
        3 * len(unchanged),
        3 * len(invalid),
    )
    listed = {o["alert_id"]: o["outcome"] for o in result.outcomes}
    assert {listed[a] for s in invalid for a in ids[s]} == {"invalid_transition"}


def test_duplicates_count_once_and_unknown_ids_are_reported(db: Database) -> None:
    ids = seed(db, 5)

    result = run_batch(db, [*ids, *ids[:2], "nope-1", "nope-2"], actor="ops")

    assert (result.changed, result.duplicates, result.not_found) == (5, 2, 2)
    assert [o for o in result.outcomes if o["outcome"] == "not_found"] == [
        {"alert_id": "nope-1", "outcome": "not_found", "status": None},
        {"alert_id": "nope-2", "outcome": "not_found", "status": None},
    ]
    assert update_events(db, "b-") == {alert_id: 1 for alert_id in ids}


def test_every_change_is_audited_with_actor_source_and_note(db: Database) -> None:
    ids = seed(db, 3)

    run_batch(db, ids, "resolve", actor="supervisor-7", note="Q3 clean-up")

    with db.reading() as conn:
        rows = conn.execute(
            "SELECT actor, source, note, after ->> 'status', after ->> 'resolved_at' IS NOT NULL"
            " FROM alert_events WHERE op = 'U' ORDER BY alert_id"
        ).fetchall()
    assert rows == [("supervisor-7", "batch", "Q3 clean-up", "RESOLVED", True)] * 3


def test_assign_sets_the_assignee_of_open_alerts_and_leaves_status(db: Database) -> None:
    open_ids = seed(db, 2, "REVIEWING", prefix="o-")
    closed_ids = seed(db, 1, "DISMISSED", prefix="c-")
    run_batch(db, open_ids[:1], "assign", actor="ops", assignee="kim")

    result = run_batch(db, [*open_ids, *closed_ids], "assign", actor="ops", assignee="kim")

    assert (result.changed, result.unchanged, result.invalid_transition) == (1, 1, 1)
    with db.reading() as conn:
        rows = dict(conn.execute("SELECT alert_id, assignee FROM alerts").fetchall())
    assert rows == {"o-1": "kim", "o-2": "kim", "c-1": None}
    assert statuses(db, open_ids) == {"o-1": "REVIEWING", "o-2": "REVIEWING"}


def test_outcome_list_is_capped_while_counts_stay_exact(db: Database) -> None:
    unknown = [f"missing-{n}" for n in range(MAX_LISTED_OUTCOMES + 250)]

    result = run_batch(db, unknown, actor="ops", chunk_size=400)

    assert result.not_found == MAX_LISTED_OUTCOMES + 250
    assert len(result.outcomes) == MAX_LISTED_OUTCOMES
    assert result.outcomes[0]["alert_id"] == "missing-0"

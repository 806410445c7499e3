"""One ClickHouse outage, run against a live API, and what must be true of it afterwards.

``run_outage`` drives the outage through the API: answers cached before, ClickHouse taken away
(``take_away``), workflow reads and writes, aggregates, /health, ClickHouse given back
(``give_back``), replication catching up; it returns what it saw as plain JSON-able values.
``check_outage`` asserts on that, against PostgreSQL's own GROUP BY. Both stores run it: the
server store in the test process, the embedded one in a process of its own (chdb keeps one
session per process, and closing it there must not close the test run's), started as

    python -m tests.faults.clickhouse_outage POSTGRES_URL CLICKHOUSE_FOLDER

which prints the observations as one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import date
from typing import Any, Callable

from litestar.testing import TestClient

from msd.runtime import Services
from tests.faults.conftest import LogLines, event_count, wait_for
from tests.olap.truth import clickhouse_aggregates, postgres_aggregates
from tests.pg_truth import sql_statistics, sql_top_companies, sql_trends

AGGREGATES = {
    "statistics": ("/api/alerts/statistics/", sql_statistics),
    "risk_trends": ("/api/alerts/risk_trends/", sql_trends),
    "top_companies": ("/api/alerts/top_companies/", sql_top_companies),
}
# Below the seed's HIGH and CRITICAL alerts, so that ClickHouse counts those lists while it can.
EXACT_COUNT_LIMIT = 3
# A question never asked before the outage: nothing cached to fall back on.
UNASKED = "/api/alerts/statistics/?severity=HIGH&region=TX"
# The cached question spelled another way: the same normalised parameters.
RESPELLED = "/api/alerts/statistics/?days=30&tz=UTC"


def _replicated(services: Services) -> bool:
    return services.watermark().events == event_count(services.db)


def _seen(response: Any) -> dict[str, Any]:
    return {
        "status": response.status_code,
        "type": response.headers.get("content-type", ""),
        "cache": response.headers.get("x-cache"),
        "watermark": response.headers.get("x-replication-watermark"),
        "warning": response.headers.get("warning"),
        "computed_at": response.headers.get("x-computed-at"),
        "retry_after": response.headers.get("retry-after"),
        "window": response.headers.get("x-window"),
        "body": response.json(),
    }


def _workflow_during_outage(client: TestClient) -> dict[str, int]:
    alert = {
        "alert_id": "during-outage-1",
        "company_name": "Outage Holdings",
        "violation_type": "type-1",
        "severity": "CRITICAL",
        "amount": "1234.56",
        "region": "CA",
        "detected_at": date.today().isoformat(),
    }
    # Not asked before the outage, so no count of it is cached at the current watermark.
    listed = client.get("/api/alerts/?severity=CRITICAL")
    codes = {
        "list": listed.status_code,
        "list_count": listed.json()["count"],
        "list_counted_by": listed.headers.get("x-count-source"),
        "detail": client.get("/api/alerts/seed-3/").status_code,
        "history": client.get("/api/alerts/seed-3/history/").status_code,
        "create": client.post("/api/alerts/", json=alert).status_code,
        # seed-5 was seeded DISMISSED; seed-4 and seed-8 PENDING, so that each change is real.
        "patch": client.patch("/api/alerts/seed-5/", json={"status": "REVIEWING"}).status_code,
    }
    batch = client.post("/api/alerts/batch_process/", json={"alert_ids": ["seed-4", "seed-8"]})
    codes["batch"] = batch.status_code
    task_id = batch.json()["task_id"]

    def finished() -> dict[str, Any] | None:
        task = client.get(f"/api/tasks/{task_id}/").json()
        return task if task["state"] in ("done", "failed") else None

    task = wait_for(finished, what="the batch task finishing")
    codes["batch_changed"] = task["counts"]["changed"]
    return codes


def _severity_count(services: Services, severity: str) -> int:
    with services.db.reading() as conn:
        count = conn.execute(
            "SELECT count(*) FROM alerts WHERE severity = %s", (severity,)
        ).fetchone()[0]
        conn.rollback()
    return int(count)


def _differences(services: Services) -> list[str]:
    """Where ClickHouse's views and PostgreSQL's GROUP BY disagree (empty: they agree)."""
    views = clickhouse_aggregates(services.store)
    truth = postgres_aggregates(services.db)
    found = []
    for part in truth:
        for key in sorted(set(views[part]) | set(truth[part]), key=repr):
            if views[part].get(key) != truth[part].get(key):
                found.append(f"{part} {key}: {views[part].get(key)} != {truth[part].get(key)}")
    return found


def _truth(services: Services, name: str, window: str) -> Any:
    days, _, zone = window.partition(";tz=")
    first, last = (date.fromisoformat(day) for day in days.split("/"))
    return AGGREGATES[name][1](services.db, first, last, zone)


def run_outage(
    client: TestClient,
    services: Services,
    take_away: Callable[[], None],
    give_back: Callable[[], None],
) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    services.start_replication()
    wait_for(lambda: _replicated(services), what="the seed replicating")
    seen["before"] = {name: _seen(client.get(path)) for name, (path, _) in AGGREGATES.items()}

    # Replication moves past the cached answers, so what they reflect is not the current mark.
    client.patch("/api/alerts/seed-2/", json={"status": "REVIEWING"})
    wait_for(lambda: _replicated(services), what="the change before the outage replicating")
    seen["watermark_before_outage"] = services.watermark().header()

    listed = client.get("/api/alerts/?severity=HIGH")
    seen["high_alerts"] = _severity_count(services, "HIGH")
    seen["critical_alerts"] = _severity_count(services, "CRITICAL")
    assert listed.headers["x-count-source"] == "clickhouse", "the limit is below the HIGH count"
    assert listed.json()["count"] == seen["high_alerts"]

    with LogLines("olap.replicator") as replicator_log:
        take_away()
        seen["workflow"] = _workflow_during_outage(client)
        seen["during"] = {name: _seen(client.get(path)) for name, (path, _) in AGGREGATES.items()}
        seen["respelled"] = _seen(client.get(RESPELLED))
        seen["unasked"] = _seen(client.get(UNASKED))
        seen["health_during"] = client.get("/health").json()
        time.sleep(2.5)  # several replication retries against the missing store
        seen["events_waiting"] = event_count(services.db) - services.watermark().events
        seen["watermark_during"] = services.watermark().header()

        give_back()
        wait_for(lambda: _replicated(services), what="replication catching up after the outage")
        seen["replicator_log"] = replicator_log.lines

    time.sleep(1.1)  # past the cache's one-probe-a-second window of the outage
    seen["after"] = {name: _seen(client.get(path)) for name, (path, _) in AGGREGATES.items()}
    seen["truth"] = {
        name: _truth(services, name, seen["after"][name]["window"]) for name in AGGREGATES
    }
    seen["health_after"] = client.get("/health").json()
    seen["events"] = event_count(services.db)
    seen["replicated_events"] = services.watermark().events
    seen["differences"] = _differences(services)
    return seen


def check_outage(seen: dict[str, Any]) -> None:
    """What an outage must have looked like from outside, and the exact end state."""
    for name in AGGREGATES:
        before, during, after = seen["before"][name], seen["during"][name], seen["after"][name]
        assert before["status"] == 200 and before["cache"] == "miss", name
        assert during["status"] == 200 and during["cache"] == "stale", (name, during)
        assert during["body"] == before["body"], f"{name}: the stale answer is the last one"
        assert during["watermark"] == before["watermark"], f"{name}: says what it reflects"
        assert during["watermark"] != seen["watermark_before_outage"], name
        assert "110" in during["warning"] and during["computed_at"], name
        assert after["status"] == 200 and after["cache"] == "miss", name
        assert after["body"] == seen["truth"][name], f"{name} differs from PostgreSQL"

    assert seen["respelled"]["cache"] == "stale"
    unasked = seen["unasked"]
    assert unasked["status"] == 503 and unasked["type"].startswith("application/problem+json")
    assert unasked["retry_after"] == "5" and "ClickHouse" in unasked["body"]["detail"]

    workflow = seen["workflow"]
    assert [workflow[k] for k in ("list", "detail", "history", "create", "patch", "batch")] == [
        200, 200, 200, 201, 200, 202
    ], workflow  # fmt: skip
    assert workflow["batch_changed"] == 2
    # Above the exact-count limit ClickHouse counts the list; without it PostgreSQL counts all.
    assert workflow["list_counted_by"] == "postgresql"
    assert workflow["list_count"] == seen["critical_alerts"]

    health = seen["health_during"]
    assert health["status"] == "degraded" and health["clickhouse"] == "unavailable"
    assert health["postgres"] == "ok" and health["reasons"]["clickhouse"]
    assert seen["health_after"]["status"] == "ok", seen["health_after"]

    # The writes of the outage waited in PostgreSQL, then all of them landed exactly once.
    assert seen["events_waiting"] == 4, "create, patch and a batch of two wait in PostgreSQL"
    assert seen["watermark_during"] == seen["watermark_before_outage"]
    assert seen["replicated_events"] == seen["events"]
    assert seen["differences"] == []

    log = seen["replicator_log"]
    paused = [line for line in log if "replication paused: ClickHouse" in line]
    resumed = [line for line in log if "replication resumed: ClickHouse" in line]
    assert len(paused) == 1 and len(resumed) == 1, log


def _embedded_main(pg_url: str, folder: str) -> None:
    """The outage of the embedded store: the API's store handle closed, then opened again."""
    from pathlib import Path

    from api.app import create_app
    from msd.settings import load_settings
    from olap.replicator import Replicator
    from olap.store import EmbeddedStore
    from tests.api.conftest import authorize, seed_alerts
    from workflow.db import Database

    database = "msd_outage"
    settings = load_settings(
        {
            "clickhouse_database": database,
            "replication_interval": "0.1",
            "exact_count_limit": str(EXACT_COUNT_LIMIT),
        },
        environ={},
    )
    db = Database(pg_url, max_size=4)
    store = EmbeddedStore(Path(folder), database)
    store.migrate()
    services = Services(settings, db, store, Replicator(db, store))
    seed_alerts(db, 40)

    def reopen() -> None:
        # Any store on the folder opens the process's chdb session again, for every handle.
        services.store = EmbeddedStore(Path(folder), database)

    with TestClient(create_app(services)) as client:
        authorize(client, services)
        seen = run_outage(client, services, store.close, reopen)
    services.close()
    print(json.dumps(seen, default=str))


if __name__ == "__main__":
    _embedded_main(sys.argv[1], sys.argv[2])

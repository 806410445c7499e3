"""Batch processing from request to done, through the API, on the embedded stores.

    python bench/batch.py [--sizes 10000 100000] [--runs 3]

Each run starts from a fresh data folder holding ``size`` generated PENDING alerts, then sends
``POST /api/alerts/batch_process/`` with all their ids (action ``review``) and polls
``GET /api/tasks/{id}/`` every 20 ms until the task is done. Prints the median over the runs.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

from litestar.testing import TestClient

from api.app import create_app
from msd.runtime import open_services
from msd.settings import load_settings
from workflow import accounts
from workflow.embedded import stop_embedded_postgres


def _seed(services, size: int) -> list[str]:  # type: ignore[no-untyped-def]
    with services.db.transaction(actor="bench", source="bench") as conn:
        conn.execute(
            "INSERT INTO alerts (alert_id, company_name, violation_type, severity, status,"
            " amount, region, detected_at)"
            " SELECT 'b-' || g, 'Company ' || (g %% 2000), 'type-' || (g %% 40),"
            "  (ARRAY['LOW', 'MEDIUM', 'HIGH', 'CRITICAL'])[1 + g %% 4], 'PENDING',"
            "  g * 10, 'R' || (g %% 50), now() - make_interval(mins => g)"
            " FROM generate_series(1, %s) AS g",
            (size,),
        )
    return [f"b-{n}" for n in range(1, size + 1)]


def one_run(size: int) -> float:
    folder = Path(tempfile.mkdtemp(prefix="msd-bench-batch-"))
    settings = load_settings({"data_dir": str(folder), "rate_limit": "off"}, environ={})
    services = open_services(settings)
    try:
        ids = _seed(services, size)
        _, token = accounts.create_token(services.db, "bench", "analyst")
        with TestClient(create_app(services)) as client:
            client.headers["Authorization"] = f"Bearer {token}"
            started = time.perf_counter()
            task_id = client.post("/api/alerts/batch_process/", json={"alert_ids": ids}).json()[
                "task_id"
            ]
            while (task := client.get(f"/api/tasks/{task_id}/").json())["state"] != "done":
                if task["state"] == "failed":
                    raise RuntimeError(f"the batch failed: {task['error']}")
                time.sleep(0.02)
            seconds = time.perf_counter() - started
        if task["counts"]["changed"] != size:
            raise RuntimeError(f"{task['counts']} instead of {size} changed")
        return seconds
    finally:
        services.close()
        stop_embedded_postgres(folder)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    for size in args.sizes:
        runs = [one_run(size) for _ in range(args.runs)]
        print(
            f"{size:>7,} alerts: median {statistics.median(runs):.2f} s request to done "
            f"(runs: {', '.join(f'{r:.2f}' for r in runs)})"
        )


if __name__ == "__main__":
    main()

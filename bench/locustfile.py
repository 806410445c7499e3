"""The replaced dashboard's load test, as it was written, against this API.

    MSD_BENCH_TOKEN=... MSD_BENCH_IDS_FILE=ids.json locust -f bench/locustfile.py --headless \\
        -u 200 -r 100 --run-time 60s --host http://127.0.0.1:8000

(``python bench/serving.py --data-dir DIR --locust 200 1000`` starts the server and runs it.)

Two user classes of equal weight, so users split evenly between them, as in the original:
``DashboardUser`` asks statistics (weight 3), risk trends (2), top companies (2), the list of
HIGH alerts (1) and sends a batch review of 100 to 500 random existing alert ids (1), waiting
1 to 3 s between tasks (the original's wait is not recorded; ``between(1, 3)`` is locust's
usual choice); ``StatisticsPoller`` asks statistics every 10 to 100 ms.

The batches *review* alerts (PENDING becomes REVIEWING): the data is changed by the run. The
task ids they answered are written to ``MSD_BENCH_TASKS_FILE.<pid>`` (when set) at the end, so that
the caller can check that no batch work is left queued.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from locust import FastHttpUser, between, events, task

TOKEN = os.environ.get("MSD_BENCH_TOKEN", "")
IDS: list[str] = json.loads(Path(os.environ["MSD_BENCH_IDS_FILE"]).read_text())
TASKS_FILE = os.environ.get("MSD_BENCH_TASKS_FILE")
created_tasks: list[str] = []


class _Authorized(FastHttpUser):
    abstract = True
    default_headers = {"Authorization": f"Bearer {TOKEN}"}


class DashboardUser(_Authorized):
    wait_time = between(1, 3)

    @task(3)
    def statistics(self) -> None:
        self.client.get("/api/alerts/statistics/")

    @task(2)
    def risk_trends(self) -> None:
        self.client.get("/api/alerts/risk_trends/")

    @task(2)
    def top_companies(self) -> None:
        self.client.get("/api/alerts/top_companies/")

    @task(1)
    def high_alerts(self) -> None:
        self.client.get("/api/alerts/?severity=HIGH", name="/api/alerts/?severity=HIGH")

    @task(1)
    def batch_process(self) -> None:
        ids = random.sample(IDS, random.randint(100, 500))
        with self.client.post(
            "/api/alerts/batch_process/", json={"alert_ids": ids}, catch_response=True
        ) as answer:
            if answer.status_code != 202:
                answer.failure(f"batch answered {answer.status_code}")
                return
            created_tasks.append(answer.json()["task_id"])


class StatisticsPoller(_Authorized):
    wait_time = between(0.01, 0.1)

    @task
    def statistics(self) -> None:
        self.client.get("/api/alerts/statistics/")


@events.quitting.add_listener
def _write_tasks(environment, **kwargs) -> None:  # type: ignore[no-untyped-def]
    if TASKS_FILE:
        # One file per process: with ``--processes`` each worker process has its own list.
        Path(f"{TASKS_FILE}.{os.getpid()}").write_text(json.dumps(created_tasks))

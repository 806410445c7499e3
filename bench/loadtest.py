"""Runs bench/locustfile.py headless against a server bench/serving.py started (``--locust``).

For each user count: ``locust --headless -u USERS -r SPAWN --run-time Ns``, then the totals
from its CSV summary (requests per second, p95, failures), then the state of every batch task
the run created, polled through ``GET /api/tasks/{id}/`` until none is queued or running (at
most ``DRAIN_SECONDS``): how many were still waiting when the load stopped, and how long the
queue took to empty.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["run_load_tests"]

SPAWN_PER_SECOND = 100
DRAIN_SECONDS = 120.0
DONE_STATES = {"done", "failed"}
TARGETS = {200: (1_410.0, 50.0), 1000: (None, 100.0)}


def run_load_tests(server: Any, args: Any) -> None:
    rows = [_one_load_test(server, users, args) for users in args.locust]
    print(f"\nlocust, {args.run_time} s per run, spawn {SPAWN_PER_SECOND}/s")
    print(f"{'users':>6} {'req/s':>9} {'p95 ms':>8} {'errors':>8} {'queued at end':>14} drained")
    for row in rows:
        print(
            f"{row['users']:>6} {row['rps']:>9,.0f} {row['p95']:>8.0f} {row['error_rate']:>8.2%}"
            f" {row['pending_at_end']:>7} of {row['tasks']:<5} {row['drained']}"
        )
        rps_target, p95_target = TARGETS.get(row["users"], (None, None))
        if rps_target is not None:
            print(f"  {'met' if row['rps'] >= rps_target else 'MISSED'} >= {rps_target:,.0f} req/s")
        if p95_target is not None:
            print(f"  {'met' if row['p95'] <= p95_target else 'MISSED'} p95 <= {p95_target:.0f} ms")


def _one_load_test(server: Any, users: int, args: Any) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="msd-locust-"))
    tasks_file = folder / "tasks.json"
    env = os.environ | {
        "MSD_BENCH_TOKEN": server.token,
        "MSD_BENCH_IDS_FILE": server.env["MSD_BENCH_IDS_FILE"],
        "MSD_BENCH_TASKS_FILE": str(tasks_file),
    }
    command = [
        str(Path(sys.executable).with_name("locust")),
        "-f",
        str(Path(__file__).with_name("locustfile.py")),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(min(users, SPAWN_PER_SECOND)),
        "--run-time",
        f"{args.run_time}s",
        "--host",
        server.url,
        "--csv",
        str(folder / "run"),
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    if args.locust_processes > 1:
        command += ["--processes", str(args.locust_processes)]
    print(f"locust: {users} users for {args.run_time} s", flush=True)
    subprocess.run(command, env=env, check=False, capture_output=True)
    total = _aggregated(folder / "run_stats.csv")
    tasks = [t for part in folder.glob("tasks.json.*") for t in json.loads(part.read_text())]
    pending_at_end, drained = _drain(server, tasks)
    requests = int(total["Request Count"])
    return {
        "users": users,
        "rps": float(total["Requests/s"]),
        "p95": float(total["95%"]),
        "error_rate": int(total["Failure Count"]) / requests if requests else 0.0,
        "tasks": len(tasks),
        "pending_at_end": pending_at_end,
        "drained": drained,
    }


def _aggregated(path: Path) -> dict[str, str]:
    with path.open() as stats:
        for row in csv.DictReader(stats):
            if row["Name"] == "Aggregated":
                return row
    raise RuntimeError(f"no Aggregated row in {path}")


def _drain(server: Any, tasks: list[str]) -> tuple[int, str]:
    """Tasks not finished when the load stopped, and how long until all were (or 'NOT')."""
    started = time.monotonic()
    pending = _pending(server, tasks)
    at_end = len(pending)
    while pending and time.monotonic() - started < DRAIN_SECONDS:
        time.sleep(0.5)
        pending = _pending(server, pending)
    if pending:
        return at_end, f"NOT: {len(pending)} still queued after {DRAIN_SECONDS:.0f} s"
    return at_end, f"in {time.monotonic() - started:.1f} s"


def _pending(server: Any, tasks: list[str]) -> list[str]:
    left = []
    for task_id in tasks:
        request = urllib.request.Request(
            f"{server.url}/api/tasks/{task_id}/",
            headers={"Authorization": f"Bearer {server.token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            if json.loads(answer.read())["state"] not in DONE_STATES:
                left.append(task_id)
    return left

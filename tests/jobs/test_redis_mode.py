"""Server mode: batch tasks through a Redis stream to real ``msd worker`` processes.

Each test uses a stream of its own on the local Redis (127.0.0.1:6379) and deletes it after.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import quote

import psycopg
import pytest
import redis
from litestar.testing import TestClient
from psycopg.conninfo import conninfo_to_dict
from taskiq_redis import RedisAsyncResultBackend

from jobs.broker import BrokerConfig, result_prefix
from jobs.queue import BatchQueue
from msd.cli import main
from msd.runtime import Services
from msd.settings import load_settings
from tests.jobs.conftest import deliveries_waiting, seed, update_events, wait_done

REDIS_URL = "redis://127.0.0.1:6379/0"
REPO = Path(__file__).resolve().parents[2]
URL = "/api/alerts/batch_process/"


@pytest.fixture
def stream() -> Iterator[str]:
    name = f"msd-test-{uuid.uuid4().hex[:12]}"
    yield name
    connection = redis.Redis.from_url(REDIS_URL)
    results = connection.scan_iter(match=f"{result_prefix(name)}:*")
    connection.delete(name, f"autoclaim:{name}:{name}", *results)
    connection.close()


def _stored_result(stream: str, task_id: str) -> Any:
    """What the last run of ``task_id`` returned, as the Redis result backend keeps it."""

    async def read() -> Any:
        backend = RedisAsyncResultBackend(REDIS_URL, prefix_str=result_prefix(stream))
        try:
            return (await backend.get_result(task_id)).return_value
        finally:
            await backend.shutdown()

    return asyncio.run(read())


def _messages(stream: str) -> int:
    connection = redis.Redis.from_url(REDIS_URL)
    try:
        return int(connection.xlen(stream))
    finally:
        connection.close()


def _url_for_subprocess(pg_server_url: str, pg_url: str) -> str:
    """The test's schema as a postgresql:// URL, the form MSD_DATABASE_URL takes."""
    options = conninfo_to_dict(pg_url)["options"]
    joiner = "&" if "?" in pg_server_url else "?"
    return f"{pg_server_url}{joiner}options={quote(str(options))}"


@pytest.fixture
def start_worker(
    pg_server_url: str, pg_url: str, stream: str, tmp_path: Path
) -> Iterator[Callable[[], subprocess.Popen]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSD_")}
    env |= {
        "MSD_DATABASE_URL": _url_for_subprocess(pg_server_url, pg_url),
        "MSD_REDIS_URL": REDIS_URL,
        "MSD_DATA_DIR": str(tmp_path / "data"),
        "PYTHONPATH": str(REPO),
    }
    started: list[subprocess.Popen] = []

    def start(concurrency: int = 1, **settings: str) -> subprocess.Popen:
        """A worker, once it has queued the unfinished tasks again and listens."""
        path = tmp_path / f"worker-{len(started)}.log"
        command = [sys.executable, "-m", "msd.cli", "worker", "--queue", stream]
        more = {f"MSD_{name.upper()}": value for name, value in settings.items()}
        with open(path, "w") as log:
            process = subprocess.Popen(
                command + ["--concurrency", str(concurrency)],
                env=env | more,
                stdout=log,
                stderr=log,
            )
        started.append(process)
        _wait_until(
            lambda: (
                "unfinished tasks queued again" in path.read_text() or process.poll() is not None
            ),
            "the worker's start",
        )
        assert process.poll() is None, path.read_text()
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def _redis_queue(services: Services, stream: str, chunk_size: int) -> BatchQueue:
    settings = load_settings({"redis_url": REDIS_URL}, environ={})
    return BatchQueue(settings, services.db, BrokerConfig(queue_name=stream), chunk_size=chunk_size)


def _wait_progress(client: TestClient, task_id: str, at_least: int) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body = client.get(f"/api/tasks/{task_id}/").json()
        if body["progress"]["processed"] >= at_least:
            return body
        time.sleep(0.02)
    raise AssertionError(f"task {task_id} made no progress in 30s: {body}")


def test_batch_survives_a_worker_killed_mid_run_and_changes_each_alert_once(
    client: TestClient, services: Services, stream: str, start_worker: Callable
) -> None:
    client.app.state.batch_queue = _redis_queue(services, stream, chunk_size=50)
    ids = seed(services.db, 6_000)
    first = start_worker()

    task_id = client.post(URL, json={"alert_ids": ids}).json()["task_id"]
    _wait_progress(client, task_id, at_least=300)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    stopped = client.get(f"/api/tasks/{task_id}/").json()
    start_worker()
    done = wait_done(client, task_id, timeout=60)

    assert stopped["state"] == "running" and stopped["progress"]["processed"] < 6_000
    assert done["state"] == "done" and done["attempts"] == 2
    assert done["counts"]["changed"] == 6_000
    changes = update_events(services.db, "b-")
    assert len(changes) == 6_000 and set(changes.values()) == {1}
    assert _stored_result(stream, task_id) == "done"


def test_a_running_worker_takes_over_the_batch_of_a_worker_killed_mid_run(
    client: TestClient, services: Services, stream: str, start_worker: Callable
) -> None:
    client.app.state.batch_queue = _redis_queue(services, stream, chunk_size=50)
    ids = seed(services.db, 600)
    first = start_worker()

    with psycopg.connect(services.db.url) as holder:
        # The run commits six chunks, then waits for this row: it is mid-run when killed.
        holder.execute("SELECT 1 FROM alerts WHERE alert_id = %s FOR UPDATE", (ids[300],))
        task_id = client.post(URL, json={"alert_ids": ids}).json()["task_id"]
        _wait_progress(client, task_id, at_least=300)
        # Its start queues the unfinished task again; that delivery waits behind the run.
        second = start_worker()
        _wait_until(lambda: deliveries_waiting(services.db, task_id) == 1, "a second delivery")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed = client.get(f"/api/tasks/{task_id}/").json()
    done = wait_done(client, task_id, timeout=60)

    assert (killed["state"], killed["progress"]["processed"]) == ("running", 300)
    assert done["state"] == "done" and done["runs"] == 2 and second.poll() is None
    assert done["counts"]["changed"] == 600
    changes = update_events(services.db, "b-")
    assert len(changes) == 600 and set(changes.values()) == {1}


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        time.sleep(0.05)


def test_the_same_idempotency_key_over_redis_queues_one_task_that_applies_once(
    client: TestClient, services: Services, stream: str, start_worker: Callable
) -> None:
    client.app.state.batch_queue = _redis_queue(services, stream, chunk_size=50)
    ids = seed(services.db, 500)
    start_worker()
    body = {"alert_ids": ids, "idempotency_key": "close-q3"}

    answers = [client.post(URL, json=body) for _ in range(3)]
    task_id = answers[0].json()["task_id"]
    done = wait_done(client, task_id)
    after = client.post(URL, json=body)

    assert [a.status_code for a in answers] == [202] * 3
    assert {a.json()["task_id"] for a in answers} == {task_id}
    assert after.json() == {"task_id": task_id, "status": "done"}
    assert _messages(stream) == 1
    assert (done["runs"], done["counts"]["changed"]) == (1, 500)
    assert update_events(services.db, "b-") == {alert_id: 1 for alert_id in ids}


def test_a_batch_that_kills_every_worker_running_it_is_failed_after_the_run_limit(
    client: TestClient, services: Services, stream: str, start_worker: Callable, tmp_path: Path
) -> None:
    client.app.state.batch_queue = _redis_queue(services, stream, chunk_size=50)
    ids = seed(services.db, 30_000)
    task_id = client.post(URL, json={"alert_ids": ids}).json()["task_id"]

    def under_way(run: int, past: int) -> bool:
        task = client.get(f"/api/tasks/{task_id}/").json()
        return task["runs"] == run and task["progress"]["processed"] >= past

    # Each run is a real worker process killed mid-run, as a batch that crashes its worker
    # would: the task resumes on the next worker and is killed there again.
    try:
        committed = 0
        for run in (1, 2):
            worker = start_worker(batch_max_runs="2")
            _wait_until(lambda: under_way(run, committed + 2_000), f"run {run} under way", 60)
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
            committed = client.get(f"/api/tasks/{task_id}/").json()["progress"]["processed"]
        killed = client.get(f"/api/tasks/{task_id}/").json()
        survivor = start_worker(batch_max_runs="2")
        failed = wait_done(client, task_id, timeout=60)
    except AssertionError:
        for log in sorted(tmp_path.glob("worker-*.log")):
            print(log.name, log.read_text()[-3000:])
        raise

    assert (killed["state"], killed["runs"]) == ("running", 2)
    assert failed["state"] == "failed" and failed["runs"] == 2
    processed = failed["progress"]["processed"]
    assert processed == killed["progress"]["processed"] < 30_000
    assert "after 2 runs" in failed["error"] and f"{processed:,} of 30,000" in failed["error"]
    changes = update_events(services.db, "b-")
    assert len(changes) == failed["counts"]["changed"] == processed
    assert set(changes.values()) == {1}
    # The worker that refused the batch lives on and takes the next one.
    healthy = seed(services.db, 5, prefix="h-")
    after = wait_done(client, client.post(URL, json={"alert_ids": healthy}).json()["task_id"])
    assert after["state"] == "done" and survivor.poll() is None
    assert _stored_result(stream, task_id) == "failed"


def test_a_worker_runs_as_many_batches_at_once_as_its_concurrency(
    client: TestClient, services: Services, stream: str, start_worker: Callable
) -> None:
    client.app.state.batch_queue = _redis_queue(services, stream, chunk_size=50)
    batches = [seed(services.db, 3, prefix=prefix) for prefix in ("x-", "y-")]
    start_worker(concurrency=2)

    def states() -> list[str]:
        return [client.get(f"/api/tasks/{task_id}/").json()["state"] for task_id in task_ids]

    with psycopg.connect(services.db.url) as holder:
        # Each batch's first alert is held: a run that starts stays running until released.
        holder.execute(
            "SELECT 1 FROM alerts WHERE alert_id = ANY(%s) FOR UPDATE", (["x-1", "y-1"],)
        )
        task_ids = [client.post(URL, json={"alert_ids": ids}).json()["task_id"] for ids in batches]
        _wait_until(lambda: states() == ["running", "running"], "two runs at once", timeout=10)
    done = [wait_done(client, task_id) for task_id in task_ids]

    assert [(d["state"], d["counts"]["changed"]) for d in done] == [("done", 3), ("done", 3)]


def test_a_worker_refuses_a_concurrency_below_one(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["worker", "--concurrency", "0", "--redis-url", REDIS_URL])

    assert code == 2
    assert "--concurrency 0: a worker runs at least 1 task at a time" in capsys.readouterr().err


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_batch_is_refused_with_503_and_not_recorded_when_redis_is_down(
    client: TestClient, services: Services
) -> None:
    settings = load_settings({"redis_url": f"redis://127.0.0.1:{_closed_port()}/0"}, environ={})
    client.app.state.batch_queue = BatchQueue(settings, services.db)
    ids = seed(services.db, 3)

    response = client.post(URL, json={"alert_ids": ids, "idempotency_key": "retry-me"})

    assert response.status_code == 503
    assert "Redis" in response.json()["detail"] and response.headers["retry-after"]
    with services.db.reading() as conn:
        assert conn.execute("SELECT count(*) FROM batch_tasks").fetchone() == (0,)

"""HTTP benchmarks of the API on loopback, served by granian as in production.

    python bench/serving.py --data-dir DIR [--alerts 200000] [--duration 15] [--connections 64]
    python bench/serving.py --data-dir DIR --locust 200 1000 [--run-time 60]

**Embedded mode** (``--data-dir`` only): the server is

    granian --interface asgi --factory --workers 1 --host 127.0.0.1 --port PORT \\
        msd.asgi:create_embedded_app

with ``MSD_DATA_DIR=DIR``. One worker only: the embedded ClickHouse (chdb) opens a data folder
in one process, so that worker is the whole service (replication and batch tasks included).
An empty folder is first filled with ``--alerts`` generated alerts and replicated.

**Server mode** (``--database-url`` and ``--redis-url``): the server is, as in compose.yml,

    granian --interface asgi --factory --workers N --host 127.0.0.1 --port PORT \\
        msd.asgi:create_app

with ``--workers`` processes (default 2). Without ``--clickhouse-url`` the ClickHouse side is
*the test stand-in* (tests/clickhouse_http.py: ClickHouse's HTTP interface served by chdb in
this benchmark process, over ``--data-dir``'s folder), since no ClickHouse server runs here: its
figures measure the API and its cache, not a ClickHouse server. A ``--database-url`` that holds
no alerts is filled with ``--alerts`` generated ones; this process replicates them once before
the run, and starts ``msd replicate`` and ``msd worker`` beside the API for the load test.

Every run sets ``MSD_RATE_LIMIT=off`` (the limiter would answer 429 to the benchmark's one
token), creates an admin token, warms the cache (each URL asked until it answers ``X-Cache:
hit``) and then runs, for each URL, ``wrk -t2 -c64 -d15s --latency -H 'Authorization: Bearer
TOKEN' URL``. It prints requests per second, p50 and p99, each endpoint's rate against the
trivial one (``/health/live``, which touches no store), the targets, and the peak resident
memory (VmHWM) of the granian processes.

``--first-load VISITS`` times new browsers' first visits to the dashboard instead
(bench/first_load.py), the first against a server whose answer cache is still empty.

``--locust USERS...`` runs bench/locustfile.py instead (the replaced dashboard's load test),
headless, ``--run-time`` seconds per user count. Its batch tasks *review* random existing
alerts: after a load test the data folder (or database) is no longer as generated; build a new
one for figures that must start from pristine data.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
TRIVIAL = "/health/live"
ENDPOINTS = (
    ("trivial", TRIVIAL),
    ("statistics (cached)", "/api/alerts/statistics/"),
    ("risk_trends (cached)", "/api/alerts/risk_trends/"),
    ("top_companies (cached)", "/api/alerts/top_companies/"),
    ("list severity=HIGH", "/api/alerts/?severity=HIGH"),
)
CACHED = {"/api/alerts/statistics/", "/api/alerts/risk_trends/", "/api/alerts/top_companies/"}
# The replaced dashboard's figures (see its measurements), and what this service must reach.
STATISTICS_TARGET_RPS = 24_440
STATISTICS_TARGET_RATIO = 0.60
STATISTICS_TARGET_P99_MS = 25.0
LIST_TARGET_RPS = 780
LIST_TARGET_P99_MS = 30.0
LOCUST_TARGETS = {200: (1_410.0, 50.0), 1000: (None, 100.0)}
SAMPLE_IDS = 20_000


@dataclass
class WrkResult:
    name: str
    path: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int


@dataclass
class Server:
    """The running granian server and what it was started with."""

    process: subprocess.Popen
    url: str
    token: str
    env: dict[str, str]
    helpers: list[subprocess.Popen] = field(default_factory=list)

    def processes(self) -> list[int]:
        """granian's main process and its workers."""
        return [self.process.pid, *_children(self.process.pid)]

    def peak_rss_kib(self) -> dict[int, int]:
        return {pid: _vm_hwm_kib(pid) for pid in self.processes()}


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _vm_hwm_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    return int(match.group(1)) if match else 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _settings_env(args: argparse.Namespace, clickhouse_url: str | None) -> dict[str, str]:
    env = {
        "MSD_RATE_LIMIT": "off",
        "MSD_LOG_LEVEL": args.log_level,
        "MSD_DATA_DIR": str(Path(args.data_dir).resolve()),
    }
    if args.database_url:
        env["MSD_DATABASE_URL"] = args.database_url
    if args.redis_url:
        env["MSD_REDIS_URL"] = args.redis_url
    if clickhouse_url:
        env["MSD_CLICKHOUSE_URL"] = clickhouse_url
    return env


def _prepare_data(env: dict[str, str], alerts: int) -> tuple[str, list[str]]:
    """Fill an empty store with generated alerts, replicate, make a token; sample alert ids."""
    from ingest.generate import load_generated
    from msd.runtime import open_services
    from msd.settings import load_settings
    from workflow import accounts

    services = open_services(load_settings(environ=env), pool_size=2)
    try:
        with services.db.reading() as conn:
            stored = conn.execute("SELECT count(*) FROM alerts").fetchone()[0]
            conn.rollback()
        if stored == 0:
            print(f"loading {alerts:,} generated alerts...", flush=True)
            print(load_generated(services.db, alerts, now=datetime.now(timezone.utc)).summary())
        else:
            print(f"the store holds {stored:,} alerts")
        moved = services.replicator.drain()
        if moved:
            print(f"replicated {moved:,} change events")
        _, token = accounts.create_token(services.db, "http benchmark", "admin")
        with services.db.reading() as conn:
            ids = [
                row[0]
                for row in conn.execute(
                    "SELECT alert_id FROM alerts ORDER BY random() LIMIT %s", (SAMPLE_IDS,)
                ).fetchall()
            ]
            conn.rollback()
    finally:
        services.close()
    return token, ids


def _wait_until_live(url: str, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"granian exited with {process.returncode} before answering")
        try:
            with urllib.request.urlopen(url + TRIVIAL, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise RuntimeError(f"granian did not answer {TRIVIAL} within {timeout:.0f}s")


def _granian_command(args: argparse.Namespace, port: int, factory: str, workers: int) -> list[str]:
    granian = Path(sys.executable).with_name("granian")
    return [
        str(granian),
        "--interface",
        "asgi",
        "--factory",
        "--workers",
        str(workers),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *args.granian_arg,
        factory,
    ]


def _spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        env=os.environ | env,
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def running_server(args: argparse.Namespace, *, with_helpers: bool) -> Iterator[Server]:
    """Start granian (and in server mode the ClickHouse stand-in, replicator and worker)."""
    server_mode = bool(args.database_url or args.redis_url)
    if server_mode and not (args.database_url and args.redis_url):
        raise SystemExit("server mode needs both --database-url and --redis-url")
    standin = None
    clickhouse_url = args.clickhouse_url
    if server_mode and clickhouse_url is None:
        standin, clickhouse_url = _start_standin(Path(args.data_dir))
    env = _settings_env(args, clickhouse_url)
    log = Path(tempfile.gettempdir()) / f"msd-bench-serving-{os.getpid()}.log"
    token, ids = _prepare_data(env, args.alerts)
    ids_file = Path(tempfile.gettempdir()) / f"msd-bench-ids-{os.getpid()}.json"
    ids_file.write_text(json.dumps(ids))
    env["MSD_BENCH_IDS_FILE"] = str(ids_file)
    port = args.port or _free_port()
    factory = "msd.asgi:create_app" if server_mode else "msd.asgi:create_embedded_app"
    workers = args.workers if server_mode else 1
    command = _granian_command(args, port, factory, workers)
    print("server:", " ".join(command), f"(log {log})", flush=True)
    helpers = []
    if server_mode and with_helpers:
        msd = str(Path(sys.executable).with_name("msd"))
        helpers = [_spawn([msd, "replicate"], env, log), _spawn([msd, "worker"], env, log)]
    process = _spawn(command, env, log)
    server = Server(process, f"http://127.0.0.1:{port}", token, env, helpers)
    try:
        _wait_until_live(server.url, process)
        yield server
    finally:
        for child in (process, *helpers):
            _stop(child)
        ids_file.unlink(missing_ok=True)
        if standin is not None:
            standin[0].stop()
            standin[1].close()
        if not server_mode:
            from workflow.embedded import stop_embedded_postgres

            stop_embedded_postgres(Path(args.data_dir).resolve())


def _start_standin(folder: Path):  # type: ignore[no-untyped-def]
    """ClickHouse's HTTP interface over chdb in this process (tests/clickhouse_http.py)."""
    from olap.store import EmbeddedStore

    sys.path.insert(0, str(ROOT))  # the stand-in lives with the tests, not in the package
    from tests.clickhouse_http import serve_clickhouse_http

    anchor = EmbeddedStore(folder.resolve() / "clickhouse", "default")
    standin = serve_clickhouse_http()
    print(f"ClickHouse: the test stand-in over chdb at {standin.url} (no ClickHouse server)")
    return (standin, anchor), standin.url


def _get(server: Server, path: str) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(
        server.url + path, headers={"Authorization": f"Bearer {server.token}"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        answer.read()
        return answer.status, {k.lower(): v for k, v in answer.headers.items()}


def warm(server: Server, workers: int) -> None:
    """Ask each URL until it is a cache hit (once per worker at least: caches are per process)."""
    for _, path in ENDPOINTS:
        for _ in range(max(4, 4 * workers)):
            status, headers = _get(server, path)
            if status != 200:
                raise RuntimeError(f"{path} answered {status} while warming up")
        if path in CACHED and headers.get("x-cache") != "hit":
            raise RuntimeError(f"{path} is still a cache {headers.get('x-cache')} after warming")


_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(server: Server, name: str, path: str, args: argparse.Namespace) -> WrkResult:
    command = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        "--latency",
        "-H",
        f"Authorization: Bearer {server.token}",
        server.url + path,
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return parse_wrk(name, path, output)


def parse_wrk(name: str, path: str, output: str) -> WrkResult:
    latency = {q: float(v) * _UNITS_MS[u] for q, v, u in _LATENCY.findall(output)}
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    requests = re.search(r"^\s+(\d+) requests in", output, re.M)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if rps is None or "50" not in latency or "99" not in latency or requests is None:
        raise RuntimeError(f"cannot read wrk's output for {path}:\n{output}")
    errors = int(non_2xx.group(1)) if non_2xx else 0
    errors += sum(int(n) for n in sockets.groups()) if sockets else 0
    return WrkResult(
        name,
        path,
        float(rps.group(1)),
        latency["50"],
        latency["99"],
        errors,
        int(requests.group(1)),
    )


def _mode(args: argparse.Namespace) -> str:
    if args.database_url:
        return f"server mode, {args.workers} workers"
    return "embedded, 1 worker"


def print_wrk_table(
    results: list[WrkResult], rss: dict[int, int], args: argparse.Namespace
) -> None:
    trivial = results[0].rps
    print(
        f"\nwrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency "
        f"(granian, {_mode(args)})"
    )
    print(
        f"{'endpoint':<24} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'/trivial':>9} {'errors':>7}"
    )
    for r in results:
        print(
            f"{r.name:<24} {r.rps:>10,.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f}"
            f" {r.rps / trivial:>8.0%} {r.errors:>7}"
        )
    by_path = {r.path: r for r in results}
    stats = by_path["/api/alerts/statistics/"]
    listing = by_path["/api/alerts/?severity=HIGH"]
    checks = [
        (
            f"statistics >= {STATISTICS_TARGET_RATIO:.0%} of trivial",
            stats.rps / trivial >= STATISTICS_TARGET_RATIO,
        ),
        (f"statistics >= {STATISTICS_TARGET_RPS:,} req/s", stats.rps >= STATISTICS_TARGET_RPS),
        (
            f"statistics p99 <= {STATISTICS_TARGET_P99_MS:.0f} ms",
            stats.p99_ms <= STATISTICS_TARGET_P99_MS,
        ),
        (
            f"list >= {LIST_TARGET_RPS} req/s (target set at 1M alerts)",
            listing.rps >= LIST_TARGET_RPS,
        ),
        (f"list p99 <= {LIST_TARGET_P99_MS:.0f} ms", listing.p99_ms <= LIST_TARGET_P99_MS),
        ("no errors", all(r.errors == 0 for r in results)),
    ]
    for label, ok in checks:
        print(f"  {'met' if ok else 'MISSED':<7} {label}")
    print("peak RSS (VmHWM): " + ", ".join(f"pid {p} {k / 1024:,.0f} MiB" for p, k in rss.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="the data folder (embedded mode)")
    parser.add_argument("--alerts", type=int, default=200_000, help="alerts to generate if empty")
    parser.add_argument("--database-url", help="PostgreSQL server (server mode)")
    parser.add_argument("--redis-url", help="Redis (server mode)")
    parser.add_argument("--clickhouse-url", help="ClickHouse server (default: the stand-in)")
    parser.add_argument("--workers", type=int, default=2, help="granian workers (server mode)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    parser.add_argument("--only", nargs="+", help="names of endpoints to run (e.g. trivial)")
    parser.add_argument("--log-level", default="INFO", help="MSD_LOG_LEVEL of the server")
    parser.add_argument(
        "--granian-arg", action="append", default=[], help="extra granian option (repeatable)"
    )
    parser.add_argument("--locust", type=int, nargs="+", metavar="USERS", help="load test")
    parser.add_argument("--run-time", type=int, default=60, help="seconds per load test")
    parser.add_argument("--locust-processes", type=int, default=1)
    parser.add_argument(
        "--first-load", type=int, metavar="VISITS", help="time dashboard visits in Chromium"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if shutil.which("wrk") is None and not args.locust:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")

    workers = args.workers if args.database_url else 1
    with running_server(args, with_helpers=bool(args.locust)) as server:
        if args.first_load:
            from first_load import run_first_loads

            run_first_loads(server.url, server.token, args.first_load)
            rss = server.peak_rss_kib()
            print("peak RSS (VmHWM): " + ", ".join(f"{k / 1024:,.0f} MiB" for k in rss.values()))
            return
        warm(server, workers)
        if args.locust:
            from loadtest import run_load_tests

            run_load_tests(server, args)
            rss = server.peak_rss_kib()
            print(
                "peak RSS (VmHWM): "
                + ", ".join(f"pid {p} {k / 1024:,.0f} MiB" for p, k in rss.items())
            )
            return
        chosen = [(n, p) for n, p in ENDPOINTS if not args.only or n.split()[0] in args.only]
        results = []
        for name, path in chosen:
            results.append(run_wrk(server, name, path, args))
            r = results[-1]
            print(
                f"  {name}: {r.rps:,.0f} req/s, p50 {r.p50_ms:.2f} ms, p99 {r.p99_ms:.2f} ms",
                flush=True,
            )
        rss = server.peak_rss_kib()
    if len(results) == len(ENDPOINTS):
        print_wrk_table(results, rss, args)


if __name__ == "__main__":
    main()

"""Server mode as compose runs it, on loopback: granian with several API workers built by
msd.asgi:create_app, a PostgreSQL primary and a read replica, ClickHouse over HTTP, a Redis of
this test's own, and nginx with deploy/nginx.conf in front.

Everything is real except ClickHouse, which is the HTTP stand-in over the run's embedded engine
(no ClickHouse server can be installed here). Every process listens on 127.0.0.1 only and is
stopped by its own process id.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator

import httpx
import psycopg
import pytest

from api.app import MAX_BODY_BYTES
from olap.store import EmbeddedStore
from tests.clickhouse_http import ClickHouseHTTPStandIn
from tests.pg_schemas import fresh_schema_url
from workflow import accounts
from workflow.db import Database

REPO = Path(__file__).resolve().parents[2]
NGINX_CONF = REPO / "deploy" / "nginx.conf"
WORKERS = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until(check, what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"{what} did not come up within {seconds:.0f}s")


def _insert(url: str, *alert_ids: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("SELECT set_config('msd.actor', 'seed', true)")
        for alert_id in alert_ids:
            conn.execute(
                "INSERT INTO alerts (alert_id, company_name, violation_type, severity, status,"
                " detected_at) VALUES (%s, 'Stack Bank', 'spoofing', 'LOW', 'PENDING',"
                " now() - interval '1 day')",
                (alert_id,),
            )


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis of this module's own (the shared one's cache keys are not partitioned by test)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed; the server-mode stack needs it")
    port = _free_port()
    folder = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    _wait_until(answers, "the test's redis-server")
    yield f"redis://127.0.0.1:{port}/0"
    client.close()
    _stop(process)


@pytest.fixture(scope="module")
def databases(pg_server_url: str) -> Iterator[tuple[str, str]]:
    """(primary, replica) URLs: two schemas holding different alerts."""
    with fresh_schema_url(pg_server_url) as primary, fresh_schema_url(pg_server_url) as replica:
        _insert(primary, "primary-1", "primary-2", "primary-3")
        _insert(replica, "replica-1")
        yield primary, replica


@pytest.fixture(scope="module")
def auth(databases: tuple[str, str]) -> dict[str, str]:
    """A viewer token, kept (as every credential) in the primary."""
    primary = Database(databases[0], max_size=1)
    try:
        return {"Authorization": f"Bearer {accounts.create_token(primary, 'stack', 'viewer')[1]}"}
    finally:
        primary.close()


@pytest.fixture(scope="module")
def api(
    databases: tuple[str, str],
    redis_url: str,
    clickhouse_http: ClickHouseHTTPStandIn,
    clickhouse_folder: Path,
) -> Iterator[tuple[str, subprocess.Popen]]:
    """granian running WORKERS API workers, started as compose.yml starts it."""
    primary, replica = databases
    database = f"msd_stack_{uuid.uuid4().hex[:12]}"
    port = _free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MSD_", "GRANIAN_"))}
    environ |= {
        "MSD_DATABASE_URL": primary,
        "MSD_DATABASE_REPLICA_URL": replica,
        "MSD_CLICKHOUSE_URL": clickhouse_http.url,
        "MSD_CLICKHOUSE_DATABASE": database,
        "MSD_REDIS_URL": redis_url,
        "MSD_LOG_LEVEL": "WARNING",
    }
    granian = Path(sys.executable).with_name("granian")
    process = subprocess.Popen(
        [
            str(granian),
            "--interface",
            "asgi",
            "--factory",
            "--workers",
            str(WORKERS),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "msd.asgi:create_app",
        ],
        cwd=REPO,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            pytest.fail(f"granian exited: {process.stderr.read().decode()[-2000:]}")
        try:
            return httpx.get(base + "/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    _wait_until(healthy, "granian with msd.asgi:create_app", 90)
    yield base, process
    _stop(process)
    store = EmbeddedStore(clickhouse_folder, database)
    store.drop_database()
    store.close()


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()]


def test_the_api_runs_in_several_worker_processes(api: tuple[str, subprocess.Popen]) -> None:
    base, process = api
    assert len(_children(process.pid)) == WORKERS
    seen = [httpx.get(base + "/health", timeout=5).json() for _ in range(4)]
    assert all(h["postgres"] == "ok" and h["clickhouse"] == "ok" for h in seen)
    assert all(h["cache"] == "ok" for h in seen)


def test_workers_read_the_list_from_the_replica_and_one_alert_from_the_primary(
    api: tuple[str, subprocess.Popen], auth: dict[str, str]
) -> None:
    base, _ = api
    for _ in range(4):  # more requests than workers: each worker is configured the same
        listed = httpx.get(base + "/api/alerts/", headers=auth, timeout=5).json()
        assert [row["alert_id"] for row in listed["results"]] == ["replica-1"]
    one = httpx.get(base + "/api/alerts/primary-1/", headers=auth, timeout=5)
    assert one.status_code == 200
    missing = httpx.get(base + "/api/alerts/replica-1/", headers=auth, timeout=5)
    assert missing.status_code == 404


def test_a_worker_refuses_embedded_mode_and_names_the_missing_urls() -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MSD_")}
    done = subprocess.run(
        [sys.executable, "-c", "from msd.asgi import create_app; create_app()"],
        cwd=REPO,
        env=environ | {"MSD_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"},
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "MSD_CLICKHOUSE_URL and MSD_REDIS_URL are unset" in done.stderr
    assert "msd serve" in done.stderr


# ---- nginx in front (deploy/nginx.conf) ----


def _nginx_binary() -> str | None:
    found = shutil.which("nginx")
    return found or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None)


def _certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "tls.crt", folder / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost"]
        + ["-days", "1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


def local_nginx_conf(folder: Path, upstream: str | None = None) -> tuple[Path, int, int]:
    """deploy/nginx.conf with only its placeholders and host paths made local to ``folder``:
    a test certificate, loopback ports (and, when given, ``upstream`` as the one instance), and
    temporary folders in place of the Debian build's compiled-in /var/lib/nginx."""
    cert, key = _certificate(folder)
    plain, tls = _free_port(), _free_port()
    text = NGINX_CONF.read_text(encoding="utf-8")
    text = text.replace("/etc/nginx/tls/msd.crt", str(cert))
    text = text.replace("/etc/nginx/tls/msd.key", str(key))
    text = re.sub(r"^pid .*;$", f"pid {folder}/nginx.pid;", text, flags=re.MULTILINE)
    text = text.replace("listen 80;", f"listen 127.0.0.1:{plain};")
    text = text.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{tls} ssl;")
    if upstream is not None:
        servers = re.compile(r"(upstream msd_api \{\n\s+least_conn;\n)(\s+server .*\n)+")
        text = servers.sub(rf"\1        server {upstream};\n", text)
    temp = " ".join(
        f"{kind}_temp_path {folder}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    text = text.replace("http {\n", "http {\n    " + temp + "\n", 1)
    conf = folder / "nginx.conf"
    conf.write_text(text, encoding="utf-8")
    return conf, plain, tls


def test_nginx_accepts_the_example_config(tmp_path: Path) -> None:
    nginx = _nginx_binary()
    if nginx is None:
        pytest.skip("nginx is not installed (Debian package nginx)")
    conf, _, _ = local_nginx_conf(tmp_path)
    done = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(conf), "-e", "stderr"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


@pytest.fixture(scope="module")
def balancer(api: tuple[str, subprocess.Popen]) -> Iterator[tuple[str, str]]:
    nginx = _nginx_binary()
    if nginx is None:
        pytest.skip("nginx is not installed (Debian package nginx)")
    # Directly under /tmp: nginx's workers run as an unprivileged user and must reach their
    # temporary folders, which pytest's own (mode 700) folders would not let them.
    folder = Path(tempfile.mkdtemp(prefix="msd-nginx-", dir="/tmp"))
    folder.chmod(0o755)
    conf, plain, tls = local_nginx_conf(folder, upstream=api[0].removeprefix("http://"))
    process = subprocess.Popen(
        [nginx, "-p", str(folder), "-c", str(conf), "-e", "stderr", "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"https://127.0.0.1:{tls}"

    def up() -> bool:
        if process.poll() is not None:
            pytest.fail(f"nginx exited: {process.stderr.read().decode()[-2000:]}")
        try:
            return httpx.get(base + "/health", verify=False, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    _wait_until(up, "nginx with deploy/nginx.conf", 30)
    yield base, f"http://127.0.0.1:{plain}"
    _stop(process, signal.SIGQUIT)
    shutil.rmtree(folder, ignore_errors=True)


def test_the_balancer_passes_the_api_through_and_compresses_json(
    balancer: tuple[str, str], auth: dict[str, str]
) -> None:
    base, _ = balancer
    listed = httpx.get(base + "/api/alerts/", headers=auth, verify=False, timeout=5)
    assert listed.status_code == 200
    assert [row["alert_id"] for row in listed.json()["results"]] == ["replica-1"]

    with httpx.Client(verify=False, headers={"Accept-Encoding": "gzip"}) as client:
        raw = client.build_request("GET", base + "/schema/openapi.json")
        answer = client.send(raw, stream=True)
        body = answer.read()  # httpx decodes gzip; the header says what crossed the wire
    assert answer.headers["content-encoding"] == "gzip"
    assert body.startswith(b"{") and b'"openapi"' in body


def test_the_balancer_refuses_bodies_over_the_api_limit_itself(balancer: tuple[str, str]) -> None:
    base, _ = balancer
    too_big = b"[" + b" " * MAX_BODY_BYTES + b"]"
    answer = httpx.post(
        base + "/api/alerts/",
        content=too_big,
        headers={"Content-Type": "application/json"},
        verify=False,
        timeout=30,
    )
    assert answer.status_code == 413
    assert answer.headers.get("server") == "nginx"  # stopped before it reached an instance


def test_plain_http_is_sent_to_https(balancer: tuple[str, str]) -> None:
    _, plain = balancer
    answer = httpx.get(plain + "/api/alerts/", timeout=5)
    assert answer.status_code == 301
    assert answer.headers["location"].startswith("https://")

"""A real service on loopback over real data, and Debian's Chromium driven by Playwright.

One server and one browser serve the whole run of these tests: a PostgreSQL schema and a
ClickHouse database of their own, loaded with the real CFPB complaints sample and 6,000 alerts
from the documented generator (spread over the last 60 days, so that the default 30-day window
is full), replicated in the background as ``msd serve`` does.

Chromium comes from Debian's ``chromium`` package, never from a download. Without it these
tests skip, or fail when ``MSD_REQUIRE_BROWSER=1`` (CI sets it) so that a missing browser never
passes for a green run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from api.app import create_app
from ingest import ingest_files
from ingest.generate import load_generated
from msd.runtime import Services
from msd.settings import load_settings
from olap.replicator import Replicator
from olap.store import EmbeddedStore
from tests.loopback_server import LoopbackServer
from workflow import accounts
from workflow.db import Database, apply_migrations

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Without this rule Chromium still asks DNS for Google's hosts; with it nothing leaves.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
GENERATED_ALERTS = 6_000
CFPB = "cfpb_consumer_complaints/cfpb_complaints_fullschema_sample.csv"


def _no_browser(reason: str) -> None:
    if os.environ.get("MSD_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (MSD_REQUIRE_BROWSER=1 requires the browser tests to run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _no_browser(f"{CHROMIUM} is missing: install Debian's package (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _no_browser("playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as playwright:
        # Playwright gives each launch a fresh temporary profile (user data dir) of its own.
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def ui_services(
    pg_server_url: str, clickhouse_folder: Path, shared_data: Path
) -> Iterator[Services]:
    schema = f"msd_ui_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = make_conninfo(pg_server_url, options=f"-csearch_path={schema}")
    apply_migrations(url)
    db = Database(url, max_size=8)
    store = EmbeddedStore(clickhouse_folder, f"msd_ui_{uuid.uuid4().hex[:12]}")
    store.migrate()
    rejects = Path(tempfile.mkdtemp(prefix="msd-ui-rejects-"))
    ingest_files(db, [shared_data / CFPB], rejects_path=rejects / "cfpb.rejects.csv")
    load_generated(db, GENERATED_ALERTS, seed=7, days=60)
    settings = load_settings(
        {"clickhouse_database": store.database, "replication_interval": "0.2"}, environ={}
    )
    services = Services(settings, db, store, Replicator(db, store))
    services.replicator.drain()
    services.start_replication()
    yield services
    services.close()  # stops replication, closes the pool and the store
    dropper = EmbeddedStore(clickhouse_folder, store.database)
    dropper.drop_database()
    dropper.close()
    shutil.rmtree(rejects, ignore_errors=True)
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


SUPERVISOR = ("supervisor", "a long test password")


@pytest.fixture(scope="session")
def live_server(ui_services: Services) -> Iterator[LoopbackServer]:
    """The service on loopback; ``server.client`` calls its API with an admin token."""
    accounts.add_user(ui_services.db, *SUPERVISOR, "analyst")
    _, token = accounts.create_token(ui_services.db, "ui tests", "admin")
    with LoopbackServer(create_app(ui_services)) as server:
        server.client = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        yield server
        server.client.close()


def new_context(browser: Any, live_server: LoopbackServer, **options: Any) -> Any:
    """A browser context signed in as the supervisor (an analyst) through the real sign-in."""
    chosen = {"viewport": {"width": 1280, "height": 900}, "color_scheme": "light"} | options
    context = browser.new_context(base_url=live_server.url, timezone_id="UTC", **chosen)
    context.set_default_timeout(15_000)
    username, password = SUPERVISOR
    signed_in = context.request.post(
        "/api/session/", data={"username": username, "password": password}
    )
    assert signed_in.ok, signed_in.text()
    return context


@pytest.fixture
def page(browser: Any, live_server: LoopbackServer) -> Iterator[Any]:
    context = new_context(browser, live_server)
    opened = context.new_page()
    yield opened
    context.close()


@pytest.fixture(autouse=True)
def _no_page_errors(request: pytest.FixtureRequest) -> Any:
    """An uncaught script error or a refusal by the page's policy fails the test that caused it."""
    if "page" not in request.fixturenames:
        yield
        return
    page = request.getfixturevalue("page")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: _policy_refusal(message, errors))
    yield
    assert not errors, errors


def _policy_refusal(message: Any, errors: list[str]) -> None:
    if "Content Security Policy" in message.text:
        errors.append(message.text)

"""An API client over real services: the test's PostgreSQL schema and ClickHouse database."""

from __future__ import annotations

import time
from typing import Iterator

import pytest
from litestar.testing import TestClient

from api.app import create_app
from msd.runtime import Services
from msd.settings import load_settings
from olap.replicator import Replicator
from olap.store import ClickHouseStore
from workflow import accounts
from workflow.db import Database


@pytest.fixture
def services(db: Database, store: ClickHouseStore) -> Iterator[Services]:
    settings = load_settings({"clickhouse_database": store.database}, environ={})
    running = Services(settings, db, store, Replicator(db, store))
    yield running
    running.replicator.release()


def authorize(client: TestClient, services: Services, role: str = "admin") -> TestClient:
    """Give ``client`` a fresh token of ``role``: every endpoint but health needs one."""
    _, token = accounts.create_token(services.db, f"tests {role}", role)
    client.headers["Authorization"] = f"Bearer {token}"
    return client


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    """A client holding an admin token, so that every endpoint lets it through."""
    _, token = accounts.create_token(services.db, "tests", "admin")
    with TestClient(create_app(services)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {token}"
        yield test_client


def start_early_in_a_minute() -> None:
    """Wait out the last seconds of a clock minute: a per-minute request limit counts afresh
    from each, so a test that counts requests against one must not straddle two."""
    into_minute = time.time() % 60
    if into_minute > 45:
        time.sleep(60 - into_minute)


def seed_alerts(db: Database, count: int, *, hours_apart: int = 7) -> None:
    """``count`` alerts spread back in time from now, with varied severities, statuses, regions."""
    with db.transaction(actor="seed", source="test") as conn:
        conn.execute(
            "INSERT INTO alerts (alert_id, company_name, violation_type, severity, status, amount,"
            " region, detected_at, resolved_at)"
            " SELECT 'seed-' || g,"
            "  (ARRAY['ACME BANK, N.A.', 'Acme Bank N.A.', 'Globex LLC', 'Initech', 'Umbrella',"
            "         'Hooli', 'Vandelay Industries', 'Stark Credit', 'Wayne Trust', 'Soylent',"
            "         'Tyrell Finance', 'Cyberdyne'])[1 + g %% 12],"
            "  'type-' || (g %% 5),"
            "  (ARRAY['LOW', 'MEDIUM', 'HIGH', 'CRITICAL'])[1 + (g * 7) %% 4],"
            "  (ARRAY['PENDING', 'REVIEWING', 'RESOLVED', 'DISMISSED'])[1 + (g * 3) %% 4],"
            "  CASE WHEN g %% 6 = 0 THEN NULL ELSE round((g * 1234.567)::numeric, 2) END,"
            "  (ARRAY['CA', 'NY', 'TX', ''])[1 + g %% 4],"
            "  now() - make_interval(hours => g * %s),"
            "  CASE WHEN (g * 3) %% 4 = 2 THEN now() - make_interval(hours => g * %s) / 2 END"
            " FROM generate_series(1, %s) AS g",
            (hours_apart, hours_apart, count),
        )


# Names and types that break naive code: commas, quotes, backslashes, LIKE wildcards, scripts
# written right to left, characters outside the Basic Multilingual Plane, case pairs beyond ASCII.
TRICKY_COMPANIES = (
    "ACME BANK, N.A.",
    "Acme Bank N.A.",
    "東京銀行",
    "بنك الرياض",
    "🏦 Emoji Savings",
    'O\'Brien "Quoted" & Co',
    "Back\\slash Ltd",
    "100% Pure_Finance",
    "100x PureXFinance",
    "Société Générale",
    "SOCIÉTÉ GÉNÉRALE",
)
TRICKY_TYPES = ("fraud, wire", "50% rule_breach", "type-\\back", "Insider trading", "東証違反")


def seed_tricky_alerts(db: Database, count: int = 132, *, hours_apart: int = 5) -> None:
    """``count`` alerts over the tricky names and types, spread back in time from now."""
    severities = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
    statuses = ("PENDING", "REVIEWING", "RESOLVED", "DISMISSED")
    rows = [
        (
            f"tricky-{g}",
            TRICKY_COMPANIES[g % len(TRICKY_COMPANIES)],
            TRICKY_TYPES[g % len(TRICKY_TYPES)],
            severities[(g * 3) % 4],
            statuses[(g * 5) % 4],
            None if g % 7 == 0 else f"{g * 777.77:.2f}",
            ("CA", "NY", "", "WA", "TX")[g % 5],
            g * hours_apart,
        )
        for g in range(1, count + 1)
    ]
    with db.transaction(actor="seed", source="test") as conn:
        conn.cursor().executemany(
            "INSERT INTO alerts (alert_id, company_name, violation_type, severity, status, amount,"
            " region, detected_at, resolved_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, now() - make_interval(hours => %s),"
            " CASE WHEN %s IN ('RESOLVED', 'DISMISSED') THEN now() END)",
            [(*row, row[4]) for row in rows],
        )

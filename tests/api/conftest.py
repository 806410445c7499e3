"""An API client over real services: the test's PostgreSQL schema and ClickHouse database."""

from __future__ import annotations

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

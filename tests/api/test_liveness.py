"""``/health/live``: answers whoever asks, whatever state the stores are in."""

from __future__ import annotations

from litestar.testing import TestClient

from api.app import create_app
from msd.runtime import Services
from olap.replicator import Replicator
from olap.store import ClickHouseStore
from workflow.db import Database


def test_liveness_answers_without_credentials_while_postgresql_is_unreachable(
    pg_url: str, store: ClickHouseStore, services: Services
) -> None:
    db = Database(pg_url, max_size=1)
    cut_off = Services(services.settings, db, store, Replicator(db, store))
    with TestClient(create_app(cut_off)) as client:
        db.close()  # every read of PostgreSQL from here on fails

        live = client.get("/health/live")
        health = client.get("/health")

    assert (live.status_code, live.json()) == (200, {"status": "alive"})
    assert health.json()["postgres"] == "unavailable"

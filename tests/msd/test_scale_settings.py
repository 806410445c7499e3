"""The server-mode settings for scale-out: a read replica and a ClickHouse cluster."""

from __future__ import annotations

import pytest

from msd.settings import SettingsError, load_settings

PRIMARY = "postgresql://msd@db.example:5432/msd"
CLICKHOUSE = "http://msd:pw@ch.example:8123"


def test_replica_and_cluster_are_read_from_the_environment() -> None:
    settings = load_settings(
        environ={
            "MSD_DATABASE_URL": PRIMARY,
            "MSD_DATABASE_REPLICA_URL": "postgresql://msd@replica.example:5432/msd",
            "MSD_CLICKHOUSE_URL": CLICKHOUSE,
            "MSD_CLICKHOUSE_CLUSTER": "msd_cluster",
        }
    )
    assert settings.database_replica_url == "postgresql://msd@replica.example:5432/msd"
    assert settings.clickhouse_cluster == "msd_cluster"


def test_empty_values_mean_unset_as_compose_passes_them() -> None:
    settings = load_settings(
        environ={"MSD_DATABASE_REPLICA_URL": "", "MSD_CLICKHOUSE_CLUSTER": "  "}
    )
    assert settings.database_replica_url is None and settings.clickhouse_cluster is None


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"MSD_DATABASE_REPLICA_URL": "postgresql://r@h/db"}, "MSD_DATABASE_URL"),
        ({"MSD_DATABASE_URL": PRIMARY, "MSD_DATABASE_REPLICA_URL": "mysql://r@h/db"}, "REPLICA"),
        ({"MSD_CLICKHOUSE_CLUSTER": "msd_cluster"}, "MSD_CLICKHOUSE_URL"),
        ({"MSD_CLICKHOUSE_URL": CLICKHOUSE, "MSD_CLICKHOUSE_CLUSTER": "a'b"}, "CLUSTER"),
    ],
)
def test_impossible_combinations_are_refused_naming_the_settings(
    environ: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(environ=environ)

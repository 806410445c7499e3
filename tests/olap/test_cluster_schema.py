"""The cluster form of the ClickHouse schema (clickhouse/cluster/) against the one-node form.

No ClickHouse cluster (nor Keeper) runs here, so the cluster DDL is not executed: the engine
parses every statement (formatQuery), and the tests compare what the two forms create, object by
object and column by column, from the engine's own formatting of each statement.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from olap import queries
from olap.store import LOCAL_SUFFIX, REPLICATED_TABLES, EmbeddedStore, schema_statements

REPO = Path(__file__).resolve().parents[2]
CLUSTER_DIR = REPO / "clickhouse" / "cluster"
CLUSTER = "msd_cluster"


@dataclass(frozen=True)
class Created:
    kind: str  # "DATABASE", "TABLE" or "MATERIALIZED VIEW"
    name: str
    on_cluster: str | None
    text: str  # the engine's one-line formatting of the statement


def _format(engine: EmbeddedStore, statement: str) -> str:
    [row] = engine.query_rows("SELECT formatQuerySingleLine({q:String}) AS q", {"q": statement})
    return row["q"]


_HEAD = re.compile(
    r"^CREATE (?P<kind>DATABASE|TABLE|MATERIALIZED VIEW) IF NOT EXISTS (?P<name>[\w.]+)"
    r"(?: ON CLUSTER (?P<cluster>\w+))?"
)


def _created(folder: Path, database: str, cluster: str | None) -> dict[str, Created]:
    engine = EmbeddedStore(folder, "default")
    try:
        texts = [_format(engine, s) for s in schema_statements(database, cluster)]
    finally:
        engine.close()
    found: dict[str, Created] = {}
    for text in texts:
        head = _HEAD.match(text)
        assert head is not None, f"unexpected statement: {text[:120]}"
        found[head["name"]] = Created(head["kind"], head["name"], head["cluster"], text)
    return found


def _columns(text: str) -> str:
    """The column list of a formatted CREATE TABLE."""
    found = re.search(r" \((`.*?)\) ENGINE = ", text)
    assert found is not None, text
    return found.group(1)


def _engine(text: str) -> str:
    found = re.search(r" ENGINE = (\w+)", text)
    assert found is not None, text
    return found.group(1)


def _order_by(text: str) -> str | None:
    found = re.search(r" ORDER BY (.+?)(?: SETTINGS |$)", text)
    return found.group(1) if found else None


@pytest.fixture(scope="module")
def single(clickhouse_folder: Path) -> dict[str, Created]:
    return _created(clickhouse_folder, "msd", None)


@pytest.fixture(scope="module")
def cluster(clickhouse_folder: Path) -> dict[str, Created]:
    return _created(clickhouse_folder, "msd", CLUSTER)


def test_cluster_ddl_renders_for_the_named_cluster_and_parses(
    cluster: dict[str, Created],
) -> None:
    statements = schema_statements("analytics", "eu_cluster")
    assert all(" ON CLUSTER 'eu_cluster'" in s for s in statements)
    assert not any("{db}" in s or "{cluster}" in s for s in statements)
    # The per-node macros are left for each server to fill in.
    replicated = [s for s in statements if "ENGINE = Replicated" in s]
    assert replicated and all("/{shard}', '{replica}'" in s for s in replicated)
    assert all("/clickhouse/tables/eu_cluster/analytics/" in s for s in replicated)
    # Every statement parsed (the fixture formatted each one with the engine).
    assert len(cluster) == len(schema_statements("msd", CLUSTER))
    assert {c.on_cluster for c in cluster.values()} == {CLUSTER}


def test_every_single_node_table_has_a_replicated_local_table_with_the_same_columns(
    single: dict[str, Created], cluster: dict[str, Created]
) -> None:
    tables = [c for c in single.values() if c.kind == "TABLE"]
    assert {t.name.split(".")[1] for t in tables} == set(REPLICATED_TABLES)
    for table in tables:
        local = cluster[table.name + LOCAL_SUFFIX]
        assert _columns(local.text) == _columns(table.text), table.name
        assert _engine(local.text) == "Replicated" + _engine(table.text), table.name
        assert _order_by(local.text) == _order_by(table.text), table.name
        assert "replicated_deduplication_window = 10000" in local.text, table.name


def test_every_single_node_table_name_is_a_distributed_table_over_its_local_table(
    single: dict[str, Created], cluster: dict[str, Created]
) -> None:
    for name in (c.name for c in single.values() if c.kind == "TABLE"):
        distributed = cluster[name]
        short = name.split(".")[1]
        assert f" AS {name}{LOCAL_SUFFIX} " in distributed.text, name
        assert f"ENGINE = Distributed('{CLUSTER}', msd, {short}{LOCAL_SUFFIX}" in distributed.text


def test_change_rows_are_sharded_by_alert_and_batch_records_by_token(
    cluster: dict[str, Created],
) -> None:
    # Collapsing a change's -1 row against the +1 row it cancels needs both on one shard.
    assert cluster["msd.alert_changes"].text.endswith("alert_changes_local, alert_pk)")
    # A replayed batch record must reach the shard holding the first one.
    assert cluster["msd.replication_batches"].text.endswith(
        "replication_batches_local, cityHash64(token))"
    )


def test_views_are_the_same_queries_over_each_shards_local_tables(
    single: dict[str, Created], cluster: dict[str, Created]
) -> None:
    views = [c for c in single.values() if c.kind == "MATERIALIZED VIEW"]
    assert len(views) == 5
    for view in views:
        clustered = cluster[view.name]
        expected = view.text.replace(f"CREATE MATERIALIZED VIEW IF NOT EXISTS {view.name}", "")
        for table in REPLICATED_TABLES:
            expected = re.sub(rf"\bmsd\.{table}\b", f"msd.{table}{LOCAL_SUFFIX}", expected)
        head = f"CREATE MATERIALIZED VIEW IF NOT EXISTS {view.name} ON CLUSTER {CLUSTER}"
        assert clustered.text == head + expected, view.name


def test_the_cluster_form_creates_nothing_the_single_node_form_lacks(
    single: dict[str, Created], cluster: dict[str, Created]
) -> None:
    locals_ = {name + LOCAL_SUFFIX for name, c in single.items() if c.kind == "TABLE"}
    assert set(cluster) == set(single) | locals_


def test_queries_read_only_names_the_cluster_serves_as_distributed_tables(
    cluster: dict[str, Created],
) -> None:
    source = Path(queries.__file__).read_text(encoding="utf-8")
    read = set(re.findall(r"\{store\.database\}\.(\w+)", source))
    read |= set(re.findall(r'_Source\(\s*"(\w+)"', source))
    assert read >= {"stats_hourly", "company_hourly", "alert_changes", "company_names"}
    for table in read:
        assert "ENGINE = Distributed(" in cluster[f"msd.{table}"].text, table


def test_cluster_config_names_the_layout_the_macros_give_each_node() -> None:
    servers = ET.parse(CLUSTER_DIR / "config.d" / "cluster.xml").getroot()
    shards = servers.findall(f"./remote_servers/{CLUSTER}/shard")
    layout = {
        (index, replica.findtext("host"))
        for index, shard in enumerate(shards, start=1)
        for replica in shard.findall("replica")
    }
    assert len(shards) == 2 and len(layout) == 4
    for shard, host in layout:
        macros = ET.parse(CLUSTER_DIR / "macros" / f"{host}.xml").getroot().find("macros")
        assert macros is not None, host
        assert macros.findtext("cluster") == CLUSTER
        assert macros.findtext("shard") == str(shard)
        assert macros.findtext("replica") == host
    assert all(s.findtext("internal_replication") == "true" for s in shards)

"""What ServerStore puts on the wire to a ClickHouse server, seen at the HTTP stand-in.

The stand-in executes every request in the real engine, so these tests also prove the server
answers what the store asked for.
"""

from __future__ import annotations

import uuid
from typing import Iterator

import pyarrow as pa
import pytest

from olap.store import EmbeddedStore, ServerStore
from tests.clickhouse_http import ClickHouseHTTPStandIn, Exchange


@pytest.fixture
def server_store(clickhouse_http: ClickHouseHTTPStandIn) -> Iterator[ServerStore]:
    store = ServerStore(clickhouse_http.url, f"msd_wire_{uuid.uuid4().hex[:12]}")
    store.migrate()
    yield store
    store.drop_database()
    store.close()


def _inserts(log: list[Exchange]) -> list[Exchange]:
    return [e for e in log if e.params.get("query", "").lstrip().upper().startswith("INSERT")]


def _changes(rows: int, name: str) -> pa.Table:
    """Change rows that compress well: the same company and type in every row."""
    return pa.table(
        {
            "alert_pk": pa.array(range(rows), pa.int64()),
            "alert_id": [f"wire-{i}" for i in range(rows)],
            "version": pa.array([1] * rows, pa.uint32()),
            "sign": pa.array([1] * rows, pa.int8()),
            "company_key": [name.lower()] * rows,
            "company_name": [name] * rows,
            "violation_type": ["Market manipulation and spoofing"] * rows,
            "severity": ["HIGH"] * rows,
            "status": ["PENDING"] * rows,
            "region": ["NY"] * rows,
            "amount": pa.array([None] * rows, pa.decimal128(15, 2)),
            "detected_at": pa.array([0] * rows, pa.timestamp("ms", "UTC")),
            "resolved_at": pa.array([None] * rows, pa.timestamp("ms", "UTC")),
            "resolution_seconds": pa.array([0] * rows, pa.int64()),
        }
    )


def _uncompressed_ipc_size(table: pa.Table) -> int:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write(table)
    return sink.getvalue().size


def test_replication_insert_is_synchronous_one_block_with_its_token(
    clickhouse_http: ClickHouseHTTPStandIn, server_store: ServerStore
) -> None:
    data = _changes(2_000, "Wire Test Holdings")

    with clickhouse_http.recording() as log:
        server_store.insert_arrow("alert_changes", data, dedup_token="batch-1")

    [insert] = _inserts(log)
    assert insert.params["query"].rstrip().endswith("FORMAT Arrow")
    assert insert.params["async_insert"] == "0"
    assert insert.params["insert_deduplication_token"] == "batch-1"
    assert insert.params["max_insert_block_size"] == "2000"
    assert insert.params["deduplicate_blocks_in_dependent_materialized_views"] == "1"
    assert "distributed_foreground_insert" not in insert.params  # one node: no Distributed
    # The record batches are LZ4-compressed inside the Arrow stream.
    assert len(insert.body) < _uncompressed_ipc_size(data) / 3
    assert pa.ipc.open_file(pa.BufferReader(insert.body)).read_all().num_rows == 2_000


def test_replayed_batch_through_the_server_lands_once(server_store: ServerStore) -> None:
    data = _changes(50, "Replay Corp")

    server_store.insert_arrow("alert_changes", data, dedup_token="batch-7")
    server_store.insert_arrow("alert_changes", data, dedup_token="batch-7")

    db = server_store.database
    [changes] = server_store.query_rows(f"SELECT count() AS n FROM {db}.alert_changes")
    [view] = server_store.query_rows(f"SELECT sum(alerts) AS n FROM {db}.stats_hourly")
    assert (changes["n"], view["n"]) == (50, 50)


def test_query_binds_parameters_on_the_server_and_gets_compressed_arrow(
    clickhouse_http: ClickHouseHTTPStandIn, server_store: ServerStore
) -> None:
    sql = (
        "SELECT number, {label:String} AS label FROM numbers({rows:UInt32})"
        " WHERE number >= {low:UInt32}"
    )
    with clickhouse_http.recording() as log:
        result = server_store.query_arrow(sql, {"label": "x" * 200, "rows": 5_000, "low": 10})

    assert result.num_rows == 4_990
    assert result.column("label")[0].as_py() == "x" * 200
    [exchange] = [e for e in log if "param_label" in e.params]
    assert exchange.params["param_rows"] == "5000"
    assert "{label:String}" in exchange.body.decode()  # the SQL went as written, not spliced
    assert "x" * 200 not in exchange.body.decode()
    assert exchange.params["output_format_arrow_compression_method"] == "lz4_frame"
    assert exchange.answer_bytes < _uncompressed_ipc_size(result) / 5


def test_cluster_inserts_wait_for_every_shard_and_a_quorum(
    clickhouse_http: ClickHouseHTTPStandIn, server_store: ServerStore
) -> None:
    # The engine here is one node, so a cluster store only inserts into tables a one-node store
    # made; what matters is what it asks of the server.
    cluster_store = ServerStore(clickhouse_http.url, server_store.database, cluster="msd_cluster")
    try:
        with clickhouse_http.recording() as log:
            cluster_store.insert_arrow("alert_changes", _changes(3, "Sharded"), dedup_token="b-1")
    finally:
        cluster_store.close()

    [insert] = _inserts(log)
    assert insert.params["distributed_foreground_insert"] == "1"
    assert insert.params["insert_quorum"] == "auto"
    assert insert.params["async_insert"] == "0"
    assert server_store.query_rows(
        f"SELECT count() AS n FROM {server_store.database}.alert_changes"
    ) == [{"n": 3}]


def test_embedded_engine_defaults_to_async_inserts_which_the_store_turns_off(
    clickhouse_folder: object,
) -> None:
    # Why the store sets async_insert=0: this engine's version defaults it to 1.
    [row] = EmbeddedStore._session.query(
        "SELECT value FROM system.settings WHERE name = 'async_insert'", "ArrowTable"
    ).to_pylist()
    assert row["value"] == "1"

"""The CSV export: the filtered, ordered table streamed from a server-side cursor, quoted so
that Python's csv reads back exactly what PostgreSQL holds, and safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
import threading
import tracemalloc
from datetime import datetime, timezone

import psycopg
import pytest
from litestar.testing import TestClient

from api.export_routes import EXPORT_COLUMNS, csv_chunks, guard_formula
from msd.runtime import Services
from tests.api.conftest import seed_tricky_alerts
from workflow.alerts import ListFilters, iter_alerts
from workflow.db import Database


def _read_csv(body: bytes) -> list[list[str]]:
    assert body.startswith(b"\xef\xbb\xbf"), "UTF-8 with a byte-order mark"
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def _seed_many(db: Database, count: int) -> None:
    with db.transaction(actor="seed", source="test") as conn:
        conn.execute(
            "INSERT INTO alerts (alert_id, company_name, violation_type, severity, amount, region,"
            " detected_at)"
            " SELECT 'bulk-' || g, 'Company ' || (g %% 500), 'type-' || (g %% 7),"
            "  (ARRAY['LOW', 'MEDIUM', 'HIGH', 'CRITICAL'])[1 + g %% 4],"
            "  CASE WHEN g %% 9 = 0 THEN NULL ELSE g * 1.25 END, 'CA',"
            "  now() - make_interval(secs => g)"
            " FROM generate_series(1, %s) g",
            (count,),
        )


def _db_rows(db: Database, order: str, where: str = "TRUE") -> list[list[str]]:
    """The expected cells, formatted here independently of the export code."""
    with db.reading() as conn:
        rows = conn.execute(
            f"SELECT {', '.join(EXPORT_COLUMNS)} FROM alerts WHERE {where} ORDER BY {order}"
        ).fetchall()
        conn.rollback()
    return [
        ["" if v is None else v.isoformat() if isinstance(v, datetime) else str(v) for v in row]
        for row in rows
    ]


def test_fifty_thousand_rows_export_equal_the_table(client: TestClient, services: Services):
    _seed_many(services.db, 50_000)

    response = client.get("/api/exports/alerts.csv")

    rows = _read_csv(response.content)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    today = datetime.now(timezone.utc).date().isoformat()
    assert response.headers["content-disposition"] == (f'attachment; filename="alerts-{today}.csv"')
    assert rows[0] == list(EXPORT_COLUMNS)
    assert rows[1:] == _db_rows(services.db, "detected_at DESC, id DESC")


def test_export_takes_the_list_filters_and_ordering(client: TestClient, services: Services):
    seed_tricky_alerts(services.db)

    response = client.get(
        "/api/exports/alerts.csv",
        params={"company": "ACME BANK, N.A.", "severity": "LOW,HIGH", "ordering": "-amount"},
    )

    rows = _read_csv(response.content)[1:]
    want = _db_rows(
        services.db,
        "amount DESC NULLS LAST, id DESC",
        "msd_company_key(company_name) = 'acme bank na' AND severity IN ('LOW', 'HIGH')",
    )
    assert rows == want and len(rows) > 3


def test_commas_quotes_newlines_and_unicode_round_trip(client: TestClient, services: Services):
    awkward = [
        'Quote "inside", and comma',
        "Line one\nline two\r\nline three",
        "東京銀行 🏦 بنك",
        "trailing space ",
        "Back\\slash",
    ]
    with services.db.transaction(actor="t", source="test") as conn:
        for i, name in enumerate(awkward):
            conn.execute(
                "INSERT INTO alerts (alert_id, company_name, violation_type, severity,"
                " detected_at) VALUES (%s, %s, %s, 'LOW', now() - make_interval(mins => %s))",
                (f"a-{i}", name, name, i),
            )

    rows = _read_csv(client.get("/api/exports/alerts.csv").content)[1:]

    assert [(r[1], r[2]) for r in rows] == [(name, name) for name in awkward]


@pytest.mark.parametrize("dangerous", ['=HYPERLINK("x")', "+1+2", "-3", "@SUM(A1)", "\tx"])
def test_cells_a_spreadsheet_would_run_start_with_an_apostrophe(
    client: TestClient, services: Services, dangerous: str
) -> None:
    with services.db.transaction(actor="t", source="test") as conn:
        conn.execute(
            "INSERT INTO alerts (alert_id, company_name, violation_type, severity, amount,"
            " detected_at) VALUES ('f-1', %s, 'plain', 'LOW', 5, now())",
            (dangerous,),
        )

    row = _read_csv(client.get("/api/exports/alerts.csv").content)[1]

    assert row[1] == "'" + dangerous and row[2] == "plain" and row[5] == "5.00"
    assert guard_formula("Initech") == "Initech"


def test_bad_export_parameters_name_the_parameter(client: TestClient, services: Services):
    cases = (("ordering=risk", "ordering"), ("page=2", "page"), ("q=" + "x" * 201, "q"))
    for query, parameter in cases:
        response = client.get(f"/api/exports/alerts.csv?{query}")

        assert response.status_code == 400
        assert response.json()["errors"][0]["parameter"] == parameter


def test_rows_come_through_a_server_side_cursor_one_chunk_at_a_time(
    services: Services, pg_url: str
) -> None:
    _seed_many(services.db, 12_000)
    chunks = iter_alerts(services.db, ListFilters(), columns=EXPORT_COLUMNS, chunk=5000)

    first = next(chunks)
    with psycopg.connect(pg_url, autocommit=True) as watcher:
        waiting = watcher.execute(
            "SELECT query FROM pg_stat_activity WHERE state = 'idle in transaction'"
            " AND query LIKE 'FETCH FORWARD 5000 FROM %%msd_export%%'"
        ).fetchall()
    rest = [len(chunk) for chunk in chunks]

    assert len(first) == 5000 and rest == [5000, 2000]
    assert waiting, "PostgreSQL holds the rest of the result behind a named cursor"


def test_memory_stays_at_one_chunk_however_many_rows(services: Services) -> None:
    _seed_many(services.db, 40_000)

    def peak_bytes(chunk: int) -> tuple[int, int]:
        tracemalloc.start()
        total = sum(
            len(block)
            for block in csv_chunks(
                iter_alerts(services.db, ListFilters(), columns=EXPORT_COLUMNS, chunk=chunk)
            )
        )
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak, total

    streamed, size = peak_bytes(2000)
    whole, _ = peak_bytes(40_000)

    # Read in one chunk, the rows take about 70 MB of Python objects; in chunks of 2,000, a
    # fifteenth of that (psycopg's buffers and the CSV block of one chunk).
    assert size > 4_000_000
    assert streamed < whole / 5


def test_an_export_left_unfinished_gives_its_connection_back(services: Services) -> None:
    _seed_many(services.db, 9_000)
    chunks = iter_alerts(services.db, ListFilters(), chunk=1000)
    next(chunks)

    chunks.close()
    done = threading.Event()

    def read_again() -> None:
        # With max_size 4, four more readers only get connections if the export released its.
        for _ in range(4):
            with services.db.reading() as conn:
                conn.execute("SELECT 1")
        done.set()

    threading.Thread(target=read_again, daemon=True).start()
    assert done.wait(10)

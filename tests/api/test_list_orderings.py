"""The list's orderings, its new filters and keyset cursors: every row once, in the order plain
SQL gives, at any depth through an index; cursors bound to their ordering and filters."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from msd.runtime import Services
from tests.api.conftest import seed_alerts, seed_tricky_alerts
from workflow.alerts import ORDERINGS, ListFilters, encode_cursor, list_alerts, list_query
from workflow.db import Database

# The expected orders, written out independently: severity by rank, alerts without amount
# below every amount, id breaking ties in the same direction.
TRUTH_ORDER = {
    "detected_at": "detected_at ASC, id ASC",
    "-detected_at": "detected_at DESC, id DESC",
    "amount": "amount ASC NULLS FIRST, id ASC",
    "-amount": "amount DESC NULLS LAST, id DESC",
    "severity": "array_position(ARRAY['LOW','MEDIUM','HIGH','CRITICAL'], severity), id",
    "-severity": (
        "array_position(ARRAY['LOW','MEDIUM','HIGH','CRITICAL'], severity) DESC, id DESC"
    ),
    "company_name": "company_name ASC, id ASC",
    "-company_name": "company_name DESC, id DESC",
    "status": "status ASC, id ASC",
    "-status": "status DESC, id DESC",
}


@pytest.fixture
def listed(services: Services) -> Services:
    seed_alerts(services.db, 120)
    seed_tricky_alerts(services.db)
    return services


def _sql_ids(db: Database, ordering: str, where: str = "TRUE", params: Any = ()) -> list[str]:
    with db.reading() as conn:
        rows = conn.execute(
            f"SELECT alert_id FROM alerts WHERE {where} ORDER BY {TRUTH_ORDER[ordering]}", params
        ).fetchall()
        conn.rollback()
    return [row[0] for row in rows]


def _walk(client: TestClient, params: dict[str, Any]) -> list[str]:
    """Every alert_id, following next_cursor page after page."""
    seen: list[str] = []
    body = client.get("/api/alerts/", params=params).json()
    seen += [row["alert_id"] for row in body["results"]]
    while body["next_cursor"]:
        body = client.get("/api/alerts/", params={**params, "cursor": body["next_cursor"]}).json()
        seen += [row["alert_id"] for row in body["results"]]
    return seen


def test_orderings_cover_every_field_both_ways() -> None:
    assert set(ORDERINGS) == set(TRUTH_ORDER)


@pytest.mark.parametrize("ordering", sorted(TRUTH_ORDER))
def test_cursor_paging_visits_every_row_once_in_sql_order(
    client: TestClient, listed: Services, ordering: str
) -> None:
    walked = _walk(client, {"ordering": ordering, "page_size": 37})
    filtered = _walk(client, {"ordering": ordering, "page_size": 23, "status": "PENDING,RESOLVED"})

    assert walked == _sql_ids(listed.db, ordering)
    assert filtered == _sql_ids(listed.db, ordering, "status = ANY(%s)", (["PENDING", "RESOLVED"],))


def test_page_numbers_follow_the_ordering_and_next_links_keep_it(
    client: TestClient, listed: Services
) -> None:
    second = client.get("/api/alerts/", params={"ordering": "-amount", "page_size": 20, "page": 2})

    body = second.json()
    assert [r["alert_id"] for r in body["results"]] == _sql_ids(listed.db, "-amount")[20:40]
    assert "ordering=-amount" in body["next"] and "page=3" in body["next"]


def test_cursor_from_another_ordering_or_other_filters_is_refused(
    client: TestClient, listed: Services
) -> None:
    params = {"ordering": "amount", "page_size": 10, "severity": "HIGH"}
    cursor = client.get("/api/alerts/", params=params).json()["next_cursor"]

    same = client.get("/api/alerts/", params={**params, "cursor": cursor})
    reordered = client.get(
        "/api/alerts/", params={**params, "ordering": "-amount", "cursor": cursor}
    )
    refiltered = client.get("/api/alerts/", params={**params, "severity": "LOW", "cursor": cursor})
    windowed = client.get("/api/alerts/", params={**params, "days": "7", "cursor": cursor})

    assert same.status_code == 200
    for refused in (reordered, refiltered, windowed):
        assert refused.status_code == 400
        assert refused.json()["errors"][0]["parameter"] == "cursor"
    assert "ordering=amount" in reordered.json()["detail"]


def test_unknown_ordering_is_a_400_listing_the_orderings(client: TestClient, listed: Services):
    response = client.get("/api/alerts/?ordering=risk")

    assert response.status_code == 400
    assert response.json()["errors"][0]["parameter"] == "ordering"
    assert set(response.json()["allowed"]) == set(ORDERINGS)


def test_list_company_filter_takes_whole_names_with_commas_and_any_spelling(
    client: TestClient, listed: Services
) -> None:
    one = client.get("/api/alerts/", params={"company": "ACME BANK, N.A.", "page_size": 500})
    both = client.get(
        "/api/alerts/", params={"company": ["acme bank n.a.", "東京銀行"], "page_size": 500}
    )

    names = {row["company_name"] for row in one.json()["results"]}
    assert names == {"ACME BANK, N.A.", "Acme Bank N.A."}
    assert one.json()["count"] == 20 + 24  # 2 of 12 seeded names, 2 of 11 tricky ones
    assert {r["company_name"] for r in both.json()["results"]} == names | {"東京銀行"}


def test_list_free_text_takes_wildcards_literally_and_ignores_case(
    client: TestClient, listed: Services
) -> None:
    def names(q: str) -> set[str]:
        rows = client.get("/api/alerts/", params={"q": q, "page_size": 500}).json()["results"]
        return {(row["company_name"], row["violation_type"]) for row in rows}

    assert {c for c, _ in names("100%")} == {"100% Pure_Finance"}
    assert {c for c, _ in names("E_F")} == {"100% Pure_Finance"}
    assert {c for c, _ in names("été")} == {"Société Générale", "SOCIÉTÉ GÉNÉRALE"}
    assert names("\\") and all("\\" in c + t for c, t in names("\\"))
    assert {t for _, t in names("E-\\BA")} == {"type-\\back"}
    assert {t for _, t in names("0% R")} == {"50% rule_breach"}
    assert names("no alert is called this") == set()


def test_list_violation_type_and_time_window(client: TestClient, listed: Services) -> None:
    typed = client.get("/api/alerts/", params={"violation_type": "fraud, wire"}).json()
    recent = client.get("/api/alerts/", params={"days": "3", "page_size": 500}).json()
    since = client.get(
        "/api/alerts/", params={"since": "2000-01-01T00:00:00Z", "until": "2000-01-02"}
    ).json()

    with listed.db.reading() as conn:
        want_typed = conn.execute(
            "SELECT count(*) FROM alerts WHERE violation_type = 'fraud, wire'"
        ).fetchone()[0]
        want_recent = conn.execute(
            "SELECT count(*) FROM alerts WHERE (detected_at AT TIME ZONE 'UTC')::date"
            " >= (now() AT TIME ZONE 'UTC')::date - 2"
        ).fetchone()[0]
    assert typed["count"] == want_typed > 0
    assert recent["count"] == want_recent > 0 and recent["count"] < typed["count"] + 300
    assert since["count"] == 0


@pytest.mark.parametrize("ordering", sorted(TRUTH_ORDER))
def test_deep_keyset_page_of_every_ordering_is_read_in_index_order(
    listed: Services, ordering: str
) -> None:
    """With sorting forbidden, the plan still has no Sort: an index gives the order."""
    rows = listed.db
    last = list_alerts(rows, ListFilters(), limit=1, offset=200, ordering=ordering)[0]
    query, params = list_query(
        ListFilters(), limit=50, after=encode_cursor(last, ordering), ordering=ordering
    )
    with rows.reading() as conn:
        conn.execute("SET LOCAL enable_sort = off")
        conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute(b"EXPLAIN " + query.as_bytes(conn), params))

    assert "Sort" not in plan and "Index" in plan, plan

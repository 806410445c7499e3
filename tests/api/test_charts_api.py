"""The chart endpoints over real stores, the offline Vega script, and ``msd chart``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from urllib.parse import quote

import pytest
from litestar.testing import TestClient

from api.routing import ROUTES, Store
from msd.cli import main
from msd.runtime import Services
from tests.api.conftest import seed_tricky_alerts
from ui.charts import NO_DATA, offline_bundle

REPO = Path(__file__).resolve().parents[2]
MEDIA = {
    "png": "image/png",
    "svg": "image/svg+xml",
    "html": "text/html",
    "json": "application/json",
}


@pytest.fixture
def charted(services: Services) -> Services:
    seed_tricky_alerts(services.db)
    services.replicator.drain()
    return services


@pytest.mark.parametrize("name", ["trends", "top_companies", "regions"])
@pytest.mark.parametrize("fmt", ["png", "svg", "html", "json"])
def test_every_chart_in_every_format_is_served_and_cached(
    client: TestClient, charted: Services, name: str, fmt: str
) -> None:
    params = {"severity": "HIGH,CRITICAL", "width": "400", "height": "250"}

    first = client.get(f"/api/charts/{name}.{fmt}", params=params)
    again = client.get(f"/api/charts/{name}.{fmt}", params={**params, "severity": "critical,high"})

    assert first.status_code == 200, first.text
    assert first.headers["content-type"].startswith(MEDIA[fmt])
    assert first.headers["x-cache"] == "miss" and again.headers["x-cache"] == "hit"
    assert again.content == first.content
    assert first.headers["x-replication-watermark"]


def test_json_chart_draws_the_filtered_aggregate(client: TestClient, charted: Services) -> None:
    company = {"company": ["ACME BANK, N.A.", "東京銀行"]}

    spec = client.get("/api/charts/top_companies.json", params=company).json()
    listed = client.get("/api/alerts/top_companies/", params=company).json()

    assert [row["company"] for row in spec["data"]["values"]] == [
        row["company_name"] for row in listed
    ]
    shown = {row["company"] for row in spec["data"]["values"]}
    assert len(shown) == 2 and "東京銀行" in shown  # ACME under its most used spelling
    assert "company: ACME BANK, N.A., 東京銀行" in spec["title"]["subtitle"][1]


def test_regions_chart_matches_the_regions_endpoint(client: TestClient, charted: Services):
    spec = client.get("/api/charts/regions.json?q=bank").json()
    regions = client.get("/api/alerts/regions/?q=bank").json()

    assert [(r["region"], r["alerts"]) for r in spec["data"]["values"]] == [
        (r["region"], r["alerts"]) for r in regions
    ]


def test_chart_with_no_matching_alerts_says_so(client: TestClient, charted: Services) -> None:
    svg = client.get("/api/charts/trends.svg?q=no+alert+is+called+this").content.decode()

    assert ElementTree.fromstring(svg) is not None and NO_DATA in svg


def test_unicode_company_names_reach_the_svg_text(client: TestClient, charted: Services):
    svg = client.get("/api/charts/top_companies.svg?days=60").content.decode()

    for name in ("東京銀行", "بنك الرياض", "🏦 Emoji Savings", "O'Brien"):
        assert name in svg.replace("&apos;", "'").replace("&#39;", "'")


def test_a_replicated_change_redraws_the_chart(client: TestClient, charted: Services) -> None:
    before = client.get("/api/charts/regions.json").json()
    with charted.db.transaction(actor="t", source="test") as conn:
        conn.execute("UPDATE alerts SET region = 'ZZ' WHERE alert_id = 'tricky-1'")
    charted.replicator.drain()

    after = client.get("/api/charts/regions.json")

    assert after.headers["x-cache"] == "miss"
    assert "ZZ" in {r["region"] for r in after.json()["data"]["values"]}
    assert "ZZ" not in {r["region"] for r in before["data"]["values"]}


@pytest.mark.parametrize(
    ("path", "status", "parameter"),
    [
        ("/api/charts/pie.png", 404, "name"),
        ("/api/charts/trends.gif", 404, "name"),
        ("/api/charts/trends", 404, "name"),
        ("/api/charts/trends.png?width=5000", 400, "width"),
        ("/api/charts/trends.png?width=50", 400, "width"),
        ("/api/charts/trends.png?height=0", 400, "height"),
        ("/api/charts/trends.png?scale=9", 400, "scale"),
        ("/api/charts/trends.png?scale=nan", 400, "scale"),
        ("/api/charts/trends.png?colour=red", 400, "colour"),
        ("/api/charts/trends.png?q=" + "x" * 201, 400, "q"),
        ("/api/charts/trends.png?ordering=amount", 400, "ordering"),
    ],
)
def test_bad_chart_requests_name_what_is_wrong(
    client: TestClient, services: Services, path: str, status: int, parameter: str
) -> None:
    response = client.get(path)

    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["parameter"] == parameter


def test_vendor_script_is_gzipped_long_cached_and_revalidated(
    client: TestClient, services: Services
) -> None:
    packed = client.get("/ui/vendor/vega.js", headers={"accept-encoding": "gzip"})
    plain = client.get("/ui/vendor/vega.js", headers={"accept-encoding": "identity"})
    unchanged = client.get("/ui/vendor/vega.js", headers={"if-none-match": packed.headers["etag"]})

    assert packed.headers["content-encoding"] == "gzip"
    assert packed.content.decode() == offline_bundle()  # the client decompressed it
    assert int(packed.headers["content-length"]) < len(offline_bundle()) / 2
    assert "max-age=604800" in packed.headers["cache-control"]
    assert packed.headers["content-type"].startswith("text/javascript")
    assert "content-encoding" not in plain.headers and plain.content == packed.content
    assert unchanged.status_code == 304 and not unchanged.content
    assert "https://vega.github.io/editor" not in offline_bundle()


def test_every_new_query_is_in_the_routing_table() -> None:
    assert ROUTES["regions"][0] is Store.CLICKHOUSE
    assert ROUTES["alerts.export"][0] is Store.POSTGRES
    assert ROUTES["companies.keys"][0] is Store.POSTGRES


def test_openapi_declares_the_new_endpoints_and_parameters(client: TestClient, services: Services):
    paths = client.get("/schema/openapi.json").json()["paths"]

    def parameters(path: str) -> dict[str, dict]:
        operation = (paths.get(path) or paths[path.rstrip("/")])["get"]
        return {p["name"]: p for p in operation["parameters"]}

    for path in ("/api/alerts/", "/api/alerts/regions/", "/api/exports/alerts.csv"):
        assert {"company", "violation_type", "q", "days", "since"} <= set(parameters(path))
    assert {"ordering", "cursor", "page"} <= set(parameters("/api/alerts/"))
    assert {"width", "height", "scale", "company"} <= set(parameters("/api/charts/{file_name}"))
    assert parameters("/api/alerts/")["company"]["schema"]["oneOf"][0]["type"] == "array"


def _url_with_schema(pg_url: str) -> str:
    """The test's PostgreSQL schema as a URL the msd command takes."""
    server = os.environ.get("MSD_TEST_DATABASE_URL")
    if not server:
        pytest.skip("msd chart runs as a separate process, which needs a PostgreSQL server URL")
    schema = pg_url.split("search_path=")[1].split()[0].strip("'")
    return f"{server}?options={quote('-csearch_path=' + schema)}"


def test_msd_chart_writes_each_format_from_the_configured_stores(
    db, pg_url: str, tmp_path: Path
) -> None:
    seed_tricky_alerts(db)
    env = {
        **os.environ,
        "MSD_DATABASE_URL": _url_with_schema(pg_url),
        "MSD_DATA_DIR": str(tmp_path / "data"),
    }

    def msd(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "msd.cli", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    replicated = msd("replicate", "--once")
    svg = msd(
        "chart",
        "top_companies",
        "--out",
        str(tmp_path / "top.svg"),
        "--company",
        "ACME BANK, N.A.",
        "--company",
        "東京銀行",
    )
    spec = msd(
        "chart",
        "regions",
        "--out",
        str(tmp_path / "r.out"),
        "--format",
        "json",
        "--q",
        "bank",
        "--days",
        "60",
    )
    bad = msd("chart", "trends", "--out", str(tmp_path / "t.gif"))
    wide = msd("chart", "trends", "--out", str(tmp_path / "t.png"), "--width", "9999")

    assert replicated.returncode == 0, replicated.stderr
    assert svg.returncode == 0, svg.stderr
    text = (tmp_path / "top.svg").read_text()
    assert "東京銀行" in text and ("ACME BANK, N.A." in text or "Acme Bank N.A." in text)
    assert spec.returncode == 0 and json.loads((tmp_path / "r.out").read_text())["data"]["values"]
    assert bad.returncode == 2 and "the extension .gif" in bad.stderr
    assert wide.returncode == 2 and "--width" in wide.stderr


@pytest.mark.parametrize(
    ("name", "told"),
    [("trends.gif", "the extension .gif is not a chart format"), ("trends", "has no extension")],
)
def test_msd_chart_names_the_out_extension_when_the_format_came_from_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, told: str
) -> None:
    out = tmp_path / name

    code = main(["chart", "trends", "--out", str(out), "--data-dir", str(tmp_path / "data")])

    err = capsys.readouterr().err
    assert code == 2
    assert f"msd: error: --out {out}: {told}" in err
    assert "--format gif" not in err and "(none)" not in err

"""Each chart's Vega-Lite spec, and each format it renders to, checked as its reader sees it.

Whether PNG charts draw the names of each script is tests/ui/test_chart_fonts.py's subject."""

from __future__ import annotations

import json
import re
import struct
import xml.etree.ElementTree as ElementTree
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import jsonschema
import pytest
from altair.vegalite.v6.schema import load_schema

from olap.queries import CompanyRisk, RegionFigures, TrendDay
from ui.charts import CHARTS, NO_DATA, SEVERITY_COLORS, ChartContext, build_chart, render

CONTEXT = ChartContext(
    date(2026, 11, 5),
    date(2026, 12, 4),
    "Europe/Paris",
    [("severity", ("HIGH", "CRITICAL")), ("company", ("ACME BANK, N.A.",)), ("region", ())],
)
UNICODE_NAMES = ["東京銀行", "بنك الرياض", "🏦 Emoji Savings", "ACME BANK, N.A."]


def _rows(name: str) -> list[Any]:
    if name == "trends":
        start = date(2026, 11, 5)
        return [TrendDay(start + timedelta(days=i), 10, 1, 2, 3, 4) for i in range(30)]
    if name == "top_companies":
        return [
            CompanyRisk(f"k{i}", n, 5 - i, 2, 1, Decimal("250000.50"), date(2026, 12, 1))
            for i, n in enumerate(UNICODE_NAMES)
        ]
    return [
        RegionFigures("CA", 12, 2, 3, 4, Decimal("10.50")),
        RegionFigures("", 3, 0, 1, 1, Decimal("0")),
    ]


def _empty(name: str) -> list[Any]:
    if name == "trends":  # a window of days, none with an alert
        return [TrendDay(date(2026, 11, 5) + timedelta(days=i)) for i in range(30)]
    return []


def _png_size(body: bytes) -> tuple[int, int]:
    assert body[:8] == b"\x89PNG\r\n\x1a\n" and body[12:16] == b"IHDR"
    return struct.unpack(">II", body[16:24])


CHART_NAMES = sorted(CHARTS)

# URLs that may appear in the HTML page: XML namespaces the SVG renderer uses, and the schema
# ids of the Vega and Vega-Lite specs (identifiers, never fetched).
ALLOWED_URLS = {
    "http://www.w3.org/1999/xlink",
    "http://www.w3.org/2000/svg",
    "http://www.w3.org/2000/xmlns/",
    "https://vega.github.io/schema/vega/v6.json",
}
VEGA_LITE_SCHEMA = re.compile(r"https://vega\.github\.io/schema/vega-lite/v6(\.\d+){0,2}\.json")


@pytest.mark.parametrize("name", CHART_NAMES)
def test_spec_inlines_its_data_and_says_what_a_click_selects(name: str) -> None:
    spec = build_chart(name, _rows(name), CONTEXT)

    values = spec["data"]["values"]
    click = spec["usermeta"]["msd"]["click"]
    assert VEGA_LITE_SCHEMA.fullmatch(spec["$schema"])
    assert values and "url" not in spec["data"]
    assert all(field in row for row in values for field in click["sets"])
    assert spec["params"][0]["name"] == click["selection"] == "pick"
    assert spec["params"][0]["select"]["fields"] == list(click["sets"])


def test_click_through_fields_name_the_filters_they_set() -> None:
    sets = {
        n: build_chart(n, _rows(n), CONTEXT)["usermeta"]["msd"]["click"]["sets"] for n in CHARTS
    }

    assert sets == {
        "trends": {"day": ["since", "until"], "severity": ["severity"]},
        "top_companies": {"company": ["company"]},
        "regions": {"region": ["region"]},
    }
    companies = build_chart("top_companies", _rows("top_companies"), CONTEXT)["data"]["values"]
    assert [row["company"] for row in companies] == UNICODE_NAMES


@pytest.mark.parametrize("name", CHART_NAMES)
@pytest.mark.parametrize("empty", [False, True])
def test_spec_is_valid_vega_lite(name: str, empty: bool) -> None:
    spec = build_chart(name, _empty(name) if empty else _rows(name), CONTEXT)

    jsonschema.validate(spec, load_schema())


def test_trend_colours_are_the_severity_colours_most_severe_first() -> None:
    spec = build_chart("trends", _rows("trends"), CONTEXT)

    scale = spec["encoding"]["color"]["scale"]
    assert scale["domain"] == ["CRITICAL", "HIGH", "MEDIUM", "LOW"]
    assert scale["range"] == [SEVERITY_COLORS[s] for s in scale["domain"]]
    day = [row for row in spec["data"]["values"] if row["day"] == "2026-11-05"]
    assert {row["severity"]: row["alerts"] for row in day} == {
        "CRITICAL": 1,
        "HIGH": 2,
        "MEDIUM": 3,
        "LOW": 4,
    }


@pytest.mark.parametrize("name", CHART_NAMES)
def test_title_names_the_window_and_the_filters_given(name: str) -> None:
    title = build_chart(name, _rows(name), CONTEXT)["title"]

    assert title["subtitle"] == [
        "2026-11-05 to 2026-12-04 (Europe/Paris)",
        "severity: HIGH, CRITICAL · company: ACME BANK, N.A.",
    ]


@pytest.mark.parametrize("name", CHART_NAMES)
def test_no_data_draws_a_message_not_an_error(name: str) -> None:
    spec = build_chart(name, _empty(name), CONTEXT)

    svg = render(spec, "svg").decode()
    assert spec["data"]["values"] == [{"message": NO_DATA}]
    assert spec["usermeta"]["msd"]["empty"] is True
    assert NO_DATA in svg and _png_size(render(spec, "png"))[0] > 100


@pytest.mark.parametrize("name", CHART_NAMES)
def test_png_has_the_asked_size_and_scale_multiplies_it(name: str) -> None:
    small = ChartContext(CONTEXT.first_day, CONTEXT.last_day, "UTC", width=300, height=200)
    large = ChartContext(CONTEXT.first_day, CONTEXT.last_day, "UTC", width=900, height=600)

    width, height = _png_size(render(build_chart(name, _rows(name), small), "png"))
    big_width, _ = _png_size(render(build_chart(name, _rows(name), large), "png"))
    doubled = _png_size(render(build_chart(name, _rows(name), small), "png", scale=2))

    # The plot area is what width and height set; axes, legend and title add to it.
    assert width >= 300 and height >= 200 and big_width >= width + 550
    assert doubled == (width * 2, height * 2)


def test_svg_parses_and_holds_unicode_names_as_text() -> None:
    svg = render(build_chart("top_companies", _rows("top_companies"), CONTEXT), "svg").decode()

    root = ElementTree.fromstring(svg)
    texts = {"".join(node.itertext()) for node in root.iter("{http://www.w3.org/2000/svg}text")}
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert set(UNICODE_NAMES) <= texts


@pytest.mark.parametrize("name", CHART_NAMES)
def test_html_is_standalone_with_no_outside_url(name: str) -> None:
    page = render(build_chart(name, _rows(name), CONTEXT), "html").decode()

    urls = set(re.findall(r"https?://[^\s\"'`<>()\\]+", page))
    assert {u for u in urls if not VEGA_LITE_SCHEMA.fullmatch(u)} <= ALLOWED_URLS
    assert "<script src" not in page and "vegaEmbed('#chart'" in page
    assert "window.vegaEmbed" in page  # the bundle itself is inlined


def test_html_keeps_markup_in_names_inert() -> None:
    rows = _rows("top_companies")
    rows[0].company_name = "</script><script>alert(1)</script>"

    page = render(build_chart("top_companies", rows, CONTEXT), "html").decode()

    assert "<script>alert(1)" not in page
    assert "\\u003c/script\\u003e\\u003cscript\\u003ealert(1)" in page


@pytest.mark.parametrize("name", CHART_NAMES)
def test_json_format_is_the_spec_itself(name: str) -> None:
    spec = build_chart(name, _rows(name), CONTEXT)

    decoded = json.loads(render(spec, "json"))

    assert decoded == spec and decoded["data"]["values"]
    assert (
        "東京銀行"
        in render(build_chart("top_companies", _rows("top_companies"), CONTEXT), "json").decode()
    )

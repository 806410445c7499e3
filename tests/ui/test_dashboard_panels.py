"""The dashboard's panels in Chromium: the table, the charts, the regions, the detail, bulk.

These need the list's window, text and company filters and ``ordering``, ``/api/alerts/regions/``,
``/api/charts/{trends,top_companies,regions}.json`` and the chart library at
``/ui/vendor/vega.js``. With ``MSD_SCREENSHOTS=<folder>`` they also save the main views there
as PNG files, and the first load's figures as ``first-load.json``.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.loopback_server import LoopbackServer
from tests.ui.conftest import new_context
from tests.ui.test_dashboard import card, open_dashboard

SHOTS = os.environ.get("MSD_SCREENSHOTS")
# The page, stylesheet and modules of the dashboard itself, gzipped (the chart library aside).
OWN_ASSETS_BUDGET = 40_000


def screenshot(page: Any, name: str, *, full_page: bool = True) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=full_page)


def alerts(server: LoopbackServer, **params: Any) -> dict[str, Any]:
    query = {"tz": "UTC", "days": "30", **params}
    query = {name: value for name, value in query.items() if value is not None}
    response = server.client.get("/api/alerts/", params=query)
    response.raise_for_status()
    return response.json()


def open_full(page: Any, query: str = "") -> None:
    """Open the dashboard and wait until every panel has drawn once."""
    open_dashboard(page, query)
    for panel in ("alerts", "trends", "companies", "regions"):
        page.wait_for_selector(f"#{panel}-panel[data-loaded]")


def table_ids(page: Any) -> list[str]:
    return page.locator("#alerts-table tbody tr[data-alert-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.alertId)"
    )


def wait_table_change(page: Any, before: list[str]) -> list[str]:
    page.wait_for_function(
        "before => JSON.stringify([...document.querySelectorAll("
        "'#alerts-table tbody tr[data-alert-id]')].map(r => r.dataset.alertId)) !== before",
        arg=json.dumps(before, separators=(",", ":")),
    )
    return table_ids(page)


def click_a_mark(page: Any, panel: str, *, first: bool) -> None:
    """Click the first (or last) data mark of a chart that is big enough to hit."""
    marks = page.locator(f"{panel} svg path[role=graphics-symbol]")
    sizes = marks.evaluate_all(
        "marks => marks.map(m => { const b = m.getBoundingClientRect();"
        " return b.width > 3 && b.height > 3; })"
    )
    hits = [index for index, big in enumerate(sizes) if big]
    assert hits, f"no clickable mark in {panel}"
    marks.nth(hits[0] if first else hits[-1]).click()


def test_every_panel_fills_on_first_load_and_the_load_is_small(
    page: Any, live_server: LoopbackServer
) -> None:
    # The server makes the chart library's bundle on its first request (seconds, once per
    # process); measured here is a new browser's first visit to a running service.
    live_server.client.get("/ui/vendor/vega.js").raise_for_status()
    started = time.perf_counter()
    open_full(page)
    drawn_ms = page.evaluate("Math.round(performance.now())")
    wall = time.perf_counter() - started
    listed = alerts(live_server, page_size="20")

    assert card(page, "total") > 0
    assert table_ids(page) == [row["alert_id"] for row in listed["results"]]
    assert page.locator("#trends-panel svg").count() >= 1
    assert page.locator("#companies-panel svg").count() >= 1
    assert page.locator("#regions-panel tbody tr").count() > 5
    assert page.locator(".panel-status:not(:empty)").count() == 0

    figures = page.evaluate(
        """() => {
          const nav = performance.getEntriesByType('navigation')[0];
          const all = [nav, ...performance.getEntriesByType('resource')];
          const bytes = (pick) => all.filter(pick).reduce((n, e) => n + e.transferSize, 0);
          const path = (e) => new URL(e.name).pathname;
          return {
            total_bytes: bytes(() => true),
            own_assets_bytes: bytes((e) => path(e) === '/' ||
              (path(e).startsWith('/ui/') && !path(e).startsWith('/ui/vendor/'))),
            chart_library_bytes: bytes((e) => path(e).startsWith('/ui/vendor/')),
            api_bytes: bytes((e) => path(e).startsWith('/api/')),
            requests: all.length,
            dom_content_loaded_ms: Math.round(nav.domContentLoadedEventEnd),
            load_event_ms: Math.round(nav.loadEventEnd),
          };
        }"""
    )
    figures["all_panels_drawn_ms"] = drawn_ms  # from the start of navigation, in the page
    figures["test_wall_s"] = round(wall, 2)
    figures["alerts_in_window"] = listed["count"]
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        (Path(SHOTS) / "first-load.json").write_text(json.dumps(figures, indent=2) + "\n")
    screenshot(page, "dashboard-light")

    assert 0 < figures["own_assets_bytes"] < OWN_ASSETS_BUDGET, figures


def test_dark_scheme_follows_the_system(browser: Any, live_server: LoopbackServer) -> None:
    context = new_context(browser, live_server, color_scheme="dark")
    page = context.new_page()
    open_full(page)
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    screenshot(page, "dashboard-dark", full_page=False)
    context.close()

    red, green, blue = map(int, re.findall(r"\d+", background)[:3])
    assert red + green + blue < 150, background


def test_charts_follow_a_scheme_change_while_the_page_is_open(
    page: Any, live_server: LoopbackServer
) -> None:
    open_full(page)
    labels = "#trends-panel svg .role-axis-label text"
    light = page.locator(labels).first.get_attribute("fill")
    loaded = page.locator("#trends-panel").get_attribute("data-loaded")

    page.emulate_media(color_scheme="dark")
    page.wait_for_function(
        "n => document.querySelector('#trends-panel').dataset.loaded != n", arg=loaded
    )

    assert page.locator(labels).first.get_attribute("fill") != light


def test_a_filter_changes_every_panel_and_the_address(
    page: Any, live_server: LoopbackServer
) -> None:
    open_full(page)
    loads = {
        name: page.locator(f"#{name}-panel").get_attribute("data-loaded")
        for name in ("cards", "alerts", "trends", "companies", "regions")
    }

    page.get_by_role("checkbox", name="High", exact=True).check()
    page.wait_for_url(re.compile(r"severity=HIGH"))
    for name, count in loads.items():
        page.wait_for_function(
            "([name, count]) => document.querySelector(`#${name}-panel`).dataset.loaded != count",
            arg=[name, count],
        )
    page.wait_for_function("() => !document.querySelector('#alerts-panel[aria-busy]')")

    severities = page.locator("#alerts-table tbody .badge").all_inner_texts()
    assert severities and set(severities) == {"HIGH"}
    assert card(page, "total") == card(page, "high")
    assert "severity=HIGH" in page.locator("#alerts-panel .exports a").get_attribute("href")
    regions_high = sum(
        int(re.sub(r"\D", "", text))
        for text in page.locator("#regions-panel tbody td:nth-child(2)").all_inner_texts()
    )
    assert regions_high == card(page, "total")


def test_back_and_reload_restore_table_filters_and_order(
    page: Any, live_server: LoopbackServer
) -> None:
    open_full(page)
    first = table_ids(page)

    page.get_by_role("button", name="Amount").click()
    page.wait_for_url(re.compile(r"ordering=-amount"))
    by_amount = wait_table_change(page, first)
    assert by_amount == [r["alert_id"] for r in alerts(live_server, ordering="-amount")["results"]]

    page.locator("input[name=q]").fill("credit")
    page.locator("input[name=q]").press("Enter")
    page.wait_for_url(re.compile(r"q=credit"))
    texts = wait_table_change(page, by_amount)

    page.reload()
    page.wait_for_selector("#alerts-panel[data-loaded]")
    assert table_ids(page) == texts
    assert page.locator("input[name=q]").input_value() == "credit"

    page.go_back()
    page.wait_for_function("() => !location.search.includes('q=')")
    assert wait_table_change(page, texts) == by_amount
    page.go_back()
    page.wait_for_function("() => location.search === ''")
    assert wait_table_change(page, by_amount) == first


def test_cursor_pages_go_forward_and_back(page: Any, live_server: LoopbackServer) -> None:
    open_full(page, "?page_size=50")
    first = table_ids(page)
    assert len(first) == 50

    page.get_by_role("button", name="Next").click()
    second = wait_table_change(page, first)
    page.get_by_role("button", name="Previous").click()
    back = wait_table_change(page, second)

    expected = alerts(live_server, page_size="50")
    after = alerts(live_server, page_size="50", cursor=expected["next_cursor"])
    assert second == [row["alert_id"] for row in after["results"]]
    assert back == first
    assert page.locator("#page-number").inner_text() == "Page 1"


def test_clicking_a_top_company_bar_filters_the_table(
    page: Any, live_server: LoopbackServer
) -> None:
    open_full(page)
    before = table_ids(page)
    click_a_mark(page, "#companies-panel", first=True)

    page.wait_for_url(re.compile(r"company="))
    company = page.evaluate("new URLSearchParams(location.search).get('company')")
    wait_table_change(page, before)
    companies = set(page.locator("#alerts-table tbody td:nth-child(3)").all_inner_texts())

    assert companies == {company}
    assert page.locator("#chips").inner_text().startswith("Company: ")


def test_clicking_a_trend_day_narrows_every_panel_to_that_day(
    page: Any, live_server: LoopbackServer
) -> None:
    open_full(page)
    click_a_mark(page, "#trends-panel", first=False)

    page.wait_for_url(re.compile(r"since=\d{4}-\d{2}-\d{2}&until="))
    day = page.evaluate("new URLSearchParams(location.search).get('since')")
    assert page.evaluate("new URLSearchParams(location.search).get('until')") == day
    page.wait_for_function("() => !document.querySelector('#alerts-panel[aria-busy]')")
    detected = page.locator("#alerts-table tbody tr[data-alert-id]").count()
    expected = alerts(live_server, days=None, since=day, until=day)
    assert detected == min(20, expected["count"])


def test_bulk_action_completes_and_the_table_shows_the_new_statuses(
    page: Any, live_server: LoopbackServer
) -> None:
    open_full(page, "?status=PENDING")
    rows = page.locator("#alerts-table tbody tr[data-alert-id]")
    chosen = [rows.nth(i).get_attribute("data-alert-id") for i in range(3)]
    for i in range(3):
        rows.nth(i).locator("input[type=checkbox]").check()

    page.locator("#bulk select[name=action]").select_option("resolve")
    page.locator("#bulk input[name=note]").fill("bulk from the browser test")
    page.get_by_role("button", name="Apply").click()
    page.locator(".bulk-progress").filter(has_text="Batch done").wait_for()

    assert "3 changed" in page.locator(".bulk-progress").inner_text()
    for alert_id in chosen:
        detail = live_server.client.get(f"/api/alerts/{alert_id}/").json()
        assert detail["status"] == "RESOLVED"
    page.wait_for_function(
        "ids => ids.every(id => !document.querySelector(`tr[data-alert-id='${id}']`))",
        arg=chosen,
    )  # filtered on PENDING, the resolved ones leave the table


def test_a_refused_bulk_action_says_why(page: Any, live_server: LoopbackServer) -> None:
    open_full(page)
    page.locator("#alerts-table tbody tr[data-alert-id] input[type=checkbox]").first.check()

    page.locator("#bulk select[name=action]").select_option("assign")
    page.get_by_role("button", name="Apply").click()  # with no assignee named
    progress = page.locator(".bulk-progress")
    progress.filter(has_text="Batch not accepted").wait_for()

    assert "assign needs an assignee" in progress.inner_text()
    assert page.locator("#bulk").get_attribute("data-state") == "failed"


def test_detail_shows_the_history_and_a_status_change_works(
    page: Any, live_server: LoopbackServer
) -> None:
    # Oldest first: the newest pending alerts may be ones other tests add through the API.
    open_full(page, "?status=PENDING&ordering=detected_at")
    row = page.locator("#alerts-table tbody tr[data-alert-id]").first
    alert_id = row.get_attribute("data-alert-id")
    row.focus()
    page.keyboard.press("Enter")
    dialog = page.locator("#detail")
    dialog.locator(".history li").first.wait_for()
    assert dialog.locator("[data-field=alert_id]").inner_text() == alert_id
    assert "via ingest" in dialog.locator(".history").inner_text()

    dialog.locator("select[name=status]").select_option("REVIEWING")
    dialog.locator("textarea[name=note]").fill("looking into it")
    dialog.get_by_role("button", name="Change status").click()
    dialog.locator(".change-result").filter(has_text="Status changed to REVIEWING").wait_for()
    dialog.locator(".history .note").filter(has_text="looking into it").wait_for()
    history = dialog.locator(".history").inner_text()
    assert "PENDING" in history and "REVIEWING" in history and "via api" in history
    screenshot(page, "detail-dialog", full_page=False)

    # Someone else changes it meanwhile: the stale change is refused and the reason shown.
    current = live_server.client.get(f"/api/alerts/{alert_id}/").json()
    live_server.client.patch(
        f"/api/alerts/{alert_id}/",
        json={"status": "RESOLVED", "version": current["version"]},
    ).raise_for_status()
    dialog.get_by_role("button", name="Change status").click()
    error = dialog.locator(".change-result.error")
    error.wait_for()
    assert "version" in error.inner_text()

    page.keyboard.press("Escape")
    assert not dialog.is_visible()


def test_an_empty_result_says_so_in_every_list(page: Any, live_server: LoopbackServer) -> None:
    open_full(page, "?q=no-company-is-called-this-zzz")

    assert page.locator("#alerts-table tbody td.empty").inner_text() == (
        "No alerts for these filters"
    )
    assert page.locator("#regions-panel .empty").inner_text() == "No alerts for these filters"
    assert page.locator("#companies-panel .empty").inner_text() == "No alerts for these filters"
    assert card(page, "total") == 0


def test_the_table_follows_new_alerts_by_itself(page: Any, live_server: LoopbackServer) -> None:
    open_full(page)
    page.evaluate("window.notReloaded = true")
    moment = datetime.now(timezone.utc) - timedelta(seconds=30)
    alert_id = f"live-table-{moment.timestamp():.0f}"
    created = live_server.client.post(
        "/api/alerts/",
        json={
            "alert_id": alert_id,
            "company_name": "Newest Arrival Bank",
            "violation_type": "Late reporting",
            "severity": "HIGH",
            "detected_at": moment.isoformat(),
        },
    )
    assert created.status_code == 201

    page.wait_for_selector(f"tr[data-alert-id='{alert_id}']")
    assert table_ids(page)[0] == alert_id
    assert page.evaluate("window.notReloaded") is True


def test_keyboard_selects_rows_and_tablet_width_fits(browser: Any, live_server: LoopbackServer):
    context = new_context(browser, live_server, viewport={"width": 768, "height": 1024})
    page = context.new_page()
    open_full(page)
    overflow = page.evaluate("document.documentElement.scrollWidth - innerWidth")
    screenshot(page, "dashboard-tablet", full_page=False)

    row = page.locator("#alerts-table tbody tr[data-alert-id]").first
    row.focus()
    page.keyboard.press("Space")
    selected = row.get_attribute("aria-selected")
    page.keyboard.press("ArrowDown")
    focused_next = page.evaluate("document.activeElement.dataset.alertId")
    second_row = table_ids(page)[1]
    context.close()

    assert overflow <= 0
    assert selected == "true"
    assert focused_next == second_row


def test_the_dashboard_asks_nothing_of_another_site(page: Any, live_server: LoopbackServer):
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    open_full(page)
    page.locator("#alerts-table tbody tr[data-alert-id]").first.click()
    page.locator("#detail .history li").first.wait_for()

    own = urlsplit(live_server.url).netloc
    outside = [url for url in requested if urlsplit(url).scheme != "data"]
    outside = [url for url in outside if urlsplit(url).netloc != own]
    assert requested and outside == []


def test_clicking_a_region_filters_every_panel_to_that_region(
    page: Any, live_server: LoopbackServer
) -> None:
    open_full(page)
    loaded = page.locator("#alerts-panel").get_attribute("data-loaded")
    button = page.locator("#regions-panel tbody th button").first
    region = button.inner_text()

    button.click()
    page.wait_for_url(re.compile(rf"region={region}"))
    page.wait_for_function(
        "n => document.querySelector('#alerts-panel').dataset.loaded != n", arg=loaded
    )
    page.wait_for_function(
        "r => [...document.querySelectorAll('#regions-panel tbody th')]"
        ".every(th => th.textContent === r)",
        arg=region,
    )

    regions = set(page.locator("#alerts-table tbody td:nth-child(8)").all_inner_texts())
    assert regions == {region}


# Called on every change of a panel's children: a panel that is ever empty has blinked.
WATCH_BLANKS = """() => {
  window.blanked = [];
  for (const selector of ['#alerts-table tbody', '#trends-panel .chart-body',
                          '#companies-panel .chart-body', '#regions-panel .regions-body']) {
    const node = document.querySelector(selector);
    new MutationObserver(() => {
      if (!node.children.length) window.blanked.push(selector);
    }).observe(node, { childList: true });
  }
}"""


def test_a_live_update_redraws_in_place_and_keeps_the_focused_row(
    page: Any, live_server: LoopbackServer
) -> None:
    open_full(page)
    page.evaluate(WATCH_BLANKS)
    focused = page.locator("#alerts-table tbody tr[data-alert-id]").nth(1)
    focused_id = focused.get_attribute("data-alert-id")
    focused.focus()
    trends = page.locator("#trends-panel").get_attribute("data-loaded")

    moment = datetime.now(timezone.utc) - timedelta(seconds=30)
    alert_id = f"live-focus-{moment.timestamp():.0f}"
    created = live_server.client.post(
        "/api/alerts/",
        json={
            "alert_id": alert_id,
            "company_name": "Focus Keeper Bank",
            "violation_type": "Late reporting",
            "severity": "LOW",
            "detected_at": moment.isoformat(),
        },
    )
    assert created.status_code == 201
    page.wait_for_selector(f"tr[data-alert-id='{alert_id}']")
    page.wait_for_function(
        "n => document.querySelector('#trends-panel').dataset.loaded != n", arg=trends
    )

    assert page.evaluate("document.activeElement.dataset.alertId") == focused_id
    assert page.evaluate("window.blanked") == []


def test_a_status_change_that_cannot_reach_the_service_says_so(
    page: Any, live_server: LoopbackServer
) -> None:
    # Test double for a fault the service cannot cause on demand: the network dropping the
    # request. Reads go through; only the change is cut off.
    open_full(page, "?status=PENDING")
    page.locator("#alerts-table tbody tr[data-alert-id]").first.click()
    dialog = page.locator("#detail")
    dialog.locator(".history li").first.wait_for()
    page.route(
        "**/api/alerts/*/",
        lambda route: route.abort() if route.request.method == "PATCH" else route.continue_(),
    )

    dialog.locator("select[name=status]").select_option("REVIEWING")
    dialog.get_by_role("button", name="Change status").click()

    error = dialog.locator(".change-result.error")
    error.filter(has_text="Cannot reach the service").wait_for()

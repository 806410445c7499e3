"""The dashboard in Chromium over the real service: what works on the existing endpoints.

The cards, the filter bar and its address-bar state, live updates and in-panel errors need
only the statistics endpoint and the live feed. The parts that need the list filters, the
region breakdown and the charts are in test_dashboard_panels.py.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from tests.loopback_server import LoopbackServer
from tests.ui.conftest import SUPERVISOR

NUMBER = re.compile(r"[^\d]")


def card(page: Any, name: str) -> int:
    return int(NUMBER.sub("", page.locator(f'[data-stat="{name}"]').inner_text()))


def statistics(server: LoopbackServer, **params: str) -> dict[str, Any]:
    response = server.client.get("/api/alerts/statistics/", params={"tz": "UTC", **params})
    response.raise_for_status()
    return response.json()


def open_dashboard(page: Any, query: str = "") -> None:
    page.goto(f"/{query}")
    page.wait_for_selector("#cards-panel[data-loaded]")


def test_page_and_its_files_are_gzipped_and_versioned(live_server: LoopbackServer) -> None:
    with httpx.Client(base_url=live_server.url, headers={"Accept-Encoding": "gzip"}) as client:
        page = client.get("/")
        versioned = re.findall(r'"(/ui/[^"?]+\?v=[0-9a-f]{16})"', page.text)
        script = client.get(next(url for url in versioned if "js/main.js" in url))
        again = client.get("/", headers={"If-None-Match": page.headers["ETag"]})
        index = live_server.client.get("/api/")
        missing = client.get("/ui/nothing-here.js")

    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-encoding"] == "gzip"
    assert page.headers["cache-control"] == "no-cache"
    assert any("js/main.js" in url for url in versioned) and any(
        "app.css" in url for url in versioned
    )
    assert script.headers["content-encoding"] == "gzip"
    assert "immutable" in script.headers["cache-control"]
    assert again.status_code == 304
    assert index.json()["alerts"] == "/api/alerts/" and index.json()["live"] == "/api/live/"
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


def test_favicon_ico_answers_the_icon_without_credentials_and_revalidates(
    live_server: LoopbackServer,
) -> None:
    with httpx.Client(base_url=live_server.url) as anonymous:
        answer = anonymous.get("/favicon.ico")
        again = anonymous.get("/favicon.ico", headers={"If-None-Match": answer.headers["ETag"]})
        linked = anonymous.get("/ui/favicon.svg")

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("image/svg+xml")
    assert answer.content == linked.content and answer.content.startswith(b"<svg")
    assert answer.headers["cache-control"] == "no-cache"
    assert again.status_code == 304


def test_the_page_links_the_icon_by_its_version(live_server: LoopbackServer) -> None:
    page = httpx.get(f"{live_server.url}/").text
    icon = re.search(r'<link rel="icon" href="(/ui/favicon\.svg\?v=[0-9a-f]{16})"', page)

    assert icon, "the dashboard links its icon with a versioned URL"
    answer = httpx.get(f"{live_server.url}{icon.group(1)}")
    assert answer.status_code == 200 and "immutable" in answer.headers["cache-control"]


def test_api_answers_stay_uncompressed(live_server: LoopbackServer) -> None:
    response = live_server.client.get(
        "/api/alerts/statistics/", headers={"Accept-Encoding": "gzip"}
    )

    assert "content-encoding" not in response.headers
    assert response.json()["total"] > 0


def test_cards_show_the_statistics_of_the_default_window(page: Any, live_server: LoopbackServer):
    open_dashboard(page)
    expected = statistics(live_server, days="30")

    assert card(page, "total") == expected["total"] > 0
    assert card(page, "critical") == expected["critical"]
    assert card(page, "high") == expected["high"]
    assert card(page, "pending") == expected["pending"]
    assert page.locator("[data-range='30d']").get_attribute("aria-pressed") == "true"


def test_severity_filter_goes_into_the_address_and_back_and_reload_restore_it(
    page: Any, live_server: LoopbackServer
) -> None:
    open_dashboard(page)
    everything = card(page, "total")

    page.get_by_role("checkbox", name="Critical").check()
    page.wait_for_url(re.compile(r"severity=CRITICAL"))
    page.wait_for_function(
        "n => document.querySelector('[data-stat=total]').textContent.replace(/\\D/g, '') != n",
        arg=str(everything),
    )
    critical_only = statistics(live_server, days="30", severity="CRITICAL")["total"]
    assert card(page, "total") == critical_only == card(page, "critical")

    page.reload()
    page.wait_for_selector("#cards-panel[data-loaded]")
    assert page.get_by_role("checkbox", name="Critical").is_checked()
    assert card(page, "total") == critical_only

    page.go_back()
    page.wait_for_function("() => !location.search.includes('severity')")
    page.wait_for_function(
        "n => document.querySelector('[data-stat=total]').textContent.replace(/\\D/g, '') == n",
        arg=str(everything),
    )
    assert not page.get_by_role("checkbox", name="Critical").is_checked()


def test_a_range_preset_and_a_custom_range_over_real_complaints(
    page: Any, live_server: LoopbackServer
) -> None:
    open_dashboard(page)
    page.get_by_role("button", name="7d").click()
    page.wait_for_url(re.compile(r"range=7d"))
    page.wait_for_function(
        "n => document.querySelector('[data-stat=total]').textContent.replace(/\\D/g, '') == n",
        arg=str(statistics(live_server, days="7")["total"]),
    )

    # The CFPB sample's complaints were received in 2020: a custom range reaches them.
    open_dashboard(page, "?since=2020-03-01&until=2020-03-31")
    march = statistics(live_server, since="2020-03-01", until="2020-03-31")

    assert march["total"] > 0
    assert card(page, "total") == march["total"]
    assert page.locator("input[name=since]").input_value() == "2020-03-01"
    assert page.locator("[data-range='30d']").get_attribute("aria-pressed") == "false"


def test_cards_follow_new_alerts_by_themselves(page: Any, live_server: LoopbackServer) -> None:
    open_dashboard(page)
    page.wait_for_function(
        "() => document.querySelector('#freshness').textContent.includes('as of')"
    )
    page.evaluate("window.notReloaded = true")
    before = card(page, "total")

    now = datetime.now(timezone.utc) - timedelta(minutes=1)
    new = [
        {
            "alert_id": f"live-{now.timestamp():.0f}-{n}",
            "company_name": "Live Update Test Co",
            "violation_type": "Late reporting",
            "severity": "CRITICAL",
            "detected_at": now.isoformat(),
        }
        for n in range(3)
    ]
    created = live_server.client.post("/api/alerts/", json=new)
    assert created.status_code == 201

    page.wait_for_function(
        "n => Number(document.querySelector('[data-stat=total]').textContent.replace(/\\D/g, ''))"
        " >= n",
        arg=before + 3,
    )
    assert page.evaluate("window.notReloaded") is True
    assert "as of" in page.locator("#freshness").inner_text()


def test_unavailable_figures_are_said_in_the_panel_and_retried(
    page: Any, live_server: LoopbackServer
) -> None:
    # Test double for a fault the embedded engine cannot have on demand: ClickHouse refusing.
    # The first statistics request gets the service's own 503 problem; later ones go through.
    refused: list[str] = []

    def refuse_once(route: Any) -> None:
        if refused:
            route.continue_()
            return
        refused.append(route.request.url)
        route.fulfill(
            status=503,
            content_type="application/problem+json",
            body='{"status": 503, "title": "Service Unavailable",'
            ' "detail": "ClickHouse did not answer"}',
        )

    page.route("**/api/alerts/statistics/**", refuse_once)
    page.goto("/")
    status = page.locator("#cards-panel .panel-status")
    status.filter(has_text="Figures unavailable: ClickHouse did not answer").wait_for()
    assert "retrying" in status.inner_text()

    page.wait_for_selector("#cards-panel[data-loaded]", timeout=12_000)
    assert status.inner_text() == ""
    assert card(page, "total") > 0


def test_without_a_session_the_dashboard_sends_to_sign_in_and_back(
    browser: Any, live_server: LoopbackServer
) -> None:
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()

    page.goto("/?severity=HIGH")
    page.wait_for_url("**/signin?next=*")
    page.fill("#username", SUPERVISOR[0])
    page.fill("#password", "not the password")
    page.click("button[type=submit]")
    page.locator("#problem:not(:empty)").wait_for()  # the sign-in page allows no eval
    refused = page.locator("#problem").inner_text()
    page.fill("#password", SUPERVISOR[1])
    page.click("button[type=submit]")
    page.wait_for_url("**/?severity=HIGH")
    page.wait_for_selector("#account:not([hidden])")
    account = page.locator("#account-name").inner_text()
    page.click("#sign-out")
    page.wait_for_url("**/signin?next=*")
    context.close()

    assert "wrong username or password" in refused
    assert account == f"{SUPERVISOR[0]} (analyst)"

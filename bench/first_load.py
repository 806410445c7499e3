"""A new browser's first visit to the dashboard, timed in Debian's Chromium (``--first-load``).

    python bench/serving.py --data-dir DIR --first-load 5

Each visit is a fresh browser context (empty browser cache, so every asset is transferred) that
sends the benchmark's token, opens ``/`` and waits until the cards, the table, the trend, the
top companies and the regions have each drawn once. The first visit meets a server whose
answer cache is empty: its aggregates are computed in ClickHouse, its count and list read
PostgreSQL. The later ones find the answers cached, as the second supervisor to open the page
does. Before the first visit the chart library is requested once, because the server builds
that bundle on its first request (seconds, once per process).

Printed per visit: the DOMContentLoaded and load events, when every panel had drawn (all from
the start of navigation, as the page's clock measures), the bytes transferred (gzipped, as
sent) and the number of requests.
"""

from __future__ import annotations

import statistics
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
# No request may leave loopback: Chromium otherwise asks DNS for Google's hosts by itself.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
PANELS = ("cards", "alerts", "trends", "companies", "regions")

_FIGURES_JS = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const all = [nav, ...performance.getEntriesByType('resource')];
  const bytes = (pick) => all.filter(pick).reduce((n, e) => n + e.transferSize, 0);
  const path = (e) => new URL(e.name).pathname;
  return {
    dom_content_loaded_ms: Math.round(nav.domContentLoadedEventEnd),
    load_event_ms: Math.round(nav.loadEventEnd),
    total_bytes: bytes(() => true),
    chart_library_bytes: bytes((e) => path(e).startsWith('/ui/vendor/')),
    api_bytes: bytes((e) => path(e).startsWith('/api/')),
    requests: all.length,
  };
}"""


def _visit(browser: Any, url: str, token: str) -> dict[str, Any]:
    context = browser.new_context(
        base_url=url,
        extra_http_headers={"Authorization": f"Bearer {token}"},
        viewport={"width": 1280, "height": 900},
    )
    context.set_default_timeout(60_000)
    try:
        page = context.new_page()
        page.goto("/")
        for panel in PANELS:
            page.wait_for_selector(f"#{panel}-panel[data-loaded]")
        drawn_ms = page.evaluate("Math.round(performance.now())")
        failed = page.locator(".panel-status:not(:empty)").all_inner_texts()
        figures = page.evaluate(_FIGURES_JS)
    finally:
        context.close()
    return figures | {"all_panels_drawn_ms": drawn_ms, "panel_messages": failed}


def run_first_loads(url: str, token: str, visits: int) -> list[dict[str, Any]]:
    """``visits`` first visits, the first against an empty answer cache; prints each."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        raise SystemExit(
            f"{CHROMIUM} is missing: install Debian's package (apt-get install chromium)"
        )
    request = urllib.request.Request(url + "/ui/vendor/vega.js")
    with urllib.request.urlopen(request, timeout=120) as answer:
        answer.read()

    results = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            for number in range(1, visits + 1):
                figures = _visit(browser, url, token)
                results.append(figures)
                cache = "empty answer cache" if number == 1 else "answers cached"
                print(
                    f"  visit {number} ({cache}): DOMContentLoaded "
                    f"{figures['dom_content_loaded_ms']} ms, load {figures['load_event_ms']} ms, "
                    f"every panel drawn {figures['all_panels_drawn_ms']} ms, "
                    f"{figures['total_bytes'] / 1000:,.1f} kB in {figures['requests']} requests"
                    + (
                        f"; panel messages: {figures['panel_messages']}"
                        if figures["panel_messages"]
                        else ""
                    ),
                    flush=True,
                )
        finally:
            browser.close()
    if len(results) > 1:
        later = [r["all_panels_drawn_ms"] for r in results[1:]]
        print(f"  every panel drawn, later visits: median {statistics.median(later):.0f} ms")
    return results

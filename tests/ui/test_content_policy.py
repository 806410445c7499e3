"""The dashboard and the sign-in page under their Content Security Policy, in Chromium.

Both pages are answered with ``default-src 'self'``: no inline style or script but what the
policy names, nothing from another site, no eval. Chromium reports a violation twice, as a
console error and as a ``securitypolicyviolation`` event; these tests record both from the
page's first byte, with every request that failed or was answered with an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.loopback_server import LoopbackServer
from tests.ui.conftest import new_context

# Playwright's init scripts run before the page's own and are not subject to its policy.
RECORD_VIOLATIONS = """
window.policyViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.policyViolations.push(
    `${event.effectiveDirective} refused ${event.blockedURI || "inline"}`
    + ` (${event.sourceFile || "page"}:${event.lineNumber})`,
  );
});
"""
PANELS = ("cards", "alerts", "trends", "companies", "regions")
TOOLTIP = "#vg-tooltip-element"
# WCAG AA for normal text.
READABLE_CONTRAST = 4.5


@dataclass
class PageTrouble:
    """What went wrong while a page loaded: console errors and failed or refused requests."""

    console: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def watch(self, page: Any) -> None:
        page.add_init_script(RECORD_VIOLATIONS)
        page.on("console", self._console)
        page.on("requestfailed", self._failed)
        page.on("response", self._answered)

    def _console(self, message: Any) -> None:
        if message.type == "error" or "Content Security Policy" in message.text:
            self.console.append(message.text)

    def _failed(self, request: Any) -> None:
        self.requests.append(f"{request.url}: {request.failure}")

    def _answered(self, response: Any) -> None:
        if response.status >= 400:
            self.requests.append(f"{response.url}: {response.status}")


def violations(page: Any) -> list[str]:
    return page.evaluate("window.policyViolations")


def policy_of(response: Any) -> str:
    return response.headers.get("content-security-policy", "")


def icon_answer(page: Any) -> list[Any]:
    """The status and type of the icon the page links, fetched as the page would."""
    return page.evaluate(
        """async () => {
          const link = document.querySelector("link[rel=icon]");
          if (!link) return [0, "no icon linked"];
          const answer = await fetch(link.href, { credentials: "omit" });
          return [answer.status, answer.headers.get("content-type")];
        }"""
    )


def open_every_panel(page: Any, trouble: PageTrouble) -> Any:
    """Open the dashboard and wait for every panel to draw (else say what the page reported)."""
    answer = page.goto("/")
    try:
        for panel in PANELS:
            page.wait_for_selector(f"#{panel}-panel[data-loaded]")
    except PlaywrightTimeoutError:
        pytest.fail(f"not every panel drew: {violations(page)}, {trouble}")
    return answer


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_dashboard_loads_under_its_policy_with_no_violation_and_no_failed_request(
    browser: Any, live_server: LoopbackServer, scheme: str
) -> None:
    context = new_context(browser, live_server, color_scheme=scheme)
    page = context.new_page()
    trouble = PageTrouble()
    trouble.watch(page)

    answer = open_every_panel(page, trouble)
    page.locator("#alerts-table tbody tr[data-alert-id]").first.click()
    page.locator("#detail .history li").first.wait_for()
    icon = icon_answer(page)
    found = violations(page)
    context.close()

    assert "default-src 'self'" in policy_of(answer)
    assert "unsafe" not in policy_of(answer)
    assert found == []
    assert trouble.console == []
    assert trouble.requests == []
    assert icon == [200, "image/svg+xml"]


def test_the_sign_in_page_loads_under_its_policy_with_no_violation_and_no_failed_request(
    browser: Any, live_server: LoopbackServer
) -> None:
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    trouble = PageTrouble()
    trouble.watch(page)

    answer = page.goto("/signin?next=/")
    page.locator("#username").wait_for()
    page.wait_for_load_state("load")
    border = page.evaluate("getComputedStyle(document.querySelector('main')).borderTopWidth")
    icon = icon_answer(page)
    found = violations(page)
    context.close()

    assert "default-src 'self'" in policy_of(answer)
    assert "unsafe" not in policy_of(answer)
    assert found == []
    assert trouble.console == []
    assert trouble.requests == []
    assert border == "1px", "the sign-in page's own stylesheet applies"
    assert icon == [200, "image/svg+xml"]


def relative_luminance(rgb: tuple[float, float, float]) -> float:
    def linear(channel: float) -> float:
        value = channel / 255
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    red, green, blue = map(linear, rgb)
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(first: tuple[float, float, float], second: tuple[float, float, float]) -> float:
    lighter, darker = sorted(map(relative_luminance, (first, second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def hover_a_bar(page: Any) -> dict[str, Any]:
    """Hover the first top-company bar; the shown tooltip's computed style."""
    page.locator("#companies-panel svg path[role=graphics-symbol]").first.hover()
    page.locator(f"{TOOLTIP}.visible").wait_for()
    return page.evaluate(
        """(selector) => {
          const tip = document.querySelector(selector);
          const style = getComputedStyle(tip);
          const colour = (text) => text.match(/[\\d.]+/g).slice(0, 4).map(Number);
          return {
            text: tip.innerText,
            position: style.position,
            visibility: style.visibility,
            padding: parseFloat(style.paddingTop),
            radius: parseFloat(style.borderTopLeftRadius),
            background: colour(style.backgroundColor),
            colour: colour(style.color),
            key_colour: colour(getComputedStyle(tip.querySelector("td.key")).color),
          };
        }""",
        TOOLTIP,
    )


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_chart_tooltip_shows_styled_and_readable_when_hovering_a_mark(
    browser: Any, live_server: LoopbackServer, scheme: str
) -> None:
    context = new_context(browser, live_server, color_scheme=scheme)
    page = context.new_page()
    trouble = PageTrouble()
    trouble.watch(page)
    open_every_panel(page, trouble)
    tip = hover_a_bar(page)
    found = violations(page)
    context.close()

    background = tuple(tip["background"][:3])
    assert found == [] and trouble.console == []
    assert "risk" in tip["text"].lower(), tip["text"]
    assert tip["position"] in ("fixed", "absolute") and tip["visibility"] == "visible"
    assert tip["padding"] >= 4 and tip["radius"] > 0
    assert len(tip["background"]) == 3 or tip["background"][3] > 0.8, "an opaque background"
    assert contrast(tuple(tip["colour"][:3]), background) >= READABLE_CONTRAST, tip
    assert contrast(tuple(tip["key_colour"][:3]), background) >= READABLE_CONTRAST, tip

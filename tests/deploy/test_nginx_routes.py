"""deploy/nginx.conf against the API it fronts: every route of the real application reaches an
API instance, and the limits and special paths match what the application does.

(``nginx -t`` and a live nginx in front of granian are in test_server_stack.py.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from api.app import MAX_BODY_BYTES, create_app
from msd.runtime import Services
from tests.api.conftest import services  # noqa: F401  (the fixture)

CONF = (Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Location:
    modifier: str  # "", "=", "^~", "~" or "~*"
    pattern: str
    body: str


def _tls_server() -> str:
    start = CONF.index("listen 443")
    return CONF[start:]


def _locations() -> list[Location]:
    found = re.findall(
        r"location\s+(=|\^~|~\*|~)?\s*(\S+)\s*\{(.*?)\n\s*\}", _tls_server(), re.DOTALL
    )
    return [Location(modifier, pattern, body) for modifier, pattern, body in found]


def choose(path: str) -> Location:
    """The location nginx serves ``path`` from: exact, else longest prefix unless a regex
    matches (a ``^~`` prefix stops the regex search), regexes in the order written."""
    locations = _locations()
    for location in locations:
        if location.modifier == "=" and location.pattern == path:
            return location
    prefixes = [
        loc for loc in locations if loc.modifier in ("", "^~") and path.startswith(loc.pattern)
    ]
    longest = max(prefixes, key=lambda loc: len(loc.pattern), default=None)
    if longest is not None and longest.modifier == "^~":
        return longest
    for location in locations:
        flags = re.IGNORECASE if location.modifier == "~*" else 0
        if location.modifier in ("~", "~*") and re.search(location.pattern, path, flags):
            return location
    assert longest is not None, f"no location serves {path}"
    return longest


def _directive(body: str, name: str) -> str | None:
    found = re.search(rf"^\s*{name}\s+([^;]+);", body, re.MULTILINE)
    return found.group(1).strip() if found else None


@pytest.fixture
def api_paths(services: Services) -> list[str]:  # noqa: F811
    app = create_app(services)
    paths = {re.sub(r"\{[^}]+\}", "sample-id", route.path) for route in app.routes}
    return sorted(paths | {p + "/" for p in paths if p != "/"})


def test_every_route_of_the_application_reaches_an_api_instance(api_paths: list[str]) -> None:
    assert "/api/alerts/sample-id/history/" in api_paths and "/schema/openapi.json" in api_paths
    for path in api_paths:
        assert _directive(choose(path).body, "proxy_pass") == "http://msd_api", path


def test_metrics_are_served_to_the_monitoring_network_only(api_paths: list[str]) -> None:
    assert "/metrics" in api_paths
    body = choose("/metrics").body
    assert _directive(body, "deny") == "all" and _directive(body, "allow")


def test_body_limit_matches_the_api() -> None:
    limit = _directive(CONF, "client_max_body_size")
    assert limit is not None and limit.endswith("m")
    assert int(limit[:-1]) * 1024 * 1024 == MAX_BODY_BYTES


def test_server_sent_events_are_not_buffered_or_compressed() -> None:
    live = choose("/api/live/alerts")
    assert live.pattern == "/api/live/"
    assert _directive(live.body, "proxy_buffering") == "off"
    assert _directive(live.body, "gzip") == "off"
    assert _directive(live.body, "proxy_read_timeout") == "1h"


def test_vendored_files_are_cached_long_and_dashboard_assets_a_day() -> None:
    assert _directive(choose("/ui/vendor/vega-5.js").body, "expires") == "1y"
    assert _directive(choose("/ui/app.css").body, "expires") == "1d"
    assert _directive(choose("/api/alerts/").body, "expires") is None


def test_client_address_and_scheme_are_passed_on_and_json_is_compressed() -> None:
    headers = dict(re.findall(r"proxy_set_header\s+(\S+)\s+([^;]+);", CONF))
    assert headers["X-Forwarded-For"] == "$proxy_add_x_forwarded_for"
    assert headers["X-Forwarded-Proto"] == "$scheme"
    types = set(re.search(r"gzip_types([^;]+);", CONF).group(1).split())  # type: ignore[union-attr]
    assert {"application/json", "application/problem+json", "application/javascript"} <= types
    assert {"text/css", "image/svg+xml"} <= types
    assert "ssl_certificate" in _tls_server() and "listen 443 ssl" in CONF

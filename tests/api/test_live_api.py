"""``/api/live/``: server-sent watermark events over a real server on loopback."""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import replace
from typing import Iterator

import httpx
import pytest

from api.app import create_app
from api.live_routes import live_feed
from msd.runtime import Services
from tests.api.conftest import seed_alerts
from tests.loopback_server import LoopbackServer
from workflow import accounts

QUIET_SECONDS = 2.0


class EventReader:
    """Reads one event stream in a thread; ``lines`` receives each event and comment."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.lines: queue.Queue[tuple[str, str]] = queue.Queue()
        self.status: int | None = None
        self._opened = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(url, headers), daemon=True)
        self._thread.start()
        assert self._opened.wait(10), "the stream did not open"

    def _read(self, url: str, headers: dict[str, str]) -> None:
        with httpx.Client(timeout=httpx.Timeout(5, read=30), headers=headers) as client:
            with client.stream("GET", url) as response:
                self.status = response.status_code
                self._opened.set()
                event = ""
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith(":"):
                        self.lines.put(("comment", line[1:].strip()))
                    elif line.startswith("event:"):
                        event = line.split(":", 1)[1].strip()
                    elif line.startswith("data:"):
                        self.lines.put((event, line.split(":", 1)[1].strip()))

    def next_event(self, timeout: float) -> dict | None:
        """The next ``watermark`` event's data, or None when none came within ``timeout``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                kind, data = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if kind == "watermark":
                return json.loads(data)
        return None

    def close(self) -> None:
        self._stop.set()


@pytest.fixture
def server(services: Services) -> Iterator[LoopbackServer]:
    app = create_app(services)
    app.state.live_heartbeat_seconds = 0.3
    _, token = accounts.create_token(services.db, "live tests", "viewer")
    with LoopbackServer(app) as running:
        running.app = app  # type: ignore[attr-defined]
        running.auth = {"Authorization": f"Bearer {token}"}  # type: ignore[attr-defined]
        yield running


def test_stream_opens_with_the_current_watermark(
    server: LoopbackServer, services: Services
) -> None:
    seed_alerts(services.db, 20)
    services.replicator.drain()

    reader = EventReader(f"{server.url}/api/live/", server.auth)
    first = reader.next_event(5)
    reader.close()

    assert reader.status == 200
    assert first is not None
    assert first["watermark"] == services.watermark().position
    assert first["applied_events"] == 20
    assert first["as_of"] is not None


def test_stream_announces_newly_replicated_alerts(
    server: LoopbackServer, services: Services
) -> None:
    reader = EventReader(f"{server.url}/api/live/", server.auth)
    before = reader.next_event(5)

    seed_alerts(services.db, 30)
    services.replicator.drain()
    after = reader.next_event(5)
    reader.close()

    assert before is not None and before["applied_events"] == 0
    assert after is not None
    assert after["applied_events"] == 30
    assert after["watermark"] != before["watermark"]


def test_stream_sends_only_heartbeats_while_nothing_replicates(
    server: LoopbackServer, services: Services
) -> None:
    reader = EventReader(f"{server.url}/api/live/", server.auth)
    assert reader.next_event(5) is not None

    seed_alerts(services.db, 10)  # committed but not replicated: the figures did not move
    time.sleep(QUIET_SECONDS)
    seen = []
    while not reader.lines.empty():
        seen.append(reader.lines.get_nowait())
    reader.close()

    assert seen, "heartbeats (every 0.3 s here) should have arrived"
    assert all(kind == "comment" and text == "heartbeat" for kind, text in seen)


def test_open_streams_share_one_watermark_poller(
    server: LoopbackServer, services: Services
) -> None:
    feed = live_feed(server.app.state)  # type: ignore[attr-defined]
    reads = {"count": 0}
    read = feed.read

    def counted() -> object:
        reads["count"] += 1
        return read()

    feed.read = counted  # type: ignore[method-assign]
    readers = [EventReader(f"{server.url}/api/live/", server.auth) for _ in range(4)]
    started = time.monotonic()
    time.sleep(QUIET_SECONDS)
    elapsed = time.monotonic() - started
    for reader in readers:
        reader.close()

    polls_of_one_poller = elapsed / feed.poll_seconds + 2
    assert 1 <= reads["count"] <= polls_of_one_poller


def test_streams_beyond_the_limit_are_refused_and_a_closed_one_frees_its_place(
    services: Services,
) -> None:
    limited = replace(services, settings=replace(services.settings, live_max_clients=1))
    app = create_app(limited)
    app.state.live_heartbeat_seconds = 0.3
    auth = {"Authorization": f"Bearer {accounts.create_token(services.db, 'live', 'viewer')[1]}"}
    with LoopbackServer(app) as server:
        first = EventReader(f"{server.url}/api/live/", auth)
        assert first.next_event(5) is not None
        refused = httpx.get(f"{server.url}/api/live/", headers=auth, timeout=5)
        first.close()
        # The closed stream's place is free once the server notices the disconnect.
        with httpx.Client(timeout=5, headers=auth) as client:
            for _ in range(50):
                time.sleep(0.1)
                with client.stream("GET", f"{server.url}/api/live/") as again:
                    if again.status_code == 200:
                        break
        reopened = again.status_code

    assert refused.status_code == 503
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "MSD_LIVE_MAX_CLIENTS" in refused.json()["detail"]
    assert reopened == 200

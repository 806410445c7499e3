"""``GET /api/live/``: server-sent events telling dashboards that replicated figures moved.

One poller per process reads the replication watermark (a one-row read in PostgreSQL) every
``POLL_SECONDS`` while at least one stream is open, and hands every change to all open streams;
so a hundred open dashboards cost one cheap query per half second, not a hundred. Each stream
starts with the current watermark, then gets a ``watermark`` event whenever it moves, and a
comment every ``HEARTBEAT_SECONDS`` so that proxies and browsers keep the connection open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Any, AsyncIterator, Callable

import msgspec
from litestar import get
from litestar.datastructures import State
from litestar.response import ServerSentEvent, ServerSentEventMessage

from api.errors import ApiError
from api.routing import answer
from msd.runtime import Services
from olap.replicator import Watermark

__all__ = ["LiveFeed", "close_live_feed", "live_handlers"]

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5
HEARTBEAT_SECONDS = 15.0
# A stream that falls this many changes behind only needs the newest: older ones are dropped.
QUEUE_LENGTH = 4
# Browsers reconnect by themselves after a dropped stream; this is how long they wait (ms).
RECONNECT_MS = 3000


class WatermarkEvent(msgspec.Struct):
    watermark: str
    as_of: datetime | None
    replicated_at: datetime | None
    applied_events: int


def event_of(watermark: Watermark) -> WatermarkEvent:
    return WatermarkEvent(
        watermark=watermark.position,
        as_of=watermark.last_change_at,
        replicated_at=watermark.replicated_at,
        applied_events=watermark.events,
    )


class LiveFeed:
    """The open streams of one process and the single poller that feeds them."""

    def __init__(
        self,
        read: Callable[[], Watermark],
        *,
        max_clients: int,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.read = read
        self.max_clients = max_clients
        self.poll_seconds = poll_seconds
        self.latest: Watermark | None = None
        self._streams: set[asyncio.Queue[Watermark]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._failing = False

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def subscribe(self) -> asyncio.Queue[Watermark]:
        """A queue that receives every new watermark; 503 when the process has enough streams."""
        if len(self._streams) >= self.max_clients:
            raise ApiError(
                503,
                f"{self.max_clients} live streams are open, the most this process serves "
                "(MSD_LIVE_MAX_CLIENTS); try again later or poll the endpoints instead",
                parameter="live",
            )
        queue: asyncio.Queue[Watermark] = asyncio.Queue(maxsize=QUEUE_LENGTH)
        self._streams.add(queue)
        if self._poller is None or self._poller.done():
            self.latest = None  # nobody followed it meanwhile: the first stream reads it afresh
            self._poller = asyncio.get_running_loop().create_task(self._poll(), name="live-poll")
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Watermark]) -> None:
        self._streams.discard(queue)

    async def current(self) -> Watermark:
        if self.latest is None:
            self.latest = await asyncio.to_thread(self.read)
        return self.latest

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None

    async def _poll(self) -> None:
        while self._streams:
            watermark = await self._read_quietly()
            if watermark is not None and (
                self.latest is None or watermark.position != self.latest.position
            ):
                self.latest = watermark
                self._publish(watermark)
            await asyncio.sleep(self.poll_seconds)

    async def _read_quietly(self) -> Watermark | None:
        """The watermark, or None while PostgreSQL does not answer (logged once per outage)."""
        try:
            watermark = await asyncio.to_thread(self.read)
        except Exception as error:  # an outage pauses the feed; streams stay open
            if not self._failing:
                logger.warning("live feed: cannot read the watermark: %s", error)
            self._failing = True
            return None
        if self._failing:
            logger.info("live feed: the watermark reads again")
        self._failing = False
        return watermark

    def _publish(self, watermark: Watermark) -> None:
        for queue in self._streams:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(watermark)


def _message(watermark: Watermark) -> ServerSentEventMessage:
    data = msgspec.json.encode(event_of(watermark)).decode()
    return ServerSentEventMessage(data=data, event="watermark", retry=RECONNECT_MS)


async def _stream(
    feed: LiveFeed, queue: asyncio.Queue[Watermark], heartbeat: float
) -> AsyncIterator[ServerSentEventMessage]:
    try:
        sent = await feed.current()
        yield _message(sent)
        while True:
            try:
                watermark = await asyncio.wait_for(queue.get(), timeout=heartbeat)
            except TimeoutError:
                yield ServerSentEventMessage(data=None, comment="heartbeat")
                continue
            if watermark.position != sent.position:  # the poller's first read may repeat it
                sent = watermark
                yield _message(watermark)
    finally:
        feed.unsubscribe(queue)


def live_feed(state: State) -> LiveFeed:
    """The process's feed, made on first use from the services' watermark reader."""
    feed = state.get("live_feed")
    if feed is None:
        services: Services = state.services
        feed = LiveFeed(
            lambda: answer("live.watermark", services),
            max_clients=services.settings.live_max_clients,
        )
        state.live_feed = feed
    return feed


async def close_live_feed(app: Any) -> None:
    feed = app.state.get("live_feed")
    if feed is not None:
        await feed.close()


@get(
    "/api/live/",
    summary="Server-sent events: a `watermark` event each time replicated figures move",
)
async def live(state: State) -> ServerSentEvent:
    feed = live_feed(state)
    queue = feed.subscribe()
    heartbeat = state.get("live_heartbeat_seconds", HEARTBEAT_SECONDS)
    return ServerSentEvent(
        _stream(feed, queue, heartbeat),
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


live_handlers = [live]

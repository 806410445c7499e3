"""Cached aggregate answers served before the framework routes the request.

An aggregate request whose answer this process holds in memory needs none of the framework's
per-request work (routing, guards, parameter parsing, building the response): only who asks,
the current replication watermark and one dictionary lookup. On the framework's path a cached
answer costs more than twice a trivial request; here, less than one.

The first request for a URL goes the framework's whole way (``api.aggregate_routes``): it is
validated and answered, and its handler records here which cached question that exact path and
query string ask, which role may ask it, and until when the URL means that question (the window
of "the last 30 days" moves at midnight). A later request for the same URL is answered here
only when all of it is known without I/O or doubt: credentials this process remembers, with the
role; the answer to the question at the current watermark, in this process's memory; and the
request limit not reached. Anything else goes the framework's way unchanged, so every miss,
refusal and error is still the API's own answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from litestar.types import ASGIApp, Receive, Scope, Send
from litestar.utils import normalize_path

from api.auth import remembered_principal
from api.cache import AnswerCache, answer_key
from api.ratelimit import RateLimiter
from msd.runtime import Services

__all__ = ["FastLane"]

# URLs and Host headers remembered per process; past these the memory starts over (the next
# requests of each take the framework's way once).
MAX_ROUTES = 10_000
MAX_HOSTS = 64


@dataclass(frozen=True)
class _Route:
    question: str
    role: str
    window_header: bytes
    expires_at: float


class FastLane:
    """Answers the aggregate URLs it was told about from memory, and hands on the rest."""

    def __init__(self, services: Services, cache: AnswerCache, limiter: RateLimiter) -> None:
        self._services = services
        self._cache = cache
        self._limiter = limiter
        self._routes: dict[tuple[str, bytes], _Route] = {}
        # Host headers the framework accepted (it refuses malformed ones), None for no header.
        self._hosts: set[bytes | None] = set()

    def remember(
        self,
        path: str,
        query_string: bytes,
        host: str | None,
        *,
        question: str,
        role: str,
        window_header: str,
        expires_at: float,
    ) -> None:
        """Record that GET ``path``?``query_string`` asks ``question`` until ``expires_at``.

        ``path`` as the framework routed it (normalised); ``host`` the request's Host header.
        """
        if len(self._routes) >= MAX_ROUTES:
            self._routes.clear()
        if len(self._hosts) >= MAX_HOSTS:
            self._hosts.clear()
        self._routes[(path, query_string)] = _Route(
            question, role, window_header.encode(), expires_at
        )
        self._hosts.add(host.encode("latin-1") if host is not None else None)

    def in_front_of(self, app: ASGIApp) -> ASGIApp:
        """``app`` behind this lane: what the lane cannot answer reaches it untouched."""

        async def lane(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path"):
                key = (normalize_path(scope["path"]), scope["query_string"])
                route = self._routes.get(key)  # type: ignore[arg-type]
                if route is not None and await self._answer(key, route, scope, send):
                    return
            await app(scope, receive, send)

        return lane

    async def _answer(
        self, key: tuple[str, bytes], route: _Route, scope: Scope, send: Send
    ) -> bool:
        if route.expires_at <= time.time():
            self._routes.pop(key, None)
            return False
        host, authorization, cookies = _request_headers(scope["headers"])
        if host not in self._hosts:
            return False
        principal = remembered_principal(
            authorization, cookies, self._services.settings.anonymous_role
        )
        if principal is None or not principal.may(route.role):
            return False

        try:
            watermark = (await self._services.watermark_on_loop()).header()
        except Exception:  # the framework's way meets the failure again and answers it
            return False
        cached = self._cache.in_memory(answer_key(route.question, watermark))
        if cached is None:
            return False

        # Counted only once an answer is at hand: a request handed on before is counted by the
        # guard alone. One over the limit goes on to the guard for its 429 (counted again there,
        # past the limit, where the count no longer changes the answer).
        if self._limiter.spend(principal.limit_key) is not None:
            return False
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(cached.body)).encode()),
                    (b"x-window", route.window_header),
                    (b"x-replication-watermark", watermark.encode()),
                    (b"x-cache", b"hit"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": cached.body})
        self._cache.metrics.count("fast_lane_answers")
        return True


def _request_headers(
    headers: list[tuple[bytes, bytes]],
) -> tuple[bytes | None, str | None, str | None]:
    """A request's Host header, and its Authorization and Cookie headers as text."""
    host = authorization = None
    cookies: list[str] = []
    for name, value in headers:
        if name == b"host":
            host = value
        elif name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"cookie":
            cookies.append(value.decode("latin-1"))
    return host, authorization, "; ".join(cookies) or None

"""Who is asking, and may they: the guard every route passes before its handler runs.

A request proves who it is with a bearer token (``Authorization: Bearer msd_...``) or the
dashboard's session cookie. Reading needs the ``viewer`` role, changing anything ``analyst``,
and routes that manage users and tokens say ``admin`` in their ``opt``. Routes marked
``public`` (health, metrics, the sign-in page and static assets) need nothing.

A session's state-changing request must also carry the session's CSRF token in the
``X-CSRF-Token`` header: the cookie goes with any request the browser sends, the header only
with those the dashboard's own script sends.

Lookups are remembered per process for ``_REMEMBER_SECONDS``: a revoked token or ended session
stops working in every process within that time, and at once in the process that revoked it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from datetime import timedelta
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from api.errors import ApiError
from api.ratelimit import RateLimiter
from msd.runtime import Services
from workflow.accounts import Principal, principal_for_session, principal_for_token

__all__ = [
    "SESSION_COOKIE",
    "CSRF_COOKIE",
    "authorize",
    "forget_credentials",
    "principal_of",
    "remembered_principal",
]

logger = logging.getLogger(__name__)

SESSION_COOKIE = "msd_session"
CSRF_COOKIE = "msd_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The OpenAPI schema and its viewers describe the API; they hold no data.
PUBLIC_PREFIXES = ("/schema",)

_REMEMBER_SECONDS = 2.0
_REMEMBER_MAX = 10_000
_remembered: dict[tuple[str, str], tuple[float, Principal | None]] = {}


def required_role(handler: BaseRouteHandler, method: str) -> str | None:
    """The role a route needs for ``method``, or None for a public route."""
    if handler.opt.get("public"):
        return None
    declared = handler.opt.get("role")
    if declared:
        return str(declared)
    return "viewer" if method in SAFE_METHODS else "analyst"


async def authorize(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Litestar guard: 401 without valid credentials, 403 without the role, 429 over the limit."""
    method = connection.scope.get("method", "GET")
    role = required_role(handler, method)
    if role is None or connection.scope["path"].startswith(PUBLIC_PREFIXES):
        return
    services: Services = connection.app.state.services
    principal = await _identify(connection, services)
    if principal is None:
        raise ApiError(
            401,
            "this endpoint needs credentials: send 'Authorization: Bearer <token>' (make one "
            "with `msd token create`) or sign in at /signin",
            errors=[{"header": "Authorization", "message": "missing"}],
            headers={"WWW-Authenticate": 'Bearer realm="msd"'},
        )
    if not principal.may(role):
        raise ApiError(
            403,
            f"{principal.name} has the {principal.role} role; {method} {connection.url.path} "
            f"needs {role}",
            title="Forbidden",
            errors=[{"role": role, "message": f"needs the {role} role"}],
        )
    if method not in SAFE_METHODS:
        _check_unsafe_request(connection, principal)
    limiter: RateLimiter = connection.app.state.rate_limiter
    retry_after = limiter.spend(principal.limit_key)
    if retry_after is not None:
        raise ApiError(
            429,
            f"request limit of {limiter.describe()} reached for {principal.name}; "
            f"retry in {retry_after} s",
            title="Too many requests",
            errors=[{"limit": limiter.describe(), "message": "over the request limit"}],
            headers={"Retry-After": str(retry_after)},
        )
    connection.state.principal = principal


def principal_of(connection: ASGIConnection) -> Principal:
    """The principal the guard admitted this request for."""
    return connection.state.principal


def audit_source(principal: Principal, channel: str = "api") -> str:
    """How a change arrived, for the audit trail: 'api token:12', 'api session', …"""
    return f"{channel} {principal.credential}"


def _check_unsafe_request(connection: ASGIConnection, principal: Principal) -> None:
    if principal.credential == "session":
        sent = connection.headers.get(CSRF_HEADER, "")
        if not (principal.csrf_token and hmac.compare_digest(sent, principal.csrf_token)):
            raise ApiError(
                403,
                "a signed-in change needs the X-CSRF-Token header with the value of the "
                f"{CSRF_COOKIE} cookie",
                title="Forbidden",
                errors=[{"header": "X-CSRF-Token", "message": "missing or wrong"}],
            )
    elif principal.credential == "anonymous":
        # No credential means no CSRF token either; a JSON body at least forces a cross-site
        # page through a CORS preflight, which this API never grants.
        media_type = connection.headers.get("content-type", "").split(";")[0].strip()
        if media_type != "application/json":
            raise ApiError(
                415,
                "a change without credentials must send its body as application/json",
                title="Unsupported media type",
            )


async def _identify(connection: ASGIConnection, services: Services) -> Principal | None:
    settings = services.settings
    lifetime = timedelta(hours=settings.session_hours)
    authorization = connection.headers.get("authorization")
    if authorization:
        scheme, _, secret = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise ApiError(
                401,
                "the Authorization header must be 'Bearer <token>'",
                errors=[{"header": "Authorization", "message": "not 'Bearer <token>'"}],
                headers={"WWW-Authenticate": 'Bearer realm="msd"'},
            )
        principal = await _remember("token", secret.strip(), principal_for_token, services.db)
        if principal is None:
            raise ApiError(
                401,
                "the bearer token is unknown, revoked or expired; ask an admin for a new one "
                "(`msd token create`)",
                errors=[{"header": "Authorization", "message": "unknown, revoked or expired"}],
                headers={"WWW-Authenticate": 'Bearer realm="msd", error="invalid_token"'},
            )
        return principal
    session_id = connection.cookies.get(SESSION_COOKIE)
    if session_id:
        principal = await _remember(
            "session",
            session_id,
            lambda db, secret: principal_for_session(db, secret, lifetime),
            services.db,
        )
        if principal is not None:
            return principal
    if settings.anonymous_role:
        return Principal("anonymous", settings.anonymous_role, "anonymous")
    return None


def remembered_principal(
    authorization: str | None, cookies: str | None, anonymous_role: str | None
) -> Principal | None:
    """Who sends these credentials when this process knows it without a lookup, else None.

    None also for credentials that are malformed, unknown or refused: only the guard answers
    those, and it says why. ``cookies`` is the raw Cookie header.
    """
    if authorization:
        scheme, _, secret = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            return None
        return _recalled("token", secret.strip())
    session_id = _cookie(cookies, SESSION_COOKIE) if cookies else None
    if session_id:
        return _recalled("session", session_id)
    if anonymous_role:
        return Principal("anonymous", anonymous_role, "anonymous")
    return None


def _recalled(kind: str, secret: str) -> Principal | None:
    remembered = _remembered.get((kind, hashlib.sha256(secret.encode()).hexdigest()))
    if remembered is None or remembered[0] <= time.monotonic():
        return None
    return remembered[1]


def _cookie(header: str, name: str) -> str | None:
    for pair in header.split(";"):
        key, _, value = pair.strip().partition("=")
        if key == name:
            # A quoted value needs the unquoting the framework's parser does: leave it to it.
            return None if value.startswith('"') else value
    return None


async def _remember(kind: str, secret: str, look_up: Any, db: Any) -> Principal | None:
    key = (kind, hashlib.sha256(secret.encode()).hexdigest())
    now = time.monotonic()
    remembered = _remembered.get(key)
    if remembered is not None and remembered[0] > now:
        return remembered[1]
    principal = await asyncio.to_thread(look_up, db, secret)
    if len(_remembered) >= _REMEMBER_MAX:
        _remembered.clear()
    _remembered[key] = (now + _REMEMBER_SECONDS, principal)
    return principal


def forget_credentials() -> None:
    """Drop what this process remembers, after a revocation or a sign-out made here."""
    _remembered.clear()

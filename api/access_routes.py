"""Signing in and out of the dashboard, and the admin's users and tokens.

``POST /api/session/`` checks a username and password and sets two cookies: the session
(HttpOnly, so no script can read it) and its CSRF token (readable, so the dashboard's script
can echo it in ``X-CSRF-Token``). Both are ``SameSite=Strict``, and ``Secure`` when the request
came over TLS (directly or through a proxy that says so in ``X-Forwarded-Proto``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.datastructures import Cookie, State
from litestar.params import FromPath, JSONBody

from api.auth import CSRF_COOKIE, SESSION_COOKIE, forget_credentials, principal_of
from api.errors import ApiError
from msd.runtime import Services
from workflow import accounts
from workflow.accounts import AccountError

__all__ = ["access_handlers"]

logger = logging.getLogger(__name__)

# Wrong passwords allowed per username and client address in a window, before 429.
SIGNIN_FAILURES_ALLOWED = 10
SIGNIN_FAILURE_WINDOW = 300.0
_failures: dict[tuple[str, str], list[float]] = {}


class SignIn(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=accounts.MAX_PASSWORD_LENGTH)]


class Me(msgspec.Struct):
    name: str
    role: str
    credential: str
    csrf_token: str | None = None


class UserIn(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=accounts.MAX_PASSWORD_LENGTH)]
    role: str


class UserOut(msgspec.Struct):
    user_id: int
    username: str
    role: str
    demo: bool
    created_at: datetime
    disabled_at: datetime | None


class TokenIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    role: str
    username: str | None = None
    expires_in_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None


class TokenOut(msgspec.Struct):
    token_id: int
    token_prefix: str
    name: str
    role: str
    username: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class TokenCreated(msgspec.Struct):
    token_id: int
    token: str
    note: str = "shown once: store it now, only its digest is kept"


def _services(state: State) -> Services:
    return state.services


@post(
    "/api/session/",
    opt={"public": True},
    status_code=200,
    summary="Sign in: sets the session cookie",
)
async def sign_in(request: Request, state: State, data: JSONBody[SignIn]) -> Response[Me]:
    services = _services(state)
    client = request.client.host if request.client else "unknown"
    _refuse_after_failures(data.username, client)
    lifetime = timedelta(hours=services.settings.session_hours)
    signed_in = await asyncio.to_thread(
        accounts.sign_in, services.db, data.username, data.password, lifetime
    )
    if signed_in is None:
        _failures.setdefault((data.username, client), []).append(time.monotonic())
        logger.warning("failed sign-in for %r from %s", data.username, client)
        raise ApiError(401, "wrong username or password", field="password")
    session_id, principal = signed_in
    secure = _over_tls(request)
    max_age = int(lifetime.total_seconds())
    cookies = [
        Cookie(
            key=SESSION_COOKIE,
            value=session_id,
            max_age=max_age,
            httponly=True,
            samesite="strict",
            secure=secure,
            path="/",
        ),
        Cookie(
            key=CSRF_COOKIE,
            value=principal.csrf_token or "",
            max_age=max_age,
            httponly=False,
            samesite="strict",
            secure=secure,
            path="/",
        ),
    ]
    me = Me(principal.name, principal.role, principal.credential, principal.csrf_token)
    return Response(me, cookies=cookies)


def _over_tls(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def _refuse_after_failures(username: str, client: str) -> None:
    now = time.monotonic()
    recent = [t for t in _failures.get((username, client), []) if now - t < SIGNIN_FAILURE_WINDOW]
    _failures[(username, client)] = recent
    if len(recent) >= SIGNIN_FAILURES_ALLOWED:
        retry = int(SIGNIN_FAILURE_WINDOW - (now - recent[0])) + 1
        raise ApiError(
            429,
            f"{SIGNIN_FAILURES_ALLOWED} wrong passwords for {username!r}; try again in {retry} s",
            title="Too many requests",
            headers={"Retry-After": str(retry)},
        )


@get("/api/session/", summary="Who the request is signed in as")
async def whoami(request: Request) -> Me:
    principal = principal_of(request)
    return Me(principal.name, principal.role, principal.credential, principal.csrf_token)


@delete("/api/session/", opt={"role": "viewer"}, status_code=200, summary="Sign out")
async def sign_out(request: Request, state: State) -> Response[dict[str, str]]:
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        await asyncio.to_thread(accounts.sign_out, _services(state).db, session_id)
        forget_credentials()
    expired = [
        Cookie(key=name, value="", max_age=0, path="/") for name in (SESSION_COOKIE, CSRF_COOKIE)
    ]
    return Response({"signed_out": principal_of(request).name}, cookies=expired)


@get("/api/users/", opt={"role": "admin"}, sync_to_thread=True, summary="Users (admin)")
def list_users(state: State) -> list[UserOut]:
    return [UserOut(**row) for row in accounts.list_users(_services(state).db)]


@post("/api/users/", opt={"role": "admin"}, sync_to_thread=True, summary="Add a user (admin)")
def add_user(state: State, data: JSONBody[UserIn]) -> Response[UserOut]:
    db = _services(state).db
    try:
        user_id = accounts.add_user(db, data.username, data.password, data.role)
    except AccountError as error:
        raise ApiError(400, str(error), field=_field_of(str(error))) from None
    row = next(u for u in accounts.list_users(db) if u["user_id"] == user_id)
    return Response(UserOut(**row), status_code=201)


@get("/api/tokens/", opt={"role": "admin"}, sync_to_thread=True, summary="API tokens (admin)")
def list_tokens(state: State) -> list[TokenOut]:
    return [TokenOut(**row) for row in accounts.list_tokens(_services(state).db)]


@post("/api/tokens/", opt={"role": "admin"}, sync_to_thread=True, summary="New token (admin)")
def create_token(state: State, data: JSONBody[TokenIn]) -> Response[TokenCreated]:
    expires_at = None
    if data.expires_in_days is not None:
        expires_at = datetime.now(timezone.utc) + timedelta(days=data.expires_in_days)
    try:
        token_id, secret = accounts.create_token(
            _services(state).db,
            data.name,
            data.role,
            username=data.username,
            expires_at=expires_at,
        )
    except AccountError as error:
        raise ApiError(400, str(error), field=_field_of(str(error))) from None
    return Response(TokenCreated(token_id, secret), status_code=201)


@delete(
    "/api/tokens/{token_id:int}/",
    opt={"role": "admin"},
    sync_to_thread=True,
    status_code=200,
    summary="Revoke a token (admin)",
)
def revoke_token(state: State, token_id: FromPath[int]) -> dict[str, Any]:
    try:
        accounts.revoke_token(_services(state).db, token_id)
    except AccountError as error:
        raise ApiError(404, str(error), parameter="token_id") from None
    forget_credentials()
    return {"revoked": token_id}


def _field_of(message: str) -> str:
    for name in ("password", "username", "role", "name", "expires"):
        if name in message:
            return name
    return "body"


access_handlers = [
    sign_in,
    whoami,
    sign_out,
    list_users,
    add_user,
    list_tokens,
    create_token,
    revoke_token,
]

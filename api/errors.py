"""One error format for the whole API: ``application/problem+json`` built in one place.

Every error names what was wrong and, where there is one, the offending parameter or field.
Database errors never reach the client with SQL text or server detail: the log keeps those.

A store that is down is a 503 with ``Retry-After``, mapped here and nowhere else: ClickHouse's
``StoreUnavailableError`` (refused, timed out, closed) and PostgreSQL's ``OperationalError``
(connection lost mid-request, no connection within MSD_DATABASE_TIMEOUT_SECONDS, server
shutting down). Whatever route meets one, the client is told to retry, never given a 500.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
import psycopg
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from olap.store import StoreUnavailableError

__all__ = [
    "ApiError",
    "Problem",
    "document_problems",
    "exception_handlers",
    "nul_problem",
    "problem_response",
]

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# Seconds a client is asked to wait before retrying while a store is down.
RETRY_AFTER_SECONDS = 5


class Problem(msgspec.Struct, omit_defaults=True):
    """The error body: RFC 9457 fields plus the list of what was wrong where."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, str]] = []
    allowed: list[str] = []


NUL_MESSAGE = "contains a NUL byte (\\u0000), which stored text cannot hold; remove it"


def nul_problem(value: object) -> str | None:
    """The complaint about a NUL byte in ``value``, or None when it has none."""
    return NUL_MESSAGE if isinstance(value, str) and "\x00" in value else None


class ApiError(Exception):
    """An error the API answers with a problem body; raise it from handlers."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        parameter: str | None = None,
        field: str | None = None,
        errors: list[dict[str, str]] | None = None,
        allowed: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or _TITLES.get(status, "Error")
        self.errors = list(errors or [])
        if parameter is not None:
            self.errors.insert(0, {"parameter": parameter, "message": detail})
        if field is not None:
            self.errors.insert(0, {"field": field, "message": detail})
        self.allowed = list(allowed or [])
        self.headers = headers or {}


_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    429: "Too many requests",
    503: "Service unavailable",
    500: "Internal server error",
}


def problem_response(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    errors: list[dict[str, str]] | None = None,
    allowed: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    problem = Problem(
        type="about:blank",
        title=title or _TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        errors=errors or [],
        allowed=allowed or [],
    )
    return Response(
        content=msgspec.json.encode(problem),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _api_error(_: Request, error: ApiError) -> Response[bytes]:
    return problem_response(
        error.status,
        error.detail,
        title=error.title,
        errors=error.errors,
        allowed=error.allowed,
        headers=error.headers,
    )


def _validation_error(request: Request, error: ValidationException) -> Response[bytes]:
    errors = [_describe(item) for item in (error.extra or []) if isinstance(item, dict)]
    known = _body_fields(request)
    for problem in errors:
        if known and problem.get("message", "").endswith("not a field of this request body"):
            problem["message"] += f"; its fields are {', '.join(known)}"
    detail = "; ".join(e["message"] for e in errors) or str(error.detail)
    return problem_response(400, detail, errors=errors)


def _body_fields(request: Request) -> tuple[str, ...]:
    """The fields of the handler's body type, when it declares one (a msgspec Struct)."""
    try:
        body = request.route_handler.parsed_fn_signature.parameters["data"]
    except (AttributeError, KeyError):
        return ()
    return tuple(getattr(body.annotation, "__struct_fields__", ()))


# msgspec's words for a body field that should not be there or is missing.
_FIELD_PROBLEM = re.compile(r"Object (contains unknown|missing required) field `([^`]+)`")
# What a decoder says of a body that is not JSON at all.
_NOT_JSON_WORDS = ("json", "body", "truncated", "malformed")


def _describe(item: dict[str, Any]) -> dict[str, str]:
    key = item.get("key")
    source = item.get("source")
    message = str(item.get("message", "invalid value"))
    where = "field" if source in (None, "body") else "parameter"
    if key == "data" and "at `$." in message:
        # Litestar names the whole body "data"; the field at fault is at the end of the message.
        key = message.rsplit("at `$.", 1)[1].rstrip("`")
        message = message.split(" - at `$", 1)[0]
    elif key == "data" and message == "'data'":
        key, message = "body", "the request body is empty: send a JSON object"
    elif key == "data" and (named := _FIELD_PROBLEM.match(message)):
        problem, key = named.groups()
        unknown = problem.startswith("contains")
        message = "not a field of this request body" if unknown else "required, but missing"
    elif key == "data":
        key = "body"
    described = {"message": f"{key}: {message}" if key else message}
    if key:
        described[where] = str(key)
    return described


def _http_error(request: Request, error: HTTPException) -> Response[bytes]:
    status = error.status_code
    if status >= 500:
        return _unexpected(request, error)
    detail = str(error.detail)
    errors = [{"message": detail}]
    if isinstance(error, NotFoundException) and detail in ("Not Found", ""):
        detail = f"no such endpoint or resource: {request.url.path}"
        errors = [{"path": request.url.path, "message": detail}]
    elif status == 413:
        limit = request.app.request_max_body_size or 0
        detail = f"the request body is over the limit of {limit:,} bytes; send less per request"
        errors = [{"field": "body", "message": detail}]
    elif status == 400 and any(word in detail.lower() for word in _NOT_JSON_WORDS):
        if "not valid JSON" not in detail:
            detail = f"the request body is not valid JSON: {detail}"
        errors = [{"field": "body", "message": detail}]
    return problem_response(status, detail, errors=errors, headers=dict(error.headers or {}))


def _data_error(request: Request, error: Exception) -> Response[bytes]:
    """A value PostgreSQL cannot hold that no check caught first: still the client's error."""
    if "NUL" in str(error):
        return problem_response(400, f"a text value {NUL_MESSAGE}")
    return _unexpected(request, error)


def _unexpected(request: Request, error: Exception) -> Response[bytes]:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return problem_response(
        HTTP_500_INTERNAL_SERVER_ERROR,
        "the server failed to answer this request; the error is in its log",
    )


# Every operation may answer these, always as a Problem; the OpenAPI schema says so for each.
_PROBLEM_STATUSES = {
    400: "A parameter or field is wrong; errors[] names it",
    401: "No valid credentials",
    403: "The credentials' role may not do this, or a session change lacks its CSRF token",
    404: "No such resource",
    409: "The change conflicts with the resource's state",
    413: "The body or a list in it is over its limit",
    415: "The body is not JSON",
    429: "Over the request limit; see Retry-After",
    503: "A store is unavailable; see Retry-After",
}


def document_problems(handlers: list[Any]) -> list[Any]:
    """Add the Problem answers to each handler's OpenAPI responses (its own entries win)."""
    from litestar.openapi.datastructures import ResponseSpec

    for handler in handlers:
        if handler.opt.get("public") and not handler.include_in_schema:
            continue
        documented = {
            status: ResponseSpec(Problem, description=text, media_type=PROBLEM_JSON)
            for status, text in _PROBLEM_STATUSES.items()
        }
        handler.responses = {**documented, **(handler.responses or {})}
    return handlers


def _clickhouse_down(request: Request, error: StoreUnavailableError) -> Response[bytes]:
    logger.warning("%s %s: ClickHouse unavailable: %s", request.method, request.url.path, error)
    return _unavailable(
        "ClickHouse (the aggregate store) is unavailable and no earlier answer to this question "
        "is cached; the workflow endpoints still work",
        "clickhouse",
    )


def _postgres_down(request: Request, error: psycopg.OperationalError) -> Response[bytes]:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    logger.warning("%s %s: PostgreSQL unavailable: %s", request.method, request.url.path, reason)
    return _unavailable(
        "database unavailable (PostgreSQL did not answer), retry",
        "postgresql",
    )


def _unavailable(detail: str, store: str) -> Response[bytes]:
    return problem_response(
        503,
        f"{detail}; retry in {RETRY_AFTER_SECONDS} s",
        errors=[{"store": store, "message": f"{store} unavailable"}],
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


exception_handlers = {
    ApiError: _api_error,
    psycopg.DataError: _data_error,
    StoreUnavailableError: _clickhouse_down,
    psycopg.OperationalError: _postgres_down,
    ValidationException: _validation_error,
    HTTPException: _http_error,
    Exception: _unexpected,
}

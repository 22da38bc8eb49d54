"""Domain errors. Handlers raise these; one middleware maps them to RFC 9457
problem+json. None of them is an HTTP exception."""

from __future__ import annotations

import json
from collections.abc import Callable

from aiohttp import web

PROBLEM_TYPE_BASE = "https://notebooks.invalid/problems/"
# How much of a client's key or parameter name a problem echoes.
ECHO_MAX_CHARS = 64


def echoed(name: str) -> str:
    """A name the client sent (a body key, a query parameter), safe to put in
    a problem's `detail` and `field`: at most ECHO_MAX_CHARS characters, then
    an ellipsis, and every character that does not print (controls, lone
    surrogates, invisibles, separators) as its \\u escape, so the answer is
    short, valid text, and shows what was sent."""
    shown = "".join(c if c.isprintable() else _escape(c) for c in name[:ECHO_MAX_CHARS])
    return shown + ("\u2026" if len(name) > ECHO_MAX_CHARS else "")


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


class ApiError(Exception):
    status = 500
    code = "internal_error"
    title = "Internal error"

    def __init__(self, detail: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.field = field


class BadRequest(ApiError):
    status = 400
    code = "validation_failed"
    title = "Invalid request"


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"
    title = "Authentication required"


def invalid_token() -> Unauthorized:
    """The 401 for a token that does not (or no longer) work: unknown,
    revoked, expired, or its member disabled, found at any point of a request."""
    return Unauthorized(
        "The API token is unknown, revoked or expired, or its member is disabled.",
        code="invalid_token",
    )


class Forbidden(ApiError):
    status = 403
    code = "forbidden"
    title = "Not allowed"


class NotFound(ApiError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(ApiError):
    status = 409
    code = "conflict"
    title = "Conflict"


def team_name_taken() -> Conflict:
    return Conflict("A team with that name exists.", code="team_name_taken", field="name")


def config_name_taken() -> Conflict:
    return Conflict(
        "A workload config with that name exists.", code="config_name_taken", field="name"
    )


def member_exists() -> Conflict:
    return Conflict("A member with that email exists.", code="member_exists", field="email")


# The same answers when a concurrent request took the name between a check
# and the write, by the constraint PostgreSQL names (sql/migrations).
UNIQUE_CONFLICTS: dict[str, Callable[[], Conflict]] = {
    "teams_org_name_ci": team_name_taken,
    "workload_configs_org_name_ci": config_name_taken,
    "members_org_email_ci": member_exists,
}


class PreconditionFailed(ApiError):
    status = 412
    code = "precondition_failed"
    title = "Precondition failed"


class ClientGone(ApiError):
    """The client hung up before its body was read whole: no fault of ours,
    and no answer reaches it. 499 is nginx's "client closed request", kept
    for the request's log line and metrics."""

    status = 499
    code = "client_closed_request"
    title = "Client closed request"


class Unavailable(ApiError):
    """A part of ours is busy or restarting: nothing the client did, worth
    retrying (with Retry-After)."""

    status = 503
    code = "service_unavailable"
    title = "Service unavailable"

    def __init__(self, detail: str, *, code: str, retry_after: str = "5") -> None:
        super().__init__(detail, code=code)
        self.retry_after = retry_after


class UnsupportedMediaType(ApiError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


def problem_response(
    status: int, code: str, title: str, detail: str, field: str | None = None
) -> web.Response:
    body: dict[str, object] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if field is not None:
        body["field"] = field
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/problem+json"
    )


def to_response(err: ApiError) -> web.Response:
    response = problem_response(err.status, err.code, err.title, err.detail, err.field)
    if isinstance(err, Unauthorized):
        # A 401 must name the scheme to use (RFC 9110 15.5.2), and why a token failed (RFC 6750).
        why = ', error="invalid_token"' if err.code == "invalid_token" else ""
        response.headers["WWW-Authenticate"] = f'Bearer realm="notebooks"{why}'
    if isinstance(err, Unavailable):
        response.headers["Retry-After"] = err.retry_after
    return response

"""The per-request context handlers receive: who is calling, on which
connection (inside the request's transaction), at what time."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from api.errors import Forbidden, Unauthorized, invalid_token
from api.markers import Markers
from api.validation import receive_body
from common.clock import Clock
from common.settings import Settings
from common.tokens import hash_token
from sql import query

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", AsyncConnectionPool)
CLOCK = web.AppKey("clock", Clock)  # type: ignore[type-abstract]
MARKERS = web.AppKey("markers", Markers)
MEMBER_ID = web.RequestKey("member_id", str)

# last_used_at is written at most once per this interval per token.
TOKEN_TOUCH_INTERVAL = timedelta(seconds=60)


@dataclass(frozen=True)
class Principal:
    member_id: str
    organization_id: str
    organization_admin: bool
    token_id: str
    token_expires_at: datetime | None = None  # the calling token's end, if it has one
    read_only: bool = False  # the calling token reads only (migration 0023)


@dataclass
class Ctx:
    request: web.Request
    conn: psycopg.AsyncConnection[Any]
    me: Principal
    now: datetime
    settings: Settings
    markers: Markers
    # What a handler adds to its audit entry (api/audit.py): a deleted
    # team's name, how many notebooks a hand-over moved.
    audit_detail: dict[str, Any] = field(default_factory=dict)

    async def one(self, name: str, params: dict[str, Any]) -> dict[str, Any] | None:
        cur = await self.conn.execute(query(name), params)  # type: ignore[arg-type]
        return await cur.fetchone()  # type: ignore[return-value]

    async def all(self, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        cur = await self.conn.execute(query(name), params)  # type: ignore[arg-type]
        return await cur.fetchall()  # type: ignore[return-value]

    async def run(self, name: str, params: dict[str, Any]) -> int:
        cur = await self.conn.execute(query(name), params)  # type: ignore[arg-type]
        return cur.rowcount

    def mine(self, **params: Any) -> dict[str, Any]:
        """Params every query of the caller's org needs, plus `params`."""
        return {
            "org_id": self.me.organization_id,
            "member_id": self.me.member_id,
            "now": self.now,
            **params,
        }


Handler = Callable[[Ctx], Awaitable[web.StreamResponse]]


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    # Printable ASCII only: our tokens are, and a header's other bytes reach
    # here as surrogates that no hash would take.
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Send an API token as 'Authorization: Bearer <token>'.")
    if not (token.isascii() and token.isprintable()) or " " in token or len(token) > 256:
        raise invalid_token()  # sent, and no token of ours looks like it
    return token


# A write authenticates inside its transaction and key-share-locks the token
# and member rows until it commits: a revocation or a disabling (which lock
# them `for update`) waits for the writes already made with them, and none
# commits after it. Reads take no lock.
_WRITE_LOCK = " for key share of t, m"


@dataclass(frozen=True)
class _Authenticated:
    me: Principal
    stale_use: bool  # last_used_at is older than TOKEN_TOUCH_INTERVAL


async def authenticate(
    conn: psycopg.AsyncConnection[Any], token: str, now: datetime, *, lock: bool = False
) -> _Authenticated:
    cur = await conn.execute(
        query("api_authenticate") + (_WRITE_LOCK if lock else ""),  # type: ignore[arg-type]
        {"secret_hash": hash_token(token), "now": now},
    )
    row: dict[str, Any] | None = await cur.fetchone()  # type: ignore[assignment]
    if row is None:
        raise invalid_token()
    last = row["last_used_at"]
    me = Principal(
        row["member_id"],
        row["organization_id"],
        row["organization_admin"],
        row["token_id"],
        row["expires_at"],
        row["read_only"],
    )
    return _Authenticated(me, last is None or now - last >= TOKEN_TOUCH_INTERVAL)


def may_write(me: Principal) -> None:
    """403 for a read-only token: every route but GET and HEAD changes
    something (`open` makes an edit session; `ping` moves a status); the
    caller lets one revoke itself (`ends_itself`)."""
    if me.read_only:
        raise Forbidden(
            "This token is read-only: it may read, not change, start or open anything."
            " Use a token made without readOnly for that.",
            code="read_only_token",
        )


def may_end_itself(handler: Handler) -> Handler:
    """Mark the handler that revokes a token (DELETE /members/{member}/tokens/
    {token}): a read-only token may call it on itself (`ends_itself`)."""
    handler.may_end_itself = True  # type: ignore[attr-defined]
    return handler


def ends_itself(handler: Handler, request: web.Request, me: Principal) -> bool:
    """The request revokes the calling token itself (RFC 7009's revocation
    of one's own token): allowed to a read-only token, which only loses
    what it could read (a script done with its token, or finding it leaked)."""
    info = request.match_info
    return (
        getattr(handler, "may_end_itself", False)
        and info.get("token") == me.token_id
        and info.get("member") == me.member_id
    )


def revokes_access(handler: Handler) -> Handler:
    """Mark a handler that disables a member or revokes a token. It locks the
    rows itself (`for update`, in id order) and checks its caller there, so
    its caller's rows are not key-share-locked as well: two such requests
    crossing (admins disabling each other, one admin disabling two members,
    a sign-out sent twice) would otherwise each hold a lock the other waits
    for."""
    handler.revokes_access = True  # type: ignore[attr-defined]
    return handler


def prepared(
    prepare: Callable[[web.Request], Awaitable[None]],
) -> Callable[[Handler], Handler]:
    """Mark a handler whose body needs slow work that needs no database (a
    notebook file to convert): `prepare(request)` runs once the caller is
    known to be someone, and before a pooled connection is taken for the
    handler's transaction, so the work holds neither a connection nor a
    lock; it leaves its results on the request."""

    def mark(handler: Handler) -> Handler:
        handler.prepare = prepare  # type: ignore[attr-defined]
        return handler

    return mark


def endpoint(
    handler: Handler,
    record: Callable[[Ctx, web.StreamResponse], Awaitable[None]] | None = None,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Wrap a handler: authenticate, then run it in one transaction (GET and
    HEAD run without an explicit one: each page is one statement). `record`:
    what a write's success writes beside it, in its transaction (api/audit.py)."""
    lock = not getattr(handler, "revokes_access", False)

    async def wrapped(request: web.Request) -> web.StreamResponse:
        app = request.app
        token = bearer_token(request)
        if request.method not in ("GET", "HEAD"):
            # Before taking a pooled connection: a slow upload must not hold one.
            await receive_body(request)
        prepare = getattr(handler, "prepare", None)
        if prepare is not None:
            # Only for a caller who is someone: the work is the server's time.
            async with app[POOL].connection() as conn:
                may_write((await authenticate(conn, token, app[CLOCK].now())).me)
            await prepare(request)
        now = app[CLOCK].now()
        async with app[POOL].connection() as conn:
            auth: _Authenticated | None = None

            def context(me: Principal) -> Ctx:
                request[MEMBER_ID] = me.member_id
                return Ctx(request, conn, me, now, app[SETTINGS], app[MARKERS])

            try:
                if request.method in ("GET", "HEAD"):
                    auth = await authenticate(conn, token, now)
                    return await handler(context(auth.me))
                async with conn.transaction():
                    auth = await authenticate(conn, token, now, lock=lock)
                    if not ends_itself(handler, request, auth.me):
                        may_write(auth.me)
                    ctx = context(auth.me)
                    response = await handler(ctx)
                    if record is not None and response.status < 300:
                        await record(ctx, response)
                    return response
            finally:
                # After the transaction, in autocommit: inside it, the touch
                # would hold the token row until the write commits, and
                # every other request with that token would queue behind it.
                # Best effort: a lost touch must not replace the answer.
                if auth is not None and auth.stale_use and not conn.closed:
                    with contextlib.suppress(psycopg.Error):
                        await conn.execute(
                            query("api_touch_token"),  # type: ignore[arg-type]
                            {"id": auth.me.token_id, "now": now},
                        )

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped

"""`/notebooks/{id}/_open?token=…`: trade the API's one-time JWT for our cookie."""

from __future__ import annotations

from datetime import datetime

import structlog
from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from common import session_token
from common.settings import Settings
from proxy import metrics, pages
from proxy.access import AccessCache
from proxy.cookie import LIFETIME, ProxySession, cookie_name, cookie_path, seal
from proxy.live import refusal
from sql import query

log = structlog.get_logger("proxy.login")

_REFUSALS = {
    "access": ("no_access", "You do not have access to this notebook."),
    "edit": ("no_edit", "You may not edit this notebook; open it again to view it."),
    "owner": (
        "owner_editing",
        "The notebook's owner is editing it now; open it again to view it.",
    ),
    "session": (
        "stale_session",
        "This link belongs to an earlier session of the notebook; open it again.",
    ),
    "status": ("not_running", "The notebook is not running; start it and open it again."),
}


# A login link followed from another site: a page elsewhere sending the
# browser into a notebook it did not choose (login CSRF: on a shared proxy
# origin, the author's HTML there could then act in the member's other open
# notebooks). The platform's own page is same-site, as the Lax cookie needs
# anyway; a link typed or pasted arrives as `none`.
CROSS_SITE = (
    "cross_site",
    "This link was followed from another site. Open the notebook from the platform.",
)


def refuse_cross_site(fetch_site: str | None) -> None:
    """LoginRefused when `Sec-Fetch-Site` says another site sent the browser."""
    if (fetch_site or "").strip().lower() == "cross-site":
        raise LoginRefused(*CROSS_SITE)


class LoginRefused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


async def _consume_jti(
    pool: AsyncConnectionPool, claims: session_token.SessionClaims, now: datetime
) -> bool:
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            query("proxy_consume_jti"),
            {
                "jti": claims.jti,
                "notebook_id": claims.notebook_id,
                "member_id": claims.member_id,
                "expires_at": claims.expires_at,
                "now": now,
            },
        )
        return await cur.fetchone() is not None


async def check_login(
    token: str | None,
    notebook_id: str,
    *,
    settings: Settings,
    pool: AsyncConnectionPool,
    cache: AccessCache,
    now: datetime,
) -> ProxySession:
    """The session a valid login token grants, or LoginRefused saying why
    (`refuse_cross_site` is asked first, by the caller, from the headers)."""
    if not token:
        raise LoginRefused("missing", "The link has no token; open the notebook again.")
    try:
        claims = session_token.verify(token, settings.signing_keys, now=now)
    except session_token.InvalidSessionToken as exc:
        raise LoginRefused(exc.reason, exc.detail) from None
    if claims.notebook_id != notebook_id:
        raise LoginRefused("wrong_notebook", "The link was issued for another notebook.")
    if claims.mode not in ("edit", "view"):
        raise LoginRefused("malformed", "The link asks for an unknown mode.")
    # Burn the jti before anything else can fail: a token is good for one try.
    if not await _consume_jti(pool, claims, now):
        raise LoginRefused("reused", "The link was already used; open the notebook again.")
    expires = min(int((now + LIFETIME).timestamp()), 2**62)
    session = ProxySession(
        member_id=claims.member_id,
        token_id=claims.token_id,
        notebook_id=notebook_id,
        session_id=claims.session_id,
        mode=claims.mode,
        expires_at=expires,
    )
    target = await cache.lookup(claims, notebook_id, fresh=True)
    why = refusal(session, target, now, login=True)
    if why is not None:
        raise LoginRefused(*_REFUSALS[why])
    return session


def login_response(session: ProxySession, settings: Settings, now: datetime) -> web.Response:
    prefix = f"/notebooks/{session.notebook_id}/"
    resp = web.Response(status=303, headers={"Location": prefix, "Cache-Control": "no-store"})
    resp.set_cookie(
        cookie_name(settings),
        seal(session, settings.secret_key),
        path=cookie_path(settings, session.notebook_id),
        max_age=max(0, session.expires_at - int(now.timestamp())),
        httponly=True,
        secure=settings.cookie_secure,
        # Lax: sent on the top-level navigation and inside an iframe of the
        # same site (the platform), never on cross-site subrequests.
        samesite="Lax",
    )
    return resp


def refused_response(exc: LoginRefused) -> web.Response:
    metrics.LOGINS.labels(exc.reason if exc.reason in metrics.LOGIN_OUTCOMES else "malformed").inc()
    if exc.reason == "not_running":
        return pages.unavailable(exc.detail)
    return pages.unauthorized(exc.detail)

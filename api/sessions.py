"""open and ping (DESIGN §5, §6): only while the notebook is provisioned.

open mints a short-lived single-use proxy login token; ping records the
member's presence (which decides edit vs view for others) and activity."""

from __future__ import annotations

from datetime import UTC, timedelta

from aiohttp import web

from api.context import Ctx
from api.errors import Conflict
from api.notebooks import VIEW, locked, set_status
from api.responses import json_response, no_content
from api.validation import obj, path_id, read_body
from common import session_token
from common.notebook_origin import notebook_origin
from common.statuses import PROVISIONED, Status

# A member's presence and the notebook's activity are written at most once per window.
PING_COALESCE = timedelta(seconds=15)


def _require_provisioned(status: str, action: str) -> None:
    if status not in PROVISIONED:
        raise Conflict(
            f"A {status} notebook cannot be {action}; it must be running, idle or detached.",
            code="notebook_not_running",
        )


async def open_notebook(ctx: Ctx) -> web.Response:
    notebook_id = path_id(ctx.request, "id")
    row = await locked(ctx, notebook_id, VIEW)
    await read_body(ctx.request, obj({}))
    _require_provisioned(row["status"], "opened")
    if row["session_id"] is None:
        raise Conflict("The notebook has no session yet.", code="notebook_not_running")
    access = row["access"]
    if access == "owner":
        mode = "edit"
    elif access == "viewer":
        mode = "view"
    else:
        since = ctx.now - timedelta(seconds=ctx.settings.presence_window_seconds)
        present = await ctx.one("api_owner_present", {"id": notebook_id, "since": since})
        mode = "view" if present and present["present"] else "edit"
    token, claims = session_token.mint(
        ctx.settings.signing_keys,
        member_id=ctx.me.member_id,
        token_id=ctx.me.token_id,
        notebook_id=notebook_id,
        session_id=row["session_id"],
        mode=mode,
        now=ctx.now,
    )
    origin = notebook_origin(
        ctx.settings.proxy_public_url, ctx.settings.proxy_notebook_url, notebook_id
    )
    url = f"{origin}/notebooks/{notebook_id}/_open?token={token}"
    expires = claims.expires_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return json_response({"url": url, "expiresAt": expires, "mode": mode})


async def ping_notebook(ctx: Ctx) -> web.Response:
    notebook_id = path_id(ctx.request, "id")
    row = await locked(ctx, notebook_id, VIEW)
    await read_body(ctx.request, obj({}))
    _require_provisioned(row["status"], "pinged")
    stale_before = ctx.now - PING_COALESCE
    params = ctx.mine(id=notebook_id, stale_before=stale_before)
    await ctx.run("api_record_presence", params)
    await ctx.run("api_touch_notebook_activity", params)
    if row["status"] in (Status.IDLE, Status.DETACHED):
        await set_status(ctx, notebook_id, Status.RUNNING, "", reason="A member is back")
    return no_content()

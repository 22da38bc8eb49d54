"""Stop every running notebook of the organization, or of one member, at
once (org admins; docs/api.md "Stopping everything"): a bill running away,
maintenance tonight, someone leaving. JupyterHub's admin page has "Stop
All"; here each notebook stops as its owner's Stop would stop it (what was
typed last is saved first), and its history says who asked, and why."""

from __future__ import annotations

from aiohttp import web

from api.context import Ctx
from api.errors import BadRequest, Forbidden
from api.notebooks import member_label, set_status
from api.responses import json_response
from api.validation import ID_SCHEMA, obj, read_body, text_schema
from common.jobs import enqueue_reconcile
from common.statuses import STOP_REQUESTED, STOPPABLE

STOP_ALL_SCHEMA = obj(
    {
        "memberId": {**ID_SCHEMA, "description": "Only this member's notebooks."},
        "reason": {
            **text_schema(200),
            "description": "Why, for each notebook's history (e.g. a maintenance window).",
        },
    }
)


async def stop_all(ctx: Ctx) -> web.Response:
    if not ctx.me.organization_admin:
        raise Forbidden("Only organization admins stop every running notebook at once.")
    body = await read_body(ctx.request, STOP_ALL_SCHEMA)
    owner_id = body.get("memberId")
    whose = "the organization's"
    if owner_id is not None:
        owner = await ctx.one("api_org_member", ctx.mine(id=owner_id))
        if owner is None:
            raise BadRequest(
                "memberId is not a member of this organization.",
                code="unknown_reference",
                field="memberId",
            )
        whose = f"{member_label(owner['name'], owner['email'])}'s"
    # Locked in id order: two of these, or one and a member's own stop,
    # wait for each other in one order; the status is judged once locked.
    rows = await ctx.all(
        "api_lock_stoppable_notebooks",
        ctx.mine(owner_id=owner_id, stoppable=sorted(STOPPABLE)),
    )
    ids = [row["id"] for row in rows]
    why = f"Stop requested for all of {whose} running notebooks" + (
        f": {body['reason'].strip()}" if body.get("reason", "").strip() else ""
    )
    if ids:
        await ctx.run("api_request_stop", ctx.mine(ids=ids))
        for notebook_id in ids:
            await set_status(ctx, notebook_id, "stopping", STOP_REQUESTED, reason=why)
        await enqueue_reconcile(ctx.conn, ids, asked=True)
    ctx.audit_detail["stopped"] = len(ids)
    return json_response({"stopped": len(ids)})

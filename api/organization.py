"""The caller's organization, its own running limits and its timeout caps
(docs/api.md "Running limits", "Timeout caps"): every member reads what
applies to them; its org admins set them, the running limits within the
operator's. A team's lead caps its own spend rather than asking the
platform's operator, who sets one limit for all."""

from __future__ import annotations

from aiohttp import web

from api.context import Ctx
from api.org_limits import TIMEOUTS
from api.responses import raw_json
from api.teams import require_org_admin
from api.validation import DEFAULT_TIMEOUT_SCHEMA, TIMEOUT_CAP_SCHEMA, obj, read_body

MAX_LIMIT = 10000  # as the columns' check (migration 0017)
LIMIT_SCHEMA = {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT}
UPDATE_SCHEMA = obj(
    {
        "maxRunningPerMember": LIMIT_SCHEMA,
        "maxRunning": LIMIT_SCHEMA,
        # A cap has a timeout's own range (migration 0019), in whole minutes; 0 is none.
        "maxIdleTimeoutSeconds": TIMEOUT_CAP_SCHEMA,
        "maxDetachedTimeoutSeconds": TIMEOUT_CAP_SCHEMA,
        # What a notebook created without a timeout gets, under the caps;
        # null: the platform's (migration 0028).
        "defaultIdleTimeoutSeconds": DEFAULT_TIMEOUT_SCHEMA,
        "defaultDetachedTimeoutSeconds": DEFAULT_TIMEOUT_SCHEMA,
    }
)


async def get_organization(ctx: Ctx) -> web.Response:
    row = await ctx.one(
        "api_organization",
        ctx.mine(
            platform_per_member=ctx.settings.max_running_per_member,
            platform_per_org=ctx.settings.max_running_per_org,
            trash_days=ctx.settings.trash_days,
            platform_default_idle=TIMEOUTS[0].default,
            platform_default_detached=TIMEOUTS[1].default,
        ),
    )
    assert row is not None  # the caller's organization exists while they do
    return raw_json(row["body"])


async def update_organization(ctx: Ctx) -> web.Response:
    require_org_admin(ctx)
    body = await read_body(ctx.request, UPDATE_SCHEMA)
    if body:
        await ctx.run(
            "api_update_organization_limits",
            ctx.mine(
                max_running_per_member=body.get("maxRunningPerMember"),
                max_running=body.get("maxRunning"),
                max_idle_timeout_seconds=body.get("maxIdleTimeoutSeconds"),
                max_detached_timeout_seconds=body.get("maxDetachedTimeoutSeconds"),
                # Sent as null is a change too (back to the platform's).
                set_default_idle_timeout_seconds="defaultIdleTimeoutSeconds" in body,
                default_idle_timeout_seconds=body.get("defaultIdleTimeoutSeconds"),
                set_default_detached_timeout_seconds="defaultDetachedTimeoutSeconds" in body,
                default_detached_timeout_seconds=body.get("defaultDetachedTimeoutSeconds"),
            ),
        )
    return await get_organization(ctx)

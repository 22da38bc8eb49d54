"""Webhooks (docs/api.md "Webhooks"): an organization's admins name URLs the
workers tell of its notebooks' status changes (a failed start, an
auto-stop, a start), signed with a secret answered once. What a team wires
to its chat or its scheduler, which JupyterHub, Kubeflow and SageMaker's
notebook instances leave to polling (reconciler/webhooks.py sends them)."""

from __future__ import annotations

from aiohttp import web

from api.context import Ctx
from api.errors import BadRequest, Conflict, NotFound
from api.responses import no_content, raw_json
from api.teams import require_org_admin
from api.validation import obj, path_id, read_body, text_schema
from common import webhooks
from common.ids import new_id
from common.statuses import Status

MAX_WEBHOOKS = 10  # an organization's, at most
DELIVERIES_LISTED = 50
STATUSES = sorted(s.value for s in Status)
CREATE_SCHEMA = obj(
    {
        "url": {"type": "string", "minLength": 1, "maxLength": webhooks.MAX_URL},
        "description": text_schema(500),
        "statuses": {
            "type": "array",
            "items": {"type": "string", "enum": STATUSES},
            "maxItems": len(STATUSES),
            "description": "The statuses told of (a change to one of them); empty or absent:"
            " every status change.",
        },
    },
    required=("url",),
)


def checked_url(ctx: Ctx, url: str) -> str:
    """`url`, or 400 saying why the workers may not send to it."""
    problem = webhooks.url_problem(url, ctx.settings.webhooks_allow_insecure)
    if problem is not None:
        raise BadRequest(f"The webhook's URL {problem}.", code="invalid_value", field="url")
    return url


async def create_webhook(ctx: Ctx) -> web.Response:
    require_org_admin(ctx)
    body = await read_body(ctx.request, CREATE_SCHEMA)
    url = checked_url(ctx, body["url"])
    secret = webhooks.new_secret()
    await ctx.one("api_webhook_lock_org", ctx.mine())
    row = await ctx.one(
        "api_webhook_insert",
        ctx.mine(
            id=new_id(),
            url=url,
            description=body.get("description", ""),
            statuses=sorted(set(body.get("statuses", []))),
            secret=secret,
            max_webhooks=MAX_WEBHOOKS,
        ),
    )
    if row is None:
        raise Conflict(
            f"An organization has at most {MAX_WEBHOOKS} webhooks: delete one first.",
            code="webhook_limit_reached",
        )
    # The secret, once: it signs every delivery, and is never answered again.
    return raw_json(f'{row["body"][:-1]},"secret":"{secret}"}}', status=201)


# The create's fields, none required, and whether it is told of anything.
UPDATE_SCHEMA = obj(
    {
        **CREATE_SCHEMA["properties"],
        "enabled": {
            "type": "boolean",
            "description": "false: told of nothing until enabled again (a receiver down for"
            " maintenance); true: enabled again (the workers disable one none of whose"
            " deliveries succeeded for days).",
        },
    }
)


async def update_webhook(ctx: Ctx) -> web.Response:
    """Its URL, description or statuses, keeping its secret and deliveries
    (a receiver moved, a status more to tell of); or whether it is enabled."""
    require_org_admin(ctx)
    body = await read_body(ctx.request, UPDATE_SCHEMA)
    url = body.get("url")
    if url is not None:
        checked_url(ctx, url)
    statuses = body.get("statuses")
    row = await ctx.one(
        "api_webhook_update",
        ctx.mine(
            id=path_id(ctx.request, "id"),
            url=url,
            description=body.get("description"),
            statuses=None if statuses is None else sorted(set(statuses)),
            enabled=body.get("enabled"),
            give_up_before=ctx.now - webhooks.GIVE_UP_AFTER,
        ),
    )
    if row is None:
        raise NotFound("No such webhook.", field="id")
    return raw_json(row["body"])


async def list_webhooks(ctx: Ctx) -> web.Response:
    require_org_admin(ctx)
    row = await ctx.one("api_webhook_list", ctx.mine())
    assert row is not None  # an aggregate: one row
    return raw_json(f'{{"total":{row["total"]},"items":{row["items"]}}}')


async def delete_webhook(ctx: Ctx) -> web.Response:
    """Its deliveries go with it, sent or not."""
    require_org_admin(ctx)
    if await ctx.one("api_webhook_delete", ctx.mine(id=path_id(ctx.request, "id"))) is None:
        raise NotFound("No such webhook.", field="id")
    return no_content()


async def rotate_secret(ctx: Ctx) -> web.Response:
    """A new signing secret, answered once; the one it replaces signs beside
    it for a day, so the receiver changes over without refusing one."""
    require_org_admin(ctx)
    await read_body(ctx.request, obj({}))
    secret = webhooks.new_secret()
    row = await ctx.one(
        "api_webhook_rotate",
        ctx.mine(
            id=path_id(ctx.request, "id"),
            secret=secret,
            previous_until=ctx.now + webhooks.ROTATION_OVERLAP,
        ),
    )
    if row is None:
        raise NotFound("No such webhook.", field="id")
    return raw_json(f'{row["body"][:-1]},"secret":"{secret}"}}')


async def test_webhook(ctx: Ctx) -> web.Response:
    """A delivery of type `webhook.test`, sent as any other within seconds:
    what an admin setting up a receiver checks it with."""
    require_org_admin(ctx)
    await read_body(ctx.request, obj({}))  # none, or {}
    params = ctx.mine(id=path_id(ctx.request, "id"))
    hook = await ctx.one("api_webhook_lock", params)
    if hook is None:
        raise NotFound("No such webhook.", field="id")
    if hook["disabled"]:
        raise Conflict(
            "This webhook is disabled: a test would not be sent. Enable it first.",
            code="webhook_disabled",
        )
    row = await ctx.one("api_webhook_test", params)
    if row is not None and row["id"] is None:  # the waiting one was sent meanwhile: a new one
        row = await ctx.one("api_webhook_test", params)
    assert row is not None and row["id"] is not None  # the webhook is locked: it is there
    return raw_json(f'{{"id":"{row["id"]}"}}', status=202)


async def list_deliveries(ctx: Ctx) -> web.Response:
    """The webhook's newest deliveries, how each went: what an admin reads
    when the receiver says nothing came."""
    require_org_admin(ctx)
    row = await ctx.one(
        "api_webhook_deliveries", ctx.mine(id=path_id(ctx.request, "id"), limit=DELIVERIES_LISTED)
    )
    assert row is not None  # an aggregate: one row
    if not row["found"]:
        raise NotFound("No such webhook.", field="id")
    return raw_json(f'{{"items":{row["items"]}}}')

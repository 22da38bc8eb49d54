"""A notebook's history: its status changes, each with its reason and actor
(DESIGN §4 records them; this lists them to whoever may see the notebook)."""

from __future__ import annotations

from aiohttp import web

from api.context import Ctx
from api.errors import NotFound
from api.responses import page_params, plain_list
from api.validation import path_id


async def list_notebook_events(ctx: Ctx) -> web.Response:
    notebook_id = path_id(ctx.request, "id")
    # Markers are the caller's and the notebook's: one taken from another
    # member's or notebook's history is refused (400 invalid_marker).
    scope = f"notebook-events:{ctx.me.member_id}:{notebook_id}"
    page = page_params(ctx, scope)
    after_id = page.pop("after_id")
    page.pop("after_at")  # the keyset is the event id alone: ids are the order written
    row = await ctx.one(
        "api_notebook_events",
        ctx.mine(
            notebook_id=notebook_id,
            see_all=ctx.me.organization_admin,
            after_id=int(after_id) if after_id is not None else None,
            **page,
        ),
    )
    if row is None or not row["visible"]:
        raise NotFound("No such notebook.", field="id")
    return plain_list(ctx, scope, row)

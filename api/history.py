"""A notebook's history: its status changes, each with its reason and actor
(DESIGN §4 records them; this lists them to whoever may see the notebook)."""

from __future__ import annotations

from aiohttp import web

from api.context import Ctx
from api.notebooks import visible
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
    await visible(ctx, notebook_id)  # 404 as for describe; no row lock
    row = await ctx.one(
        "api_notebook_events",
        ctx.mine(
            notebook_id=notebook_id,
            after_id=int(after_id) if after_id is not None else None,
            **page,
        ),
    )
    assert row is not None  # an aggregate always returns one row
    # With the members who acted on this page, as a describe's `included`
    # names a notebook's owner: a client shows names, not ids.
    return plain_list(ctx, scope, row, included=f'{{"members":{row["members"]}}}')

"""Histories: a notebook's status changes and members' changes, each with its
reason and actor (DESIGN §4 records them), to whoever may see the notebook;
and the organization's activity, every notebook's in one feed, to its org
admins (an audit: who shared, handed on, started what), deleted notebooks'
included."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.context import Ctx
from api.errors import BadRequest
from api.notebooks import visible
from api.responses import page_params, plain_list
from api.teams import require_org_admin
from api.validation import ID_SCHEMA, path_id
from common.ids import is_valid_id
from common.statuses import RECONCILER_ACTOR

# The activity counts its events up to this many, then says "at least"
# (`totalCapped`): counting an organization's million cost 50 ms a page.
TOTAL_CAP = 10_000

ACTOR_PARAMETER: dict[str, Any] = {
    "required": False,
    "description": "Only what this member did (a member id), or `reconciler`: what the "
    "platform did by itself.",
    "schema": {"oneOf": [ID_SCHEMA, {"type": "string", "enum": [RECONCILER_ACTOR]}]},
}
NOTEBOOK_PARAMETER: dict[str, Any] = {
    "required": False,
    "description": "Only this notebook's history (a notebook id), a deleted one's too.",
    "schema": ID_SCHEMA,
}


def actor_filter(ctx: Ctx) -> str | None:
    raw = ctx.request.query.get("actor")
    if raw is None:
        return None
    if raw != RECONCILER_ACTOR and not is_valid_id(raw):
        raise BadRequest(
            "actor is not a member id, nor reconciler.", code="invalid_id", field="actor"
        )
    return raw


def notebook_filter(ctx: Ctx) -> str | None:
    raw = ctx.request.query.get("notebook")
    if raw is not None and not is_valid_id(raw):
        raise BadRequest("notebook is not a valid id.", code="invalid_id", field="notebook")
    return raw


def event_keyset(ctx: Ctx, scope: str) -> dict[str, Any]:
    """limit and marker as an events page takes them: the keyset is the
    event id alone (ids are the order written). A marker from another list,
    caller or filter is refused (400 invalid_marker)."""
    page = page_params(ctx, scope)
    after_id = page.pop("after_id")
    page.pop("after_at")
    return {**page, "after_id": int(after_id) if after_id is not None else None}


async def event_page(ctx: Ctx, statement: str, **params: Any) -> dict[str, Any]:
    """One page of events from `statement` (api_events.sql)."""
    base = {
        "notebook_id": None,
        "actor": None,
        "with_notebooks": False,
        "count_up_to": TOTAL_CAP + 1,
    }
    row = await ctx.one(statement, ctx.mine(**{**base, **params}))
    assert row is not None  # an aggregate always returns one row
    return row


async def list_notebook_events(ctx: Ctx) -> web.Response:
    notebook_id = path_id(ctx.request, "id")
    scope = f"notebook-events:{ctx.me.member_id}:{notebook_id}"
    keyset = event_keyset(ctx, scope)
    await visible(ctx, notebook_id)  # 404 as for describe; no row lock
    row = await event_page(ctx, "api_notebook_events", notebook_id=notebook_id, **keyset)
    # With the members who acted on this page, as a describe's `included`
    # names a notebook's owner: a client shows names, not ids.
    return plain_list(ctx, scope, row, included=f'{{"members":{row["members"]}}}')


async def list_org_events(ctx: Ctx) -> web.Response:
    require_org_admin(ctx)
    actor = actor_filter(ctx)
    notebook_id = notebook_filter(ctx)
    scope = f"org-events:{ctx.me.member_id}:{actor or ''}:{notebook_id or ''}"
    # A statement per filter, each planned for its own index (api_events.sql).
    statement = {
        (False, False): "api_org_events",
        (False, True): "api_org_events_by_actor",
        (True, False): "api_notebook_events",
        (True, True): "api_notebook_events_by_actor",
    }[(notebook_id is not None, actor is not None)]
    row = await event_page(
        ctx,
        statement,
        notebook_id=notebook_id,
        actor=actor,
        with_notebooks=True,
        **event_keyset(ctx, scope),
    )
    included = f'{{"members":{row["members"]},"notebooks":{row["notebooks"]}}}'
    # The organization's counts stop past the cap; one notebook's is whole.
    capped = notebook_id is None and row["total"] > TOTAL_CAP
    if capped:
        row = {**row, "total": TOTAL_CAP}
    return plain_list(ctx, scope, row, included=included, capped=capped)

"""Sharing: which teams a notebook is shared with, and a team's notebooks."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.context import Ctx
from api.errors import Forbidden, NotFound
from api.notebooks import (
    ADMINISTER,
    check_teams,
    list_scope,
    locked,
    notebook_page,
    record_change,
    status_filter,
    visible,
)
from api.responses import no_content, normalized_list, page_params, plain_list
from api.validation import TEAM_IDS_SCHEMA, obj, path_id, query_search, read_body

LINK_SCHEMA = obj({"teamIds": TEAM_IDS_SCHEMA}, required=("teamIds",))


async def team_page(ctx: Ctx, **params: Any) -> dict[str, Any]:
    base = {
        "notebook_id": None,
        "team_id": None,
        "limit": 100,
        "fetch": 101,
        "after_at": None,
        "after_id": None,
    }
    row = await ctx.one("api_team_page", ctx.mine(**{**base, **params}))
    assert row is not None
    return row


async def find_team(ctx: Ctx, team_id: str) -> dict[str, Any]:
    """The org's team `team_id` with the caller's role in it (None if none); 404 if no such team."""
    team = await ctx.one("api_team_role", ctx.mine(team_id=team_id))
    if team is None:
        raise NotFound("No such team.", field="team")
    return team


async def list_notebook_teams(ctx: Ctx) -> web.Response:
    notebook_id = path_id(ctx.request, "id")
    await visible(ctx, notebook_id)
    scope = f"notebook-teams:{notebook_id}"
    row = await team_page(ctx, notebook_id=notebook_id, **page_params(ctx, scope))
    return plain_list(ctx, scope, row)


async def add_notebook_teams(ctx: Ctx) -> web.Response:
    notebook_id = path_id(ctx.request, "id")
    row = await locked(ctx, notebook_id, ADMINISTER)
    body = await read_body(ctx.request, LINK_SCHEMA)
    team_ids = await check_teams(ctx, body["teamIds"])
    if team_ids:
        added = await ctx.one(
            "api_link_teams", ctx.mine(notebook_id=notebook_id, team_ids=team_ids)
        )
        assert added is not None  # an aggregate: always one row
        if added["names"]:  # sharing again with a team it has is no change
            await record_change(ctx, notebook_id, row, f"Shared with {', '.join(added['names'])}")
    scope = f"notebook-teams:{notebook_id}"
    page = await team_page(ctx, notebook_id=notebook_id)
    return plain_list(ctx, scope, page)


async def remove_notebook_team(ctx: Ctx) -> web.Response:
    notebook_id = path_id(ctx.request, "id")
    team_id = path_id(ctx.request, "team")
    row = await locked(ctx, notebook_id, ADMINISTER)
    unlinked = await ctx.one("api_unlink_team", {"notebook_id": notebook_id, "team_id": team_id})
    if unlinked is None:
        raise NotFound("The notebook is not shared with that team.", field="team")
    await record_change(ctx, notebook_id, row, f"No longer shared with {unlinked['name']}")
    return no_content()


async def list_team_notebooks(ctx: Ctx) -> web.Response:
    team_id = path_id(ctx.request, "team")
    team = await find_team(ctx, team_id)
    if team["role"] is None and not ctx.me.organization_admin:
        raise Forbidden("Only the team's members and org admins list its notebooks.")
    statuses = status_filter(ctx)
    q = query_search(ctx.request)
    scope = list_scope(ctx, team_id, statuses, q=q)
    # A team's members see every notebook shared with it (the team's
    # statement asks no more of the caller).
    row = await notebook_page(ctx, team_id=team_id, st=statuses, q=q, **page_params(ctx, scope))
    return normalized_list(ctx, scope, row)

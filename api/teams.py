"""Teams and team memberships (supporting endpoints)."""

from __future__ import annotations

from aiohttp import web

from api.context import Ctx
from api.errors import Forbidden, NotFound, team_name_taken
from api.notebook_teams import find_team, team_page
from api.responses import json_response, no_content, page_params, plain_list, raw_json
from api.validation import name_schema, obj, path_id, read_body
from common.ids import new_id

TEAM_SCHEMA = obj({"name": name_schema(128)}, required=("name",))
ROLE_SCHEMA = obj(
    {"role": {"type": "string", "enum": ["admin", "editor", "viewer"]}}, required=("role",)
)


def require_org_admin(ctx: Ctx) -> None:
    if not ctx.me.organization_admin:
        raise Forbidden("Only organization admins may do this.")


async def create_team(ctx: Ctx) -> web.Response:
    require_org_admin(ctx)
    body = await read_body(ctx.request, TEAM_SCHEMA)
    team_id = new_id()
    if await ctx.one("api_insert_team", ctx.mine(id=team_id, name=body["name"])) is None:
        raise team_name_taken()
    row = await team_page(ctx, team_id=team_id, limit=1, fetch=1)
    return raw_json(row["items"][1:-1], 201)


async def rename_team(ctx: Ctx) -> web.Response:
    team_id = path_id(ctx.request, "team")
    require_org_admin(ctx)
    body = await read_body(ctx.request, TEAM_SCHEMA)
    await find_team(ctx, team_id)  # 404 if not the org's
    if await ctx.one("api_rename_team", ctx.mine(team_id=team_id, name=body["name"])) is None:
        await find_team(ctx, team_id)  # deleted meanwhile: 404, not a taken name
        raise team_name_taken()
    row = await team_page(ctx, team_id=team_id, limit=1, fetch=1)
    return raw_json(row["items"][1:-1])


async def delete_team(ctx: Ctx) -> web.Response:
    """Its members leave it and the notebooks shared with it are unshared
    from it: what it gave ends at once (the proxy's connections too)."""
    team_id = path_id(ctx.request, "team")
    require_org_admin(ctx)
    # Each notebook shared with it says so in its history: the team and its
    # notebooks are locked first, then the links read afresh (an unshare
    # that committed meanwhile is not recorded twice; a review found it).
    team = await ctx.one("api_lock_team_for_delete", ctx.mine(team_id=team_id))
    if team is None:
        raise NotFound("No such team.", field="team")
    await ctx.all("api_lock_team_notebooks", {"team_id": team_id})
    await ctx.run("api_record_team_deletion", ctx.mine(team_id=team_id, name=team["name"]))
    ctx.audit_detail["name"] = team["name"]
    await ctx.run("api_delete_team", ctx.mine(team_id=team_id))
    return no_content()


async def list_teams(ctx: Ctx) -> web.Response:
    scope = f"teams:{ctx.me.organization_id}"
    row = await team_page(ctx, **page_params(ctx, scope))
    return plain_list(ctx, scope, row)


async def list_team_members(ctx: Ctx) -> web.Response:
    team_id = path_id(ctx.request, "team")
    team = await find_team(ctx, team_id)
    scope = f"team-members:{team_id}"
    row = await ctx.one("api_team_member_page", {"team_id": team_id, **page_params(ctx, scope)})
    assert row is not None
    # Names and emails to the team's own members and org admins only: to
    # anyone else in the organization, the teams would list every member
    # that GET /members keeps to admins (a review found it).
    named = ctx.me.organization_admin or team["role"] is not None
    return plain_list(
        ctx, scope, row, included=f'{{"members":{row["members"] if named else "[]"}}}'
    )


async def _team_admin(ctx: Ctx) -> tuple[str, str]:
    """The team and member of a membership change the caller may make. A
    team admin's authority is checked again on its locked membership row
    (api_lock_team_memberships): their removal or demotion, made meanwhile,
    either waits for this change or is seen by it."""
    team_id = path_id(ctx.request, "team")
    member_id = path_id(ctx.request, "member")
    if await ctx.one("api_lock_team_for_change", ctx.mine(team_id=team_id)) is None:
        raise NotFound("No such team.", field="team")
    rows = await ctx.all(
        "api_lock_team_memberships",
        {"team_id": team_id, "caller_id": ctx.me.member_id, "member_id": member_id},
    )
    role = next((r["role"] for r in rows if r["member_id"] == ctx.me.member_id), None)
    if not ctx.me.organization_admin and role != "admin":
        raise Forbidden("Only org admins and the team's admins manage its members.")
    return team_id, member_id


async def put_team_member(ctx: Ctx) -> web.Response:
    team_id, member_id = await _team_admin(ctx)
    body = await read_body(ctx.request, ROLE_SCHEMA)
    if await ctx.one("api_active_member", ctx.mine(member_id=member_id)) is None:
        raise NotFound("No such member.", field="member")
    row = await ctx.one(
        "api_put_team_member",
        {"team_id": team_id, "member_id": member_id, "role": body["role"], "now": ctx.now},
    )
    assert row is not None
    return json_response(
        {"teamId": row["team_id"], "memberId": row["member_id"], "role": row["role"]}
    )


async def delete_team_member(ctx: Ctx) -> web.Response:
    team_id, member_id = await _team_admin(ctx)
    if (
        await ctx.one("api_delete_team_member", {"team_id": team_id, "member_id": member_id})
        is None
    ):
        raise NotFound("That member is not in the team.", field="member")
    return no_content()

"""Members, their API tokens, and /me (supporting endpoints)."""

from __future__ import annotations

import json
from datetime import UTC, timedelta
from typing import Any

from aiohttp import web

from api.context import Ctx, may_end_itself, revokes_access
from api.errors import BadRequest, Conflict, Forbidden, NotFound, invalid_token, member_exists
from api.responses import no_content, page_params, plain_list, raw_json
from api.teams import require_org_admin
from api.validation import name_schema, obj, path_id, query_search, read_body, search_parameter
from common.ids import new_id
from common.text import EMAIL_PATTERN
from common.tokens import (
    MAX_LIFETIME_SECONDS,
    MIN_LIFETIME_SECONDS,
    hash_token,
    new_token,
    token_prefix,
)

EMAIL_SCHEMA = {
    "type": "string",
    "minLength": 3,
    "maxLength": 254,
    "pattern": EMAIL_PATTERN,
}
MEMBER_SCHEMA = obj(
    {"email": EMAIL_SCHEMA, "name": name_schema(128), "organizationAdmin": {"type": "boolean"}},
    required=("email", "name"),
)
MEMBER_UPDATE_SCHEMA = obj({"name": name_schema(128), "organizationAdmin": {"type": "boolean"}})
# A token lives until revoked, or for `expiresInSeconds` (5 min to a year).
TOKEN_LIFETIME_SCHEMA: dict[str, Any] = {
    "type": "integer",
    "minimum": MIN_LIFETIME_SECONDS,
    "maximum": MAX_LIFETIME_SECONDS,
    "description": f"seconds until the token stops working ({MIN_LIFETIME_SECONDS}.."
    f"{MAX_LIFETIME_SECONDS}); absent: no expiry; never past the expiry of the token that "
    "makes it",
}
TOKEN_SCHEMA = obj(
    {
        "name": name_schema(128),
        "expiresInSeconds": TOKEN_LIFETIME_SCHEMA,
        # It may read, never change, start or open (api/context.py `may_write`).
        "readOnly": {"type": "boolean"},
    },
    required=("name",),
)


async def member_page(ctx: Ctx, *, disabled: bool = False, **params: Any) -> dict[str, Any]:
    base = {
        "member_id": None,
        "q": None,
        "limit": 100,
        "fetch": 101,
        "after_at": None,
        "after_id": None,
    }
    name = "api_disabled_member_page" if disabled else "api_member_page"
    row = await ctx.one(name, {**ctx.mine(), **base, **params})
    assert row is not None
    return row


async def me(ctx: Ctx) -> web.Response:
    """The caller, and the token it called with: a script learns whether
    its token is read-only and when it ends before it meets a 403 or 401."""
    row = await ctx.one("api_me", {"member_id": ctx.me.member_id})
    assert row is not None
    ends = ctx.me.token_expires_at
    token = json.dumps(
        {
            "id": ctx.me.token_id,
            "readOnly": ctx.me.read_only,
            "expiresAt": None if ends is None else ends.astimezone(UTC).isoformat(),
        }
    )
    body = str(row["body"])
    return raw_json(f'{body[:-1]},"token":{token}}}')


# `?q=`: members whose name or email holds it, however capitalised (an admin
# of thousands looks one up rather than paging by date).
SEARCH_PARAMETER = search_parameter(
    "Only members whose name or email contains this (case-insensitive)."
)


# `?disabled=true`: the disabled members instead, to enable one again.
DISABLED_PARAMETER: dict[str, Any] = {
    "required": False,
    "description": "`true`: only the disabled members (default `false`: only active ones).",
    "schema": {"type": "string", "enum": ["true", "false"]},
}


def _disabled(ctx: Ctx) -> bool:
    raw = ctx.request.query.get("disabled", "false")
    if raw not in ("true", "false"):
        raise BadRequest(
            "disabled takes true or false.", code="validation_failed", field="disabled"
        )
    return raw == "true"


async def list_members(ctx: Ctx) -> web.Response:
    require_org_admin(ctx)
    q = query_search(ctx.request)
    disabled = _disabled(ctx)
    # A marker belongs to its search: one from another is refused (invalid_marker).
    scope = f"members:{ctx.me.organization_id}:{disabled}:{q or ''}"
    row = await member_page(ctx, q=q, disabled=disabled, **page_params(ctx, scope))
    return plain_list(ctx, scope, row)


async def create_member(ctx: Ctx) -> web.Response:
    require_org_admin(ctx)
    body = await read_body(ctx.request, MEMBER_SCHEMA)
    member_id = new_id()
    inserted = await ctx.one(
        "api_insert_member",
        {
            **ctx.mine(),
            "id": member_id,
            "email": body["email"],
            "name": body["name"],
            "organization_admin": body.get("organizationAdmin", False),
        },
    )
    if inserted is None:
        raise member_exists()
    row = await member_page(ctx, member_id=member_id, limit=1, fetch=1)
    return raw_json(row["items"][1:-1], 201)


@revokes_access  # a demotion takes access: it locks and judges the rows itself
async def update_member(ctx: Ctx) -> web.Response:
    """An org admin renames a member or makes them an org admin, or not.
    The organization keeps at least one active org admin."""
    member_id = path_id(ctx.request, "member")
    require_org_admin(ctx)
    body = await read_body(ctx.request, MEMBER_UPDATE_SCHEMA)
    admin = body.get("organizationAdmin")
    params = ctx.mine(
        member_id=member_id,
        caller_id=ctx.me.member_id,
        caller_token_id=ctx.me.token_id,
        demote=admin is False,
        name=body.get("name"),
        admin=admin,
    )
    # Three statements: the token is read (and held) after the locks' wait,
    # so a revocation or demotion of the caller committed meanwhile is seen.
    locked = await ctx.one("api_lock_member_change", params)
    assert locked is not None  # an aggregate: always one row
    if not locked["caller_ok"] or await ctx.one("api_caller_admin_token", params) is None:
        raise Forbidden("Only organization admins may do this.")
    if not locked["found"]:
        raise NotFound("No such member.", field="member")
    if admin is False and locked["was_admin"] and locked["admins"] <= 1:
        raise Conflict(
            "An organization keeps at least one organization admin: make another member one first.",
            code="last_organization_admin",
            field="organizationAdmin",
        )
    await ctx.run("api_update_member", params)
    page = await member_page(ctx, member_id=member_id, limit=1, fetch=1)
    return raw_json(page["items"][1:-1])


@revokes_access
async def disable_member(ctx: Ctx) -> web.Response:
    member_id = path_id(ctx.request, "member")
    require_org_admin(ctx)
    if member_id == ctx.me.member_id:
        raise Conflict(
            "An admin cannot disable themselves.", code="cannot_disable_self", field="member"
        )
    row = await ctx.one(
        "api_disable_member", ctx.mine(member_id=member_id, caller_id=ctx.me.member_id)
    )
    assert row is not None
    if not row["caller_ok"]:  # disabled (or demoted) meanwhile, by a concurrent request
        raise invalid_token()
    if row["disabled"] is None:
        raise NotFound("No such member.", field="member")
    return no_content()


async def enable_member(ctx: Ctx) -> web.Response:
    """A disabled member back (an org admin's mistake, or someone returning):
    their teams, role and notebooks, which stayed, are theirs again; their old
    tokens are revoked, so they sign in with a new one."""
    member_id = path_id(ctx.request, "member")
    require_org_admin(ctx)
    await read_body(ctx.request, obj({}))
    params = ctx.mine(member_id=member_id, caller_id=ctx.me.member_id)
    # Two statements: the tokens are read after the lock's wait (a token
    # being made for them meanwhile is revoked too; a review found it missed).
    target = await ctx.one("api_lock_member_for_enable", params)
    if target is None:
        raise NotFound("No such member.", field="member")
    if target["disabled_at"] is None:
        raise Conflict("This member is not disabled.", code="member_not_disabled", field="member")
    await ctx.one("api_enable_member", params)
    page = await member_page(ctx, member_id=member_id, limit=1, fetch=1)
    return raw_json(page["items"][1:-1])


async def _token_owner(ctx: Ctx) -> str:
    member_id = path_id(ctx.request, "member")
    if member_id != ctx.me.member_id and not ctx.me.organization_admin:
        raise Forbidden("Only the member and org admins manage a member's tokens.")
    if await ctx.one("api_active_member", {**ctx.mine(), "member_id": member_id}) is None:
        raise NotFound("No such member.", field="member")
    return member_id


async def create_token(ctx: Ctx) -> web.Response:
    member_id = await _token_owner(ctx)
    body = await read_body(ctx.request, TOKEN_SCHEMA)
    lifetime = body.get("expiresInSeconds")
    expires_at = None if lifetime is None else ctx.now + timedelta(seconds=lifetime)
    # A token never outlives the one that made it, or a leaked short-lived
    # token (the console's) could mint itself a lasting one. A member's own
    # is also revoked with it (the console's sign-out ends what was made in
    # it); one an admin made for a colleague is theirs from then on, not
    # ended by the admin signing out right after handing it over.
    ceiling = ctx.me.token_expires_at
    if ceiling is not None and (expires_at is None or expires_at > ceiling):
        expires_at = ceiling
    own = member_id == ctx.me.member_id
    made_by = ctx.me.token_id if ceiling is not None and own else None
    secret = new_token()
    row = await ctx.one(
        "api_insert_token",
        {
            "id": new_id(),
            "member_id": member_id,
            "name": body["name"],
            "prefix": token_prefix(secret),
            "secret_hash": hash_token(secret),
            "now": ctx.now,
            "expires_at": expires_at,
            "made_by": made_by,
            "caller_id": ctx.me.member_id,
            "read_only": body.get("readOnly", False),
        },
    )
    if row is None:  # its maker was revoked meanwhile (a concurrent sign-out)
        raise invalid_token()
    out = json.loads(row["body"])
    out["token"] = secret  # shown once; only its hash is stored
    return raw_json(json.dumps(out), 201)


async def list_tokens(ctx: Ctx) -> web.Response:
    member_id = await _token_owner(ctx)
    scope = f"tokens:{member_id}"
    row = await ctx.one(
        "api_token_page", {"member_id": member_id, "now": ctx.now, **page_params(ctx, scope)}
    )
    assert row is not None
    return plain_list(ctx, scope, row)


@revokes_access
@may_end_itself
async def revoke_token(ctx: Ctx) -> web.Response:
    member_id = await _token_owner(ctx)
    token_id = path_id(ctx.request, "token")
    params = {
        "token_id": token_id,
        "member_id": member_id,
        "now": ctx.now,
        "caller_id": ctx.me.member_id,
    }
    # Two statements: the lineage is read after tokens being made with this
    # one have committed (READ COMMITTED: a fresh snapshot per statement).
    if await ctx.one("api_lock_token", params) is None:
        raise NotFound("No such token.", field="token")
    caller = await ctx.one("api_caller_live", {**params, "caller_token_id": ctx.me.token_id})
    if caller is None:  # disabled or revoked while this waited
        raise invalid_token()
    if member_id != ctx.me.member_id and not caller["admin"]:  # demoted meanwhile
        raise Forbidden("Only the member and org admins manage a member's tokens.")
    await ctx.one("api_revoke_token", params)
    return no_content()

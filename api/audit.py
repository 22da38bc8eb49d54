"""The organization's administration, recorded and read (docs/api.md
"Audit"): every change to its members, tokens, teams, workload configs,
limits and webhooks writes an entry in the request's own transaction, after
its handler succeeded (`recorder`, wired by the route table); org admins
read them (`GET /audit`). Notebooks keep their own history."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from api.context import Ctx
from api.errors import BadRequest
from api.history import event_keyset
from api.responses import plain_list
from api.teams import require_org_admin
from api.validation import ID_SCHEMA
from common.ids import is_valid_id

# What the caller sent that an entry may keep as written: names, roles,
# flags, limits and ids. Anything else (a secret environment's values, a
# URL, an email, an environment) is named among `fields`, never kept.
KEPT_VALUES = frozenset(
    {
        "name",
        "role",
        "organizationAdmin",
        "readOnly",
        "memberId",
        "maxRunningPerMember",
        "maxRunning",
        "maxIdleTimeoutSeconds",
        "maxDetachedTimeoutSeconds",
        "defaultIdleTimeoutSeconds",
        "defaultDetachedTimeoutSeconds",
        "statuses",
        "teamIds",
    }
)


@dataclass(frozen=True)
class Audited:
    """What a route's success records: `action` on a `target_type` whose id
    is the path's `id_from` parameter, or (None) the created object's `id`
    in the answer, or ("organization") the caller's organization."""

    action: str
    target_type: str
    id_from: str | None


Recorder = Callable[[Ctx, web.StreamResponse], Awaitable[None]]


def recorder(audited: Audited) -> Recorder:
    async def record(ctx: Ctx, response: web.StreamResponse) -> None:
        await ctx.one(
            "api_record_audit",
            {
                "org_id": ctx.me.organization_id,
                "actor": ctx.me.member_id,
                "token_id": ctx.me.token_id,
                "action": audited.action,
                "target_type": audited.target_type,
                "target_id": target_id(ctx, audited, response),
                "detail": json.dumps(detail(ctx, audited, await ctx.request.read())),
                "request_id": structlog.contextvars.get_contextvars().get("request_id"),
                "now": ctx.now,
            },
        )

    return record


def target_id(ctx: Ctx, audited: Audited, response: web.StreamResponse) -> str:
    if audited.id_from == "organization":
        return ctx.me.organization_id
    if audited.id_from is not None:
        return ctx.request.match_info[audited.id_from]
    body = getattr(response, "body", None)  # a create's answer: the new object
    assert isinstance(body, bytes), "a create answers its object"
    return str(json.loads(body)["id"])


def detail(ctx: Ctx, audited: Audited, raw: bytes) -> dict[str, Any]:
    """The path's other ids (a token's member, a membership's team), the
    fields sent (`raw`, the body the handler validated), and the values of
    those kept as written."""
    out: dict[str, Any] = {
        name: value for name, value in ctx.request.match_info.items() if name != audited.id_from
    }
    sent = json.loads(raw) if raw.strip() else {}
    if isinstance(sent, dict) and sent:
        out["fields"] = sorted(sent)
        out |= {k: v for k, v in sent.items() if k in KEPT_VALUES}
        if isinstance(sent.get("secretEnv"), dict):  # which variables, never their values
            out["secretEnvNames"] = sorted(sent["secretEnv"])
    return out


ACTOR_PARAMETER: dict[str, Any] = {
    "required": False,
    "description": "Only what this member did (a member id).",
    "schema": ID_SCHEMA,
}


async def list_audit(ctx: Ctx) -> web.Response:
    """The organization's administration, newest first, for its admins."""
    require_org_admin(ctx)
    actor = ctx.request.query.get("actor")
    if actor is not None and not is_valid_id(actor):
        raise BadRequest("actor is not a member id.", code="invalid_id", field="actor")
    scope = f"audit:{ctx.me.member_id}:{actor or ''}"
    statement = "api_audit_by_actor" if actor else "api_audit"
    row = await ctx.one(statement, ctx.mine(actor=actor, **event_keyset(ctx, scope)))
    assert row is not None  # an aggregate: one row
    return plain_list(ctx, scope, row, included=f'{{"members":{row["members"]}}}')

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
from api.history import TOTAL_CAP, event_keyset
from api.responses import plain_list
from api.teams import require_org_admin
from api.validation import ID_SCHEMA, VALIDATED_BODY
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
        "enabled",
        "reason",
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
    # Only when done to another member's (path `member`): a member's own
    # tokens (each console sign-in makes one, its sign-out revokes it) are
    # theirs to keep, listed with who made each and with which token.
    others_only: bool = False


Recorder = Callable[[Ctx, web.StreamResponse], Awaitable[None]]


def recorder(audited: Audited) -> Recorder:
    async def record(ctx: Ctx, response: web.StreamResponse) -> None:
        if audited.others_only and ctx.request.match_info.get("member") == ctx.me.member_id:
            return
        await ctx.one(
            "api_record_audit",
            {
                "org_id": ctx.me.organization_id,
                "actor": ctx.me.member_id,
                "token_id": ctx.me.token_id,
                "action": audited.action,
                "target_type": audited.target_type,
                "target_id": target_id(ctx, audited, response),
                "detail": json.dumps(detail(ctx, audited)),
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


def detail(ctx: Ctx, audited: Audited) -> dict[str, Any]:
    """The path's other ids (a token's member, a membership's team), the
    fields sent, the values of those kept as written (as the handler
    validated and applied them), and what the handler added."""
    out: dict[str, Any] = {
        name: value for name, value in ctx.request.match_info.items() if name != audited.id_from
    }
    sent = ctx.request.get(VALIDATED_BODY) or {}
    if sent:
        out["fields"] = sorted(sent)
        out |= {k: v for k, v in sent.items() if k in KEPT_VALUES}
        if isinstance(sent.get("secretEnv"), dict):  # which variables, never their values
            env = sent["secretEnv"]
            out["secretEnvNames"] = sorted(k for k, v in env.items() if v is not None)
            out["secretEnvRemoved"] = sorted(k for k, v in env.items() if v is None)
    return out | ctx.audit_detail


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
    keyset = event_keyset(ctx, scope)
    row = await ctx.one(statement, ctx.mine(actor=actor, count_up_to=TOTAL_CAP + 1, **keyset))
    assert row is not None  # an aggregate: one row
    capped = row["total"] > TOTAL_CAP
    if capped:
        row = {**row, "total": TOTAL_CAP}
    return plain_list(ctx, scope, row, included=f'{{"members":{row["members"]}}}', capped=capped)

"""Notebook endpoints (DESIGN §5): list, create, describe, update, delete,
start, stop. open/ping live in sessions.py, team links in notebook_teams.py.

Writes lock the row (SELECT ... FOR UPDATE) so concurrent start/stop
serialize: the first wins and the rest see the new status and get a 409."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from aiohttp import web

from api import sources
from api.config_teams import check_config_usable
from api.context import Ctx, prepared
from api.errors import BadRequest, Conflict, Forbidden, NotFound, PreconditionFailed
from api.org_limits import TIMEOUTS, organization_limits, timeouts_within_caps
from api.responses import (
    describe,
    etag_listed,
    etag_of,
    no_content,
    normalized_list,
    page_params,
)
from api.validation import (
    ID_SCHEMA,
    TEAM_IDS_SCHEMA,
    TIMEOUT_SCHEMA,
    name_schema,
    obj,
    path_id,
    query_search,
    read_body,
    search_parameter,
    text_schema,
)
from common.durations import duration
from common.ids import is_valid_id, new_id
from common.jobs import enqueue_reconcile
from common.statuses import CONFIG_CHANGEABLE, STARTABLE, STOP_REQUESTED, STOPPABLE, Status

FIELDS: dict[str, Any] = {
    "name": name_schema(128),
    "description": text_schema(2000),
    "workloadConfigId": ID_SCHEMA,
    "idleTimeoutSeconds": TIMEOUT_SCHEMA,
    "detachedTimeoutSeconds": TIMEOUT_SCHEMA,
}
CREATE_SCHEMA = obj(
    # `copyOf`: another notebook's file, as last copied (docs/api.md "A notebook's file").
    {**FIELDS, "teamIds": TEAM_IDS_SCHEMA, "source": sources.SOURCE_SCHEMA, "copyOf": ID_SCHEMA},
    required=("name", "workloadConfigId"),
)
# `memberId` hands the notebook on (org admins): someone leaving keeps
# nothing hostage, and its cost goes to whom it now serves.
UPDATE_SCHEMA = obj({**FIELDS, "memberId": ID_SCHEMA})

VIEW = frozenset({"owner", "org_admin", "admin", "editor", "viewer"})
MANAGE = frozenset({"owner", "org_admin", "admin", "editor"})
ADMINISTER = frozenset({"owner", "org_admin", "admin"})  # delete, share
TEAM_ROLES = frozenset({"admin", "editor", "viewer"})  # access given by a team
DELETE_REQUESTED = "Delete requested"


# `?status=running,idle`: only notebooks in these statuses (an admin asks
# "what runs now, and whose"); absent, every status.
_STATUSES = frozenset(s.value for s in Status)
_ANY_STATUS = "|".join(sorted(_STATUSES))
STATUS_PARAMETER: dict[str, Any] = {
    "required": False,
    "description": "Only notebooks in these statuses, comma-separated (e.g. "
    "`starting,running,idle,detached,stopping` for what is up).",
    "schema": {"type": "string", "pattern": f"^({_ANY_STATUS})(,({_ANY_STATUS}))*$"},
}


def status_filter(ctx: Ctx) -> list[str] | None:
    raw = ctx.request.query.get("status")
    if raw is None:
        return None
    wanted = set(raw.split(","))  # "" (an empty item) is no status either
    if not wanted <= _STATUSES:
        raise BadRequest(
            f"status takes statuses separated by commas, among {', '.join(sorted(_STATUSES))}.",
            code="validation_failed",
            field="status",
        )
    return sorted(wanted)


OWNER_PARAMETER: dict[str, Any] = {
    "required": False,
    "description": "Only the notebooks this member owns (a member id), of those the caller "
    "may see.",
    "schema": ID_SCHEMA,
}


def owner_filter(ctx: Ctx) -> str | None:
    raw = ctx.request.query.get("owner")
    if raw is None:
        return None
    if not is_valid_id(raw):
        raise BadRequest("owner is not a valid member id.", code="invalid_id", field="owner")
    return raw


# `?q=`: notebooks whose name holds it, however capitalised (a member with
# hundreds finds "churn" rather than paging by date).
NAME_SEARCH_PARAMETER = search_parameter(
    "Only notebooks whose name contains this (case-insensitive)."
)


def list_scope(
    ctx: Ctx,
    team_id: str | None = None,
    statuses: list[str] | None = None,
    owner_id: str | None = None,
    q: str | None = None,
) -> str:
    # A marker belongs to its list and its filter: another's is refused.
    filters = f"{team_id or ''}:{','.join(statuses or [])}:{owner_id or ''}"
    if q is not None:  # after the rest, so markers handed out before searches stay valid
        filters += f":q={q}"
    return f"notebooks:{ctx.me.member_id}:{filters}"


async def notebook_page(ctx: Ctx, **params: Any) -> dict[str, Any]:
    base = {
        "see_all": ctx.me.organization_admin,
        "team_id": None,
        "owner_id": None,
        "st": None,  # statuses to keep (status_filter); None: all
        "q": None,  # a name search (query_search); None: any name
        "notebook_id": None,
        "limit": 1,
        "fetch": 1,
        "after_at": None,
        "after_id": None,
    }
    given = {**base, **params}
    # A statement per kind of page, each planned for its own index
    # (sql/queries/api_notebooks.sql); all answer the same shape.
    if given["notebook_id"] is not None:
        name = "api_notebook_describe"
    elif given["team_id"] is not None:
        name = "api_notebook_page_team"
    elif given["owner_id"] is not None:
        name = "api_notebook_page_owner"
    elif given["see_all"]:
        name = "api_notebook_page_org"
    else:
        name = "api_notebook_page_member"
    row = await ctx.one(name, ctx.mine(**given))
    assert row is not None  # an aggregate always returns one row
    return row


async def describe_notebook(ctx: Ctx, notebook_id: str, status: int = 200) -> web.Response:
    row = await notebook_page(ctx, notebook_id=notebook_id)
    if row["total"] == 0:
        raise NotFound("No such notebook.", field="id")
    return describe(row, status)


async def locked(ctx: Ctx, notebook_id: str, allowed: frozenset[str]) -> dict[str, Any]:
    """The notebook row, locked; 404 if the caller may not see it, 403 if it
    may see it but not do this."""
    row = await ctx.one(
        "api_notebook_access", ctx.mine(id=notebook_id, org_admin=ctx.me.organization_admin)
    )
    if row is not None and row["access"] in TEAM_ROLES and allowed != VIEW:
        # A change: judged again with the memberships (and links) that give
        # the role share-locked, after the notebook's lock, so a removal from
        # the team, a demotion or an unsharing waits for it, or is seen by it.
        # (Not for open and ping, which change nothing a team role guards:
        # the proxy checks access again at login, and a ping every minute
        # per browser would lock, and so write, the membership rows.)
        grant = await ctx.one("api_notebook_team_access", ctx.mine(id=notebook_id))
        assert grant is not None  # an aggregate always returns one row
        row["access"] = grant["access"]
    if row is None or row["access"] is None:
        raise NotFound("No such notebook.", field="id")
    if row["access"] not in allowed:
        raise Forbidden(f"A team {row['access']} may not do this to the notebook.")
    return row


async def sees(ctx: Ctx, notebook_id: str) -> bool:
    """Whether the caller may see the notebook; no lock (for reads)."""
    row = await ctx.one(
        "api_notebook_visible", ctx.mine(id=notebook_id, see_all=ctx.me.organization_admin)
    )
    return bool(row and row["visible"])


async def visible(ctx: Ctx, notebook_id: str) -> None:
    """404 unless the caller may see the notebook."""
    if not await sees(ctx, notebook_id):
        raise NotFound("No such notebook.", field="id")


async def check_config(ctx: Ctx, config_id: str) -> str:
    """The config's name, if it is one of the organization's."""
    found = await ctx.one("api_config_in_org", ctx.mine(id=config_id))
    if found is None:
        raise BadRequest(
            "workloadConfigId is not a workload config of this organization.",
            code="unknown_reference",
            field="workloadConfigId",
        )
    return str(found["name"])


async def check_teams(ctx: Ctx, team_ids: list[str]) -> list[str]:
    unique = list(dict.fromkeys(team_ids))
    found = {r["id"] for r in await ctx.all("api_teams_in_org", ctx.mine(ids=unique))}
    for i, team_id in enumerate(team_ids):
        if team_id not in found:
            raise BadRequest(
                "teamIds names a team that is not in this organization.",
                code="unknown_reference",
                field=f"teamIds[{i}]",
            )
    return unique


async def enqueue(ctx: Ctx, notebook_id: str) -> None:
    await enqueue_reconcile(ctx.conn, [notebook_id], asked=True)


async def set_status(
    ctx: Ctx,
    notebook_id: str,
    status: str,
    message: str,
    *,
    reason: str | None = None,
    record_unchanged: bool = False,
) -> None:
    """`message` is shown on the notebook; `reason` (else `message`) in its history."""
    await ctx.run(
        "set_status",
        {
            "id": notebook_id,
            "status": status,
            "status_message": message,
            "reason": reason,
            "actor": ctx.me.member_id,
            "now": ctx.now,
            "record_unchanged": record_unchanged,
        },
    )


async def record_change(ctx: Ctx, notebook_id: str, row: dict[str, Any], reason: str) -> None:
    """A member's change that leaves the status as it is (an edit, a share, a
    hand-over), in the notebook's history beside its status changes: who
    changed what is as much the history as who stopped it. `row` is the
    notebook as locked (`locked`)."""
    await set_status(
        ctx, notebook_id, row["status"], row["status_message"], reason=reason, record_unchanged=True
    )


def _timeout(seconds: int) -> str:
    return "never" if seconds == 0 else duration(seconds)


def edit_summary(
    before: dict[str, Any], body: dict[str, Any], configs: dict[str, str]
) -> str | None:
    """What a PATCH changed, in a member's words ("Renamed from “Old”; idle
    timeout 1 h → 2 h"); None when it changed nothing. `before` is the row,
    `configs` names the workload configs by id. The description's text is
    not repeated (it may be long): only that it changed."""
    parts = []
    if "name" in body and body["name"] != before["name"]:
        parts.append(f"renamed from “{before['name']}”")
    if "description" in body and body["description"] != before["description"]:
        parts.append("description edited")
    for t in TIMEOUTS:
        if t.field in body and body[t.field] != before[t.column]:
            parts.append(f"{t.words} {_timeout(before[t.column])} → {_timeout(body[t.field])}")
    old_config, new_config = before["workload_config_id"], body.get("workloadConfigId")
    if new_config is not None and new_config != old_config:
        parts.append(f"workload config {configs[old_config]} → {configs[new_config]}")
    if not parts:
        return None
    text = "; ".join(parts)
    return text[0].upper() + text[1:]


async def list_notebooks(ctx: Ctx) -> web.Response:
    statuses = status_filter(ctx)
    owner_id = owner_filter(ctx)
    q = query_search(ctx.request)
    scope = list_scope(ctx, statuses=statuses, owner_id=owner_id, q=q)
    row = await notebook_page(ctx, st=statuses, owner_id=owner_id, q=q, **page_params(ctx, scope))
    return normalized_list(ctx, scope, row)


# A create's body, validated, and the file its `source` converts to: made
# before its transaction.
CREATE_BODY = web.RequestKey("create_body", dict)
SEED = web.RequestKey("seed", str)


async def convert_source(request: web.Request) -> None:
    """Bad input first: a body that does not validate, or a file that cannot
    be read, is the client's to mend, before anything is looked up."""
    body = request[CREATE_BODY] = await read_body(request, CREATE_SCHEMA)
    if "source" in body and "copyOf" in body:
        raise BadRequest(
            "A notebook starts from a file (source) or from another notebook's (copyOf), not both.",
            code="invalid_value",
            field="copyOf",
        )
    if "source" in body:
        request[SEED] = await request.app[sources.CONVERTER].convert(body["source"])


@prepared(convert_source)
async def create_notebook(ctx: Ctx) -> web.Response:
    body = ctx.request[CREATE_BODY]
    seed = ctx.request.get(SEED)
    if "copyOf" in body:
        seed = await copied_file(ctx, body["copyOf"])
    await check_config(ctx, body["workloadConfigId"])
    await check_config_usable(ctx, body["workloadConfigId"], ctx.me.member_id)
    team_ids = await check_teams(ctx, body.get("teamIds", []))
    timeouts = timeouts_within_caps(body, await organization_limits(ctx))
    notebook_id = new_id()
    await ctx.run(
        "api_insert_notebook",
        ctx.mine(
            id=notebook_id,
            workload_config_id=body["workloadConfigId"],
            name=body["name"],
            description=body.get("description", ""),
            idle_timeout_seconds=timeouts["idleTimeoutSeconds"],
            detached_timeout_seconds=timeouts["detachedTimeoutSeconds"],
        ),
    )
    if seed is not None:
        await ctx.run("api_insert_seed", {"notebook_id": notebook_id, "source": seed})
    if team_ids:
        await ctx.run("api_link_teams", ctx.mine(notebook_id=notebook_id, team_ids=team_ids))
    return await describe_notebook(ctx, notebook_id, 201)


async def kept_file(
    ctx: Ctx, notebook_id: str, version: int | None = None
) -> dict[str, Any] | None:
    """The notebook's name and kept file (its newest version, or `version`;
    before its first run, the file it was brought as) with its time, if the
    caller may see it (docs/api.md "A notebook's file"). Content None: none."""
    return await ctx.one(
        "api_notebook_file",
        ctx.mine(id=notebook_id, see_all=ctx.me.organization_admin, version=version),
    )


async def copied_file(ctx: Ctx, notebook_id: str) -> str:
    """A new notebook's first file, from the copy kept of another (`copyOf`
    on create): one the caller may see, its newest version."""
    row = await kept_file(ctx, notebook_id)
    if row is None:
        raise BadRequest(
            "copyOf names no notebook you can see.", code="unknown_reference", field="copyOf"
        )
    if row["content"] is None:
        raise Conflict(
            "That notebook has no copy of its file to start from yet: one is kept once it has run.",
            code="file_not_kept",
            field="copyOf",
        )
    return str(row["content"])


async def get_notebook(ctx: Ctx) -> web.Response:
    response = await describe_notebook(ctx, path_id(ctx.request, "id"))
    if_none_match = ctx.request.headers.get("If-None-Match")
    if if_none_match is not None and etag_listed(
        if_none_match, response.headers["ETag"], weak=True
    ):
        return web.Response(status=304, headers={"ETag": response.headers["ETag"]})
    return response


async def check_if_match(ctx: Ctx, notebook_id: str) -> None:
    """412 when an `If-Match` does not name the notebook's current ETag
    (strong comparison); called with its row locked, so it stays current."""
    if_match = ctx.request.headers.get("If-Match")
    if if_match is None:
        return
    current = await notebook_page(ctx, notebook_id=notebook_id)
    if not etag_listed(if_match, etag_of(current), weak=False):
        raise PreconditionFailed(
            "The notebook changed since that ETag was read.",
            code="etag_mismatch",
            field="If-Match",
        )


async def update_notebook(ctx: Ctx) -> web.Response:
    notebook_id = path_id(ctx.request, "id")
    row = await locked(ctx, notebook_id, MANAGE)
    body = await read_body(ctx.request, UPDATE_SCHEMA)
    await check_if_match(ctx, notebook_id)
    config_id = body.get("workloadConfigId")
    configs: dict[str, str] = {}
    if config_id is not None and config_id != row["workload_config_id"]:
        if row["status"] not in CONFIG_CHANGEABLE:
            raise Conflict(
                "The workload config can change only while the notebook is stopped or failed.",
                code="notebook_not_stopped",
            )
        configs[config_id] = await check_config(ctx, config_id)
        old = await ctx.one("api_config_name", {"id": row["workload_config_id"]})
        configs[row["workload_config_id"]] = old["name"] if old else row["workload_config_id"]
    if any(t.field in body for t in TIMEOUTS):
        timeouts_within_caps(body, await organization_limits(ctx), row)
    owner_id = await hand_on(ctx, notebook_id, row, body.get("memberId"))
    if configs:
        # For its owner as this edit leaves it (a hand-over in the same
        # request): a refusal rolls the hand-over back with the rest.
        await check_config_usable(ctx, config_id, owner_id or row["member_id"])
    await ctx.run(
        "api_update_notebook",
        ctx.mine(
            id=notebook_id,
            name=body.get("name"),
            description=body.get("description"),
            idle_timeout_seconds=body.get("idleTimeoutSeconds"),
            detached_timeout_seconds=body.get("detachedTimeoutSeconds"),
            workload_config_id=config_id,
            owner_id=owner_id,
        ),
    )
    # After the update: the event keeps the name the edit left (a rename's
    # event names the notebook by its new name, and says the old one).
    edited = edit_summary(row, body, configs)
    if edited is not None:
        await record_change(ctx, notebook_id, row, edited)
    # Timeouts and config are desired state the reconciler acts on.
    if any(k in body for k in ("workloadConfigId", "idleTimeoutSeconds", "detachedTimeoutSeconds")):
        await enqueue(ctx, notebook_id)
    return await describe_notebook(ctx, notebook_id)


async def hand_on(
    ctx: Ctx, notebook_id: str, row: dict[str, Any], owner_id: str | None
) -> str | None:
    """The notebook's new owner, checked, its hand-over in the history; None
    when the owner stays. Only org admins give a notebook away: its cost
    moves with it (running limits count its owner's), so an owner handing
    one to a colleague while keeping access through a team would run it on
    the colleague's slots without their agreement (a review found it); and
    a team admin taking one would take its owner's edit."""
    if owner_id is None or owner_id == row["member_id"]:
        return None
    if not ctx.me.organization_admin:
        raise Forbidden(
            "Only organization admins hand a notebook on; its owner may offer it to a colleague,"
            " who accepts it."
        )
    found = await ctx.one(
        "api_new_owner", ctx.mine(owner_id=owner_id, old_owner_id=row["member_id"])
    )
    if found is None:
        raise BadRequest(
            "The new owner is not an active member of this organization.",
            code="unknown_reference",
            field="memberId",
        )
    if holds_slot(row):  # from now on the new owner's
        await check_running_limits(ctx, owner_id, organization=False, who=found["name"])
    await record_change(ctx, notebook_id, row, handed_on(found))
    # Its owner's offer goes with their ownership (it would come back to life
    # were the notebook ever handed back to them).
    await ctx.run("api_delete_offers", {"ids": [notebook_id]})
    return owner_id


def holds_slot(row: dict[str, Any]) -> bool:
    """A notebook counted against its owner's running limit (api_running_counts)."""
    return row["desired_state"] == "running" and row["status"] in STOPPABLE


def member_label(name: str, email: str) -> str:
    """A member as the history names them: names are not unique; emails are."""
    return f"{name} ({email})"


def handed_on(found: dict[str, Any]) -> str:
    """A hand-over as the history says it (api_new_owner's row)."""
    before = member_label(found["old_name"], found["old_email"])
    return f"Handed on from {before} to {member_label(found['name'], found['email'])}"


HAND_ON_ALL_SCHEMA = obj({"memberId": ID_SCHEMA}, required=("memberId",))


async def hand_on_all(ctx: Ctx) -> web.Response:
    """Every notebook a member owns to another (org admins): someone leaving
    owns dozens, one dialog each was an afternoon. Each says so in its
    history; their running slots move together, under the new owner's limit."""
    from_id = path_id(ctx.request, "member")
    if not ctx.me.organization_admin:
        raise Forbidden("Only organization admins hand notebooks on to another owner.")
    body = await read_body(ctx.request, HAND_ON_ALL_SCHEMA)
    if await ctx.one("api_org_member", ctx.mine(id=from_id)) is None:
        raise NotFound("No such member.", field="member")
    owner_id = body["memberId"]
    if owner_id == from_id:
        raise BadRequest(
            "memberId names the member whose notebooks these are.",
            code="validation_failed",
            field="memberId",
        )
    rows = await ctx.all("api_lock_owned_notebooks", ctx.mine(owner_id=from_id))
    found = await ctx.one("api_new_owner", ctx.mine(owner_id=owner_id, old_owner_id=from_id))
    if found is None:
        raise BadRequest(
            "The new owner is not an active member of this organization.",
            code="unknown_reference",
            field="memberId",
        )
    slots = sum(1 for row in rows if holds_slot(row))
    if slots:
        await check_running_limits(
            ctx, owner_id, organization=False, who=found["name"], slots=slots
        )
    for row in rows:
        await record_change(ctx, row["id"], row, handed_on(found))
    ids = [row["id"] for row in rows]
    await ctx.run("api_delete_offers", {"ids": ids})
    await ctx.run("api_hand_on_notebooks", ctx.mine(new_owner_id=owner_id, ids=ids))
    ctx.audit_detail["handedOn"] = len(ids)
    return web.json_response({"handedOn": len(ids)})


async def delete_notebook(ctx: Ctx) -> web.Response:
    notebook_id = path_id(ctx.request, "id")
    await locked(ctx, notebook_id, ADMINISTER)
    await check_if_match(ctx, notebook_id)
    await ctx.run("api_request_delete", ctx.mine(id=notebook_id))
    # Who deleted it stays in the history (events outlive the row), as for a
    # stop, also when a stop was already under way.
    await set_status(ctx, notebook_id, Status.STOPPING, DELETE_REQUESTED, record_unchanged=True)
    await enqueue(ctx, notebook_id)
    return no_content()


def _notebooks(n: int) -> str:
    return f"{n} notebook" if n == 1 else f"{n} notebooks"


def tighter(platform: int, own: int) -> int:
    """The limit that applies of the operator's and the organization's, 0
    being none: the smaller of those set (pure)."""
    limits = [limit for limit in (platform, own) if limit]
    return min(limits) if limits else 0


async def check_running_limits(
    ctx: Ctx,
    owner_id: str,
    *,
    organization: bool = True,
    who: str | None = None,
    slots: int = 1,
) -> None:
    """409 running_limit_reached when `slots` more running notebooks would pass
    the owner's or the organization's limit (the tighter of the operator's
    settings and the organization's own; 0 = none). A start counts against
    the notebook's owner, whoever presses it: the owner is who the notebook's
    cost is attributed to (docs/api.md, "Running limits"). A hand-over moves
    slots within the organization (`organization=False`) to `who`, by name."""
    own = await organization_limits(ctx)
    per_member = tighter(ctx.settings.max_running_per_member, own["max_running_per_member"])
    per_org = tighter(ctx.settings.max_running_per_org, own["max_running"]) if organization else 0
    if not per_member and not per_org:
        return
    # Serialize with other starts for the same slots, organization first, then
    # member, so two starts cannot both take the last one. The count is a
    # later statement, so (read committed) it sees every start committed
    # before this one got the lock.
    if per_org:
        await ctx.run("api_lock_org_for_start", ctx.mine())
    if per_member:
        await ctx.run("api_lock_member_for_start", ctx.mine(owner_id=owner_id))
    counts = await ctx.one("api_running_counts", ctx.mine(owner_id=owner_id))
    assert counts is not None  # an aggregate always returns one row
    if per_member and counts["member_running"] + slots > per_member:
        if who is None:
            who = "You" if owner_id == ctx.me.member_id else "This notebook's owner"
        raise Conflict(
            f"{who} may run at most {_notebooks(per_member)} at once; stop one first.",
            code="running_limit_reached",
        )
    if per_org and counts["org_running"] + slots > per_org:
        raise Conflict(
            f"Your organization may run at most {_notebooks(per_org)} at once; stop one first.",
            code="running_limit_reached",
        )


async def start_notebook(ctx: Ctx) -> web.Response:
    notebook_id = path_id(ctx.request, "id")
    row = await locked(ctx, notebook_id, MANAGE)
    await read_body(ctx.request, obj({}))
    if row["status"] not in STARTABLE:
        raise Conflict(
            f"A {row['status']} notebook cannot be started; start works from stopped or failed.",
            code="notebook_not_startable",
        )
    await check_config_usable(ctx, row["workload_config_id"], row["member_id"])
    await check_running_limits(ctx, row["member_id"])
    await ctx.run(
        "api_request_start",
        ctx.mine(
            id=notebook_id,
            session_id=new_id(),
            session_token=secrets.token_urlsafe(32),
            deadline=ctx.now + timedelta(seconds=ctx.settings.start_deadline_seconds),
        ),
    )
    await set_status(ctx, notebook_id, "starting", "Start requested")
    await enqueue(ctx, notebook_id)
    return await describe_notebook(ctx, notebook_id, 202)


async def stop_notebook(ctx: Ctx) -> web.Response:
    notebook_id = path_id(ctx.request, "id")
    row = await locked(ctx, notebook_id, MANAGE)
    await read_body(ctx.request, obj({}))
    if row["status"] not in STOPPABLE:
        raise Conflict(
            f"A {row['status']} notebook cannot be stopped; stop works from "
            "starting, running, idle or detached.",
            code="notebook_not_stoppable",
        )
    await ctx.run("api_request_stop", ctx.mine(ids=[notebook_id]))
    await set_status(ctx, notebook_id, "stopping", STOP_REQUESTED)
    await enqueue(ctx, notebook_id)
    return await describe_notebook(ctx, notebook_id, 202)

"""Recently deleted notebooks (docs/api.md "Recently deleted"): what the
workers kept of each as it went (its file and settings, migration 0025),
listed, downloaded, brought back as a new notebook, or forgotten at once,
for NOTEBOOKS_TRASH_DAYS after it went. A delete by mistake is undone,
which JupyterHub, Kubeflow and SageMaker's notebook instances do not offer."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.config_teams import check_config_usable
from api.context import Ctx
from api.errors import BadRequest, Conflict, NotFound
from api.notebook_files import file_response, history_time
from api.notebooks import check_config, describe_notebook, set_status
from api.org_limits import TIMEOUTS, organization_limits
from api.responses import no_content, page_params, plain_list
from api.validation import ID_SCHEMA, obj, path_id, read_body
from common.durations import capped
from common.ids import new_id

BRING_BACK_SCHEMA = obj({"workloadConfigId": ID_SCHEMA})
NO_SUCH = "No such deleted notebook: it is kept for a while after its delete, then forgotten."


def _scope(ctx: Ctx) -> dict[str, Any]:
    return ctx.mine(org_admin=ctx.me.organization_admin)


async def list_trash(ctx: Ctx) -> web.Response:
    scope = f"trash:{ctx.me.organization_id}:{ctx.me.member_id}"  # a marker is one reader's
    row = await ctx.one("api_trash_page", {**_scope(ctx), **page_params(ctx, scope)})
    assert row is not None  # an aggregate: one row
    return plain_list(ctx, scope, row, included=f'{{"members":{row["members"]}}}')


async def _item(ctx: Ctx) -> dict[str, Any]:
    """The trash row of the path's notebook, locked; 404 unless the caller
    may see it (who could delete it: its owner then, an org admin, an admin
    of a team it was shared with)."""
    row = await ctx.one("api_trash_item", {**_scope(ctx), "id": path_id(ctx.request, "id")})
    if row is None:
        raise NotFound(NO_SUCH, field="id")
    return row


async def trashed_file(ctx: Ctx) -> web.StreamResponse:
    row = await ctx.one("api_trash_file", {**_scope(ctx), "id": path_id(ctx.request, "id")})
    if row is None:
        raise NotFound(NO_SUCH, field="id")
    return file_response(ctx, str(row["content"]), row["file_kept_at"], str(row["name"]))


async def bring_back(ctx: Ctx) -> web.Response:
    """A new notebook from a deleted one: its owner's again (the caller's,
    if they have left), stopped, with its file as its first start's."""
    row = await _item(ctx)
    body = await read_body(ctx.request, BRING_BACK_SCHEMA)
    config_id = body.get("workloadConfigId") or str(row["workload_config_id"])
    try:
        await check_config(ctx, config_id)  # key-share-locked: not deleted meanwhile
    except BadRequest:
        if "workloadConfigId" in body:
            raise
        raise Conflict(
            "Its workload config has been deleted since: choose another (workloadConfigId).",
            code="config_gone",
            field="workloadConfigId",
        ) from None
    owner = await ctx.one(
        "api_new_owner", ctx.mine(owner_id=row["member_id"], old_owner_id=row["member_id"])
    )
    owner_id = ctx.me.member_id if owner is None else str(owner["id"])
    await check_config_usable(ctx, config_id, owner_id)
    caps = await organization_limits(ctx)
    notebook_id = new_id()
    await ctx.run(
        "api_bring_back",
        ctx.mine(
            id=row["notebook_id"],
            new_id=notebook_id,
            owner_id=owner_id,
            workload_config_id=config_id,
            # As a create's: under the caps its organization has now.
            **{t.column: capped(row[t.column], caps[t.cap_column]) for t in TIMEOUTS},
        ),
    )
    await set_status(
        ctx,
        notebook_id,
        "stopped",
        "",
        reason=f"Brought back from Recently deleted: {row['notebook_id']}, deleted"
        f" {history_time(row['deleted_at'])}",
        record_unchanged=True,
    )
    return await describe_notebook(ctx, notebook_id, 201)


async def forget_trashed(ctx: Ctx) -> web.Response:
    """Gone for good now, not at the end of its days (its file held a key)."""
    row = await _item(ctx)
    await ctx.run("api_forget_trashed", {"id": row["notebook_id"]})
    return no_content()

"""A notebook's logs: the output of its Sail and Marimo as a worker last
read it (docs/api.md "A notebook's logs"), kept as it stops and read again
when a member asks. The API reaches no runtime: an ask is a job."""

from __future__ import annotations

from aiohttp import web

from api.context import Ctx
from api.errors import Conflict, Forbidden, NotFound
from api.notebooks import MANAGE, locked
from api.responses import raw_json
from api.validation import obj, path_id, read_body
from common import notebook_logs
from common.jobs import enqueue_log_capture
from common.statuses import STOPPABLE

NOT_YOURS = (
    "A team viewer does not read a notebook's logs: they can hold what its code printed, and"
    " what its owner's and editors' queries said."
)


async def get_notebook_logs(ctx: Ctx) -> web.Response:
    notebook_id = path_id(ctx.request, "id")
    return await logs_answer(ctx, notebook_id)


async def logs_answer(ctx: Ctx, notebook_id: str, status: int = 200) -> web.Response:
    """The logs as kept, for whoever may manage the notebook."""
    row = await ctx.one(
        "api_notebook_logs", ctx.mine(id=notebook_id, org_admin=ctx.me.organization_admin)
    )
    if row is None or row["access"] is None:
        raise NotFound("No such notebook.", field="id")
    if row["access"] not in MANAGE:
        raise Forbidden(NOT_YOURS)
    return raw_json(str(row["body"]), status=status)


async def ask_notebook_logs(ctx: Ctx) -> web.Response:
    """A worker is asked to read them now (202): the answer says `waiting`
    until it has (a page polls GET). An ask while one made in the last few
    seconds still waits is the same ask."""
    notebook_id = path_id(ctx.request, "id")
    row = await locked(ctx, notebook_id, MANAGE)
    await read_body(ctx.request, obj({}))
    if row["status"] not in STOPPABLE:
        raise Conflict(
            f"A {row['status']} notebook has no Sail or Marimo to read the output of: its logs"
            " were read as it stopped.",
            code="notebook_not_running",
        )
    asked = await ctx.one(
        "api_ask_notebook_logs",
        {"id": notebook_id, "now": ctx.now, "ask_seconds": notebook_logs.ASK_SECONDS},
    )
    if asked is not None:
        await enqueue_log_capture(ctx.conn, notebook_id)
    return await logs_answer(ctx, notebook_id, status=202)

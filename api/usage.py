"""The organization's usage, for its org admins: how long its notebooks held
servers in a window of time, by owner and by notebook, read from their
history (docs/api.md "Usage"). What a data team's lead is asked at the end of
the month ("who ran what, for how long?"), which JupyterHub and Kubeflow
leave to the cluster's billing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from api.context import Ctx
from api.errors import BadRequest
from api.responses import raw_json
from api.teams import require_org_admin

MAX_WINDOW = timedelta(days=366)
TOP_NOTEBOOKS = 100

TIME_PARAMETER: dict[str, Any] = {
    "required": False,
    "schema": {"type": "string", "format": "date-time"},
}
FROM_PARAMETER = {
    **TIME_PARAMETER,
    "description": "The window's start (RFC 3339, with its offset); default: the start of "
    "this month, UTC.",
}
TO_PARAMETER = {
    **TIME_PARAMETER,
    "description": "The window's end (RFC 3339); default and at most: now.",
}


def query_time(ctx: Ctx, name: str) -> datetime | None:
    raw = ctx.request.query.get(name)
    if raw is None:
        return None
    bad = BadRequest(
        f"{name} must be a time such as 2026-11-01T00:00:00Z, with its offset.",
        code="validation_failed",
        field=name,
    )
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise bad from None
    if when.tzinfo is None:
        raise bad
    return when


def window(ctx: Ctx) -> tuple[datetime, datetime]:
    """[from, until): until is `to` or now, whichever is first (nothing
    after now has been used yet). A pure decision on the query and the clock."""
    now = ctx.now
    start = query_time(ctx, "from")
    end = query_time(ctx, "to")
    if start is None:  # the month `to` falls in (up to now: this month)
        last = now if end is None else end - timedelta(microseconds=1)
        start = last.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if end is None:
        end = now
    if start >= end:
        raise BadRequest("from must be before to.", code="validation_failed", field="from")
    if end - start > MAX_WINDOW:
        raise BadRequest(
            "The window may span at most 366 days.", code="validation_failed", field="to"
        )
    return start, min(end, now)


async def org_usage(ctx: Ctx) -> web.Response:
    require_org_admin(ctx)
    start, until = window(ctx)
    body: dict[str, Any] = {"from": start.isoformat(), "to": until.isoformat()}
    if start >= until:  # a window still to come: nothing used in it yet
        row: dict[str, Any] = {
            "seconds": 0,
            "notebooks": 0,
            "by_member": "[]",
            "by_notebook": "[]",
            "members": "[]",
        }
    else:
        found = await ctx.one(
            "api_org_usage", ctx.mine(**{"from": start, "until": until, "top": TOP_NOTEBOOKS})
        )
        assert found is not None  # an aggregate always returns one row
        row = found
    head = json.dumps({**body, "seconds": round(row["seconds"]), "notebooks": row["notebooks"]})
    text = (
        f'{head[:-1]},"byMember":{row["by_member"]},"byNotebook":{row["by_notebook"]},'
        f'"included":{{"members":{row["members"]}}}}}'
    )
    return raw_json(text)

"""Search the code of the notebooks a member may see (docs/api.md "Searching
notebooks' code"): the copy of each notebook's file the platform keeps in
PostgreSQL, so a stopped notebook's code is found without starting it, and
a team finds which notebook reads a table before it changes it."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from api.context import Ctx
from api.errors import BadRequest
from api.responses import raw_json

SHOWN = 50  # notebooks an answer lists
LINE_CHARS = 200  # of a matching line, shown
MIN_CHARS, MAX_CHARS = 2, 200

Q_PARAMETER: dict[str, Any] = {
    "required": True,
    "description": f"The text to find ({MIN_CHARS} to {MAX_CHARS} characters), as written,"
    " whatever its case: not a pattern.",
    "schema": {"type": "string", "minLength": MIN_CHARS, "maxLength": MAX_CHARS},
}


def wanted(ctx: Ctx) -> str:
    raw = ctx.request.query.get("q", "")
    if not (len(raw.strip()) >= MIN_CHARS and len(raw) <= MAX_CHARS):
        raise BadRequest(
            f"q is the text to find: {MIN_CHARS} to {MAX_CHARS} characters.",
            code="invalid_value",
            field="q",
        )
    if "\n" in raw or "\x00" in raw:
        raise BadRequest("q is one line of text.", code="invalid_value", field="q")
    return raw


async def search_code(ctx: Ctx) -> web.Response:
    q = wanted(ctx)
    row = await ctx.one(
        "api_code_search",
        ctx.mine(
            q=q,
            see_all=ctx.me.organization_admin,
            limit=SHOWN,
            line_chars=LINE_CHARS,
        ),
    )
    assert row is not None  # an aggregate: one row
    items = json.loads(row["items"])
    more = len(items) > SHOWN
    body = {"q": q, "items": items[:SHOWN], "more": more}
    return raw_json(json.dumps(body, ensure_ascii=False))

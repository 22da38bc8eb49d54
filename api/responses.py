"""Response helpers. List and describe bodies arrive from PostgreSQL as JSON
text and are spliced together here without re-parsing."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aiohttp import web

from api.context import Ctx
from api.validation import query_limit

JSON = "application/json"


def json_response(body: object, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type=JSON)


def raw_json(text: str, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=text, content_type=JSON, headers=headers)


def no_content() -> web.Response:
    return web.Response(status=204)


def page_params(ctx: Ctx, scope: str) -> dict[str, Any]:
    """limit/marker query parameters as keyset query params."""
    limit = query_limit(ctx.request)
    marker = ctx.request.query.get("marker")
    after_at, after_id = (None, None)
    if marker is not None:
        after_at, after_id = ctx.markers.decode(scope, marker)
    return {"limit": limit, "fetch": limit + 1, "after_at": after_at, "after_id": after_id}


def marker_json(ctx: Ctx, scope: str, row: dict[str, Any]) -> str:
    if not row["more"] or row["last_at"] is None:
        return ""
    return ',"marker":' + json.dumps(ctx.markers.encode(scope, row["last_at"], row["last_id"]))


def plain_list(
    ctx: Ctx,
    scope: str,
    row: dict[str, Any],
    included: str | None = None,
    *,
    capped: bool = False,
) -> web.Response:
    """`{"total", "items", "included"?, "totalCapped"?, "marker"?}` for the
    supporting endpoints; `included` is JSON text already (the history's
    members); `capped`: `total` is a floor (the activity's count stops)."""
    extra = "" if included is None else f',"included":{included}'
    if capped:
        extra += ',"totalCapped":true'
    text = f'{{"total":{row["total"]},"items":{row["items"]}{extra}{marker_json(ctx, scope, row)}}}'
    return raw_json(text)


def included_json(row: dict[str, Any]) -> str:
    return (
        f'{{"notebooks":{row["notebooks"]},"teams":{row["teams"]},'
        f'"workloadConfigs":{row["configs"]},"members":{row["members"]}}}'
    )


def normalized_list(ctx: Ctx, scope: str, row: dict[str, Any]) -> web.Response:
    text = (
        f'{{"total":{row["total"]},"items":{row["items"]},'
        f'"included":{included_json(row)}{marker_json(ctx, scope, row)}}}'
    )
    return raw_json(text)


def describe_json(row: dict[str, Any]) -> str:
    item = row["items"][1:-1]  # the page holds exactly one item: unwrap the array
    return f'{{"item":{item},"included":{included_json(row)}}}'


def _etag(text: str) -> str:
    return f'"{hashlib.sha256(text.encode()).hexdigest()[:32]}"'


def etag_of(row: dict[str, Any]) -> str:
    # The whole body: a renamed config in `included` must not be answered 304.
    return _etag(describe_json(row))


def etag_listed(header: str, etag: str, *, weak: bool) -> bool:
    """Whether an If-Match / If-None-Match list names `etag` (or is `*`).
    If-None-Match compares weakly (RFC 9110 13.1.2): W/"x" matches "x"."""
    tags = [t.strip() for t in header.split(",")]
    if weak:
        tags = [t.removeprefix("W/") for t in tags]
    return "*" in tags or etag in tags


def describe(row: dict[str, Any], status: int = 200) -> web.Response:
    """`{"item", "included"}` from a one-notebook page; carries an ETag."""
    text = describe_json(row)
    return raw_json(text, status, headers={"ETag": _etag(text)})

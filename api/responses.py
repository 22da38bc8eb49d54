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


def plain_list(ctx: Ctx, scope: str, row: dict[str, Any]) -> web.Response:
    """`{"total", "items", "marker"?}` for the supporting endpoints."""
    text = f'{{"total":{row["total"]},"items":{row["items"]}{marker_json(ctx, scope, row)}}}'
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


def etag_of(row: dict[str, Any]) -> str:
    digest = hashlib.sha256((row["items"] + row["notebooks"]).encode()).hexdigest()[:32]
    return f'"{digest}"'


def describe(row: dict[str, Any], status: int = 200) -> web.Response:
    """`{"item", "included"}` from a one-notebook page; carries an ETag."""
    item = row["items"][1:-1]  # the page holds exactly one item: unwrap the array
    text = f'{{"item":{item},"included":{included_json(row)}}}'
    return raw_json(text, status, headers={"ETag": etag_of(row)})

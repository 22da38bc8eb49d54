"""A notebook's file, downloaded: the copy the reconciler keeps of it
(docs/api.md "A notebook's file"), so that a stopped notebook's code is
read without starting it."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import quote

from aiohttp import web

from api.context import Ctx
from api.errors import BadRequest, Conflict, NotFound
from api.responses import etag_listed
from api.validation import path_id

MEDIA_TYPE = "text/x-python"
# A download's file name is the notebook's, cut to what every browser and
# shell takes as it is; `filename*` carries the name as written.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
NAME_CHARS = 100


def _stem(name: str) -> str:
    """The notebook's name without a `.py` it may already end with."""
    name = name.strip()
    return name[:-3] if name.lower().endswith(".py") else name


def download_name(name: str) -> str:
    """`name` as a file name: ASCII letters, digits, `.`, `_` and `-`, no
    leading dot (a hidden file), never empty; `.py` added."""
    plain = _UNSAFE.sub("_", _stem(name)).strip("._-")[:NAME_CHARS].rstrip("._-")
    return f"{plain or 'notebook'}.py"


def disposition(name: str) -> str:
    """An attachment, named for older clients and, in full, for the rest
    (RFC 6266, RFC 8187); no `.py.py` for a notebook named `etl.py`."""
    full = quote(f"{_stem(name) or 'notebook'}.py", safe="")
    return f"attachment; filename=\"{download_name(name)}\"; filename*=UTF-8''{full}"


NOT_KEPT = (
    "No copy of this notebook's file is kept yet: one is taken while it runs and as it stops."
)


async def _kept(ctx: Ctx, notebook_id: str) -> dict[str, object] | None:
    """The notebook's name, kept file and its time, if the caller may see it."""
    return await ctx.one(
        "api_notebook_file", ctx.mine(id=notebook_id, see_all=ctx.me.organization_admin)
    )


async def copied_file(ctx: Ctx, notebook_id: str) -> str:
    """A new notebook's first file, from the copy kept of another (`copyOf`
    on create): one the caller may see, as it was last copied."""
    row = await _kept(ctx, notebook_id)
    if row is None:
        raise BadRequest(
            "copyOf names no notebook you can see.", code="unknown_reference", field="copyOf"
        )
    if row["content"] is None:
        raise Conflict(
            f"Nothing to copy yet: {NOT_KEPT} Once it has run, it can be copied.",
            code="file_not_kept",
            field="copyOf",
        )
    return str(row["content"])


async def get_notebook_file(ctx: Ctx) -> web.StreamResponse:
    row = await _kept(ctx, path_id(ctx.request, "id"))
    if row is None:
        raise NotFound("No such notebook.", field="id")
    if row["content"] is None:
        raise NotFound(NOT_KEPT, code="file_not_kept")
    content, kept_at = str(row["content"]), row["kept_at"]
    assert isinstance(kept_at, datetime)
    etag = f'"{hashlib.sha256(content.encode()).hexdigest()[:32]}"'
    headers = {
        "ETag": etag,
        "Last-Modified": format_datetime(kept_at.astimezone(UTC), usegmt=True),
        "Content-Disposition": disposition(str(row["name"])),
    }
    if_none_match = ctx.request.headers.get("If-None-Match")
    if if_none_match is not None and etag_listed(if_none_match, etag, weak=True):
        return web.Response(status=304, headers={"ETag": etag})
    return web.Response(text=content, content_type=MEDIA_TYPE, charset="utf-8", headers=headers)

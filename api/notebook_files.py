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
from api.errors import BadRequest, Conflict, Forbidden, NotFound
from api.notebooks import ADMINISTER, MANAGE, kept_file, locked, record_change
from api.responses import etag_listed, no_content, raw_json
from api.validation import obj, path_id, read_body
from common import notebook_file
from common.statuses import CONFIG_CHANGEABLE

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
_VERSION = re.compile(r"[1-9][0-9]{0,17}")  # a bigint's digits
VERSION_PARAMETER: dict[str, object] = {
    "required": False,
    "description": "An earlier version of the file (a `version` from its versions' list);"
    " absent, the newest.",
    "schema": {"type": "string", "pattern": f"^{_VERSION.pattern}$"},
}


def version_asked(ctx: Ctx) -> int | None:
    raw = ctx.request.query.get("version")
    if raw is None:
        return None
    if not _VERSION.fullmatch(raw):
        raise BadRequest(
            "version is a version's number, from the file's versions.",
            code="invalid_value",
            field="version",
        )
    return int(raw)


async def check_versions_access(ctx: Ctx, notebook_id: str) -> None:
    """404 unless the caller sees the notebook; 403 for a team viewer, who
    reads the newest version only (as in the editor): an earlier one may hold
    what its owner took out, a key pasted and then removed."""
    row = await ctx.one(
        "api_notebook_role", ctx.mine(id=notebook_id, org_admin=ctx.me.organization_admin)
    )
    if row is None or row["access"] is None:
        raise NotFound("No such notebook.", field="id")
    if row["access"] not in MANAGE:
        raise Forbidden(
            "A team viewer reads the newest version of a notebook's file only: earlier ones may"
            " hold what its owner took out."
        )


async def get_notebook_file(ctx: Ctx) -> web.StreamResponse:
    notebook_id, version = path_id(ctx.request, "id"), version_asked(ctx)
    if version is not None:
        await check_versions_access(ctx, notebook_id)
    row = await kept_file(ctx, notebook_id, version)
    if row is None:
        raise NotFound("No such notebook.", field="id")
    if row["content"] is None and version is not None:
        raise NotFound(
            f"No such version of this notebook's file: the newest {notebook_file.VERSIONS}"
            " are kept.",
            field="version",
        )
    if row["content"] is None:
        raise NotFound(NOT_KEPT, code="file_not_kept")
    return file_response(ctx, str(row["content"]), row["kept_at"], str(row["name"]))


def file_response(ctx: Ctx, content: str, kept_at: datetime, name: str) -> web.Response:
    """A notebook's file as a download: named for the notebook, its time,
    an ETag of its content (304 to a matching If-None-Match)."""
    etag = f'"{hashlib.sha256(content.encode()).hexdigest()[:32]}"'
    headers = {
        "ETag": etag,
        "Last-Modified": format_datetime(kept_at.astimezone(UTC), usegmt=True),
        "Content-Disposition": disposition(name),
    }
    if_none_match = ctx.request.headers.get("If-None-Match")
    if if_none_match is not None and etag_listed(if_none_match, etag, weak=True):
        return web.Response(status=304, headers={"ETag": etag})
    return web.Response(text=content, content_type=MEDIA_TYPE, charset="utf-8", headers=headers)


async def list_file_versions(ctx: Ctx) -> web.Response:
    """The versions kept of the notebook's file, newest first: a cell deleted
    and then saved over is in an earlier one."""
    notebook_id = path_id(ctx.request, "id")
    await check_versions_access(ctx, notebook_id)
    return await versions_answer(ctx, notebook_id)


async def versions_answer(ctx: Ctx, notebook_id: str) -> web.Response:
    """The versions' list, for a caller already found to read it."""
    row = await ctx.one("api_notebook_file_versions", {"id": notebook_id})
    assert row is not None  # an aggregate: one row
    return raw_json(f'{{"total":{row["total"]},"items":{row["items"]}}}')


RESTORE_SCHEMA = obj(
    {
        "version": {
            "type": "string",
            "pattern": f"^{_VERSION.pattern}$",
            "description": "The version to restore, from the file's versions.",
        }
    },
    required=("version",),
)


def history_time(at: datetime) -> str:
    """A time as a history's reason says it: UTC, to the minute."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


async def restore_file_version(ctx: Ctx) -> web.Response:
    """An earlier version made the notebook's file again (docs/api.md
    "Restoring a version"): its newest version now, which its next start
    writes over the file in its storage. Only while it is stopped or failed:
    a running editor would save over it, and its stop's copy would come after."""
    notebook_id = path_id(ctx.request, "id")
    row = await locked(ctx, notebook_id, MANAGE)
    body = await read_body(ctx.request, RESTORE_SCHEMA)
    if row["status"] not in CONFIG_CHANGEABLE:
        raise Conflict(
            f"A {row['status']} notebook's file cannot be restored: stop it first (a version is"
            " restored while the notebook is stopped or failed, and written at its next start).",
            code="notebook_not_stopped",
        )
    found = await ctx.one(
        "api_restore_file_version",
        {
            "id": notebook_id,
            "version": int(body["version"]),
            "now": ctx.now,
            "keep": notebook_file.VERSIONS,
        },
    )
    if found is None:
        raise NotFound(
            f"No such version of this notebook's file: the newest {notebook_file.VERSIONS}"
            " are kept.",
            field="version",
        )
    await record_change(
        ctx,
        notebook_id,
        row,
        f"Restored the version of its file kept at {history_time(found['kept_at'])},"
        " for its next start",
    )
    return await versions_answer(ctx, notebook_id)  # its role was judged on the locked row


async def forget_file_versions(ctx: Ctx) -> web.Response:
    """Its owner, a team admin or an org admin drops every version but the
    newest (something secret was in the file), saying so in its history."""
    notebook_id = path_id(ctx.request, "id")
    row = await locked(ctx, notebook_id, ADMINISTER)
    gone = await ctx.one("api_forget_file_versions", {"id": notebook_id})
    assert gone is not None
    if gone["forgotten"]:
        n = gone["forgotten"]
        await record_change(
            ctx,
            notebook_id,
            row,
            f"Forgot {n} earlier version{'s' if n != 1 else ''} of its file",
        )
    return no_content()

"""The organization's usage, for its org admins: how long its notebooks held
servers in a window of time, by owner and by notebook, read from their
history (docs/api.md "Usage"). What a data team's lead is asked at the end of
the month ("who ran what, for how long?"), which JupyterHub and Kubeflow
leave to the cluster's billing. Its JSON names the 100 notebooks that ran
longest; its export (`/usage/export`, `/me/usage/export`) is every
notebook's line, as CSV."""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from api.context import Ctx
from api.errors import BadRequest
from api.responses import raw_json
from api.teams import require_org_admin
from common import usage_days

MAX_WINDOW = timedelta(days=366)
TOP_NOTEBOOKS = 100
HELD = usage_days.HELD  # the statuses counted, as the statements take them

TIME_PARAMETER: dict[str, Any] = {
    "required": False,
    "schema": {"type": "string", "format": "date-time"},
}
FROM_PARAMETER = {
    **TIME_PARAMETER,
    "description": "The window's start (RFC 3339, with its offset), before now; default: the "
    "start of the month (UTC) `to` falls in, or of this month.",
}
TO_PARAMETER = {
    **TIME_PARAMETER,
    "description": "The window's end (RFC 3339); default and at most: now.",
}


# RFC 3339's date-time, and no other of the forms `fromisoformat` takes
# (week dates, a space for the T, compact digits, offsets with seconds).
RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def query_time(ctx: Ctx, name: str) -> datetime | None:
    """`name`'s time, in UTC; None if not given. Sent as UTC, years 1970 to
    9998 only: PostgreSQL refuses offsets past ±15:59 that RFC 3339 allows,
    and the window's arithmetic must not overflow (a 500 either way)."""
    raw = ctx.request.query.get(name)
    if raw is None:
        return None
    bad = BadRequest(
        f"{name} must be an RFC 3339 time such as 2026-11-01T00:00:00Z (a + in an offset "
        "written %2B in a URL).",
        code="validation_failed",
        field=name,
    )
    if not RFC3339.fullmatch(raw):
        raise bad
    try:
        when = datetime.fromisoformat(raw.upper()).astimezone(UTC)
    except (ValueError, OverflowError):
        raise bad from None
    if not 1970 <= when.year <= 9998:
        raise bad
    return when


def window(ctx: Ctx) -> tuple[datetime, datetime]:
    """[from, until): `to` or now, whichever is first (nothing after now has
    been used yet). A pure decision on the query and the clock."""
    now = ctx.now
    start = query_time(ctx, "from")
    end = query_time(ctx, "to")
    if start is None:  # the month `to` falls in (up to now: this month)
        last = now if end is None else end - timedelta(microseconds=1)
        start = last.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    until = now if end is None else min(end, now)
    if end is not None and start >= end:
        raise BadRequest("from must be before to.", code="validation_failed", field="from")
    if start >= now:
        raise BadRequest(
            "from must be before now: nothing is used in a window still to come.",
            code="validation_failed",
            field="from",
        )
    if until - start > MAX_WINDOW:
        raise BadRequest(
            "The window may span at most 366 days.", code="validation_failed", field="to"
        )
    return start, until


async def org_usage(ctx: Ctx) -> web.Response:
    start, until, row = await org_report(ctx, TOP_NOTEBOOKS)
    return json_answer(start, until, row)


async def org_usage_export(ctx: Ctx) -> web.Response:
    """Every notebook's line, for a spreadsheet or a bill (the JSON answer
    names the 100 that ran longest)."""
    start, until, row = await org_report(ctx, None)
    return csv_answer(start, until, row, "usage")


async def my_usage(ctx: Ctx) -> web.Response:
    """Any member's own: how long the notebooks they own held servers (what
    their organization's report says of them, no more)."""
    start, until = window(ctx)
    return json_answer(start, until, await my_report(ctx, start, until, TOP_NOTEBOOKS))


async def my_usage_export(ctx: Ctx) -> web.Response:
    start, until = window(ctx)
    return csv_answer(start, until, await my_report(ctx, start, until, None), "my-usage")


async def org_report(ctx: Ctx, top: int | None) -> tuple[datetime, datetime, dict[str, Any]]:
    """The window and its report's row: its whole settled days from their
    roll-up (a day or two not rolled up yet, rolled up now), its partial
    edges from the history (common/usage_days.py); else the history alone.
    `top`: how many notebooks it lists (None: all)."""
    require_org_admin(ctx)
    start, until = window(ctx)
    span = usage_days.rolled_span(
        start, until, ctx.now, await usage_days.first_rollable_day(ctx.conn)
    )
    if span is None:
        return start, until, await report(ctx, "api_org_usage", start, until, top)
    first, end = span
    org = ctx.me.organization_id
    missing = await usage_days.missing_days(ctx.conn, org, first, end)
    if len(missing) > usage_days.IN_REPORT_DAYS:  # the housekeeping's, not this request's
        return start, until, await report(ctx, "api_org_usage", start, until, top)
    for day in missing:
        await usage_days.roll_up(ctx.conn, org, day, ctx.now)
    rolled = await usage_days.rolled_params(ctx.conn, org, start, until, span)
    return start, until, await report(ctx, "api_org_usage_rolled", start, until, top, **rolled)


async def my_report(ctx: Ctx, start: datetime, until: datetime, top: int | None) -> dict[str, Any]:
    return await report(ctx, "api_member_usage", start, until, top, owner=ctx.me.member_id)


async def report(
    ctx: Ctx, statement: str, start: datetime, until: datetime, top: int | None, **scope: Any
) -> dict[str, Any]:
    """The row of one of the statements (api_usage.sql: the organization's,
    read from the history or with its roll-up, one member's), which share
    their answer, each planned for its own indexes. A `top` of None is SQL's
    `limit null`: every notebook."""
    params = {"from": start, "until": until, "top": top, "held": HELD, **scope}
    row = await ctx.one(statement, ctx.mine(**params))
    assert row is not None  # an aggregate always returns one row
    return row


def json_answer(start: datetime, until: datetime, row: dict[str, Any]) -> web.Response:
    # The lists come as JSON text built by PostgreSQL: spliced in after the
    # scalars, not parsed and written again.
    head = json.dumps(
        {
            "from": start.isoformat(),
            "to": until.isoformat(),
            "seconds": round(row["seconds"]),
            "notebooks": row["notebooks"],
        }
    )
    text = (
        f'{head[:-1]},"byMember":{row["by_member"]},"byNotebook":{row["by_notebook"]},'
        f'"included":{{"members":{row["members"]}}}}}'
    )
    return raw_json(text)


CSV_MEDIA_TYPE = "text/csv"
CSV_COLUMNS = (
    "from",
    "to",
    "notebook_id",
    "notebook_name",
    "deleted",
    "owner_id",
    "owner_name",
    "owner_email",
    "seconds",
    "hours",
)


# What starts a formula, the full-width forms included (a spreadsheet may
# fold them), after what an importer may trim (white space, control codes).
FORMULA_STARTS = frozenset("=+-@\uff1d\ufe66\uff0b\ufe62\uff0d\ufe63\uff20")


def spreadsheet_cell(text: str) -> str:
    """A text a spreadsheet shows as text: one starting with = + - @ (after
    any white space or control codes) would be taken for a formula, a
    notebook's name running as `=HYPERLINK(...)` on its admin's machine
    (OWASP "CSV injection"): a ' in front keeps it a string."""
    lead = next((ch for ch in text if not (ch.isspace() or unicodedata.category(ch)[0] == "C")), "")
    return f"'{text}" if lead in FORMULA_STARTS or text[:1] in ("\t", "\r") else text


def usage_csv(start: datetime, until: datetime, row: dict[str, Any]) -> str:
    """One line per notebook, most used first, as the report counts them
    (RFC 4180: CRLF, quoted where needed; UTF-8, no byte-order mark)."""
    members = {m["id"]: m for m in json.loads(row["members"])}
    out = io.StringIO()
    lines = csv.writer(out, lineterminator="\r\n")
    lines.writerow(CSV_COLUMNS)
    window_from, window_to = start.isoformat(), until.isoformat()
    for n in json.loads(row["by_notebook"]):
        owner = members.get(n["memberId"] or "", {})
        lines.writerow(
            (
                window_from,
                window_to,
                n["notebookId"],
                spreadsheet_cell(n["name"] or ""),
                "true" if n["deleted"] else "false",
                n["memberId"] or "",
                spreadsheet_cell(owner.get("name") or ""),
                spreadsheet_cell(owner.get("email") or ""),
                n["seconds"],
                f"{n['seconds'] / 3600:.2f}",
            )
        )
    return out.getvalue()


def csv_answer(start: datetime, until: datetime, row: dict[str, Any], stem: str) -> web.Response:
    """The report as a download named for its window's days (its last one
    the day before an exclusive `to` at midnight, as the console says it)."""
    last = (until - timedelta(microseconds=1)).date()
    name = f"{stem}-{start.date().isoformat()}-to-{last.isoformat()}.csv"
    return web.Response(
        text=usage_csv(start, until, row),
        content_type=CSV_MEDIA_TYPE,
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )

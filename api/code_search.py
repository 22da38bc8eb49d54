"""Search the code of the notebooks a member may see (docs/api.md "Searching
notebooks' code"): the copy of each notebook's file the platform keeps in
PostgreSQL, so a stopped notebook's code is found without starting it, and
a team finds which notebook reads a table before it changes it.

A search reads every text it searches: it is bounded in bytes (the most
recently kept first, `partial` past the budget), in time (its statements'
own timeout) and in how many run at once in a process, so that members
searching cannot take the connections every other request needs."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from api.context import Ctx
from api.errors import BadRequest, Unavailable
from api.responses import raw_json

SHOWN = 50  # notebooks an answer lists
LINE_CHARS = 200  # of a matching line, shown
BEFORE_MATCH = 60  # of those, at most this many before the match
MIN_CHARS, MAX_CHARS = 2, 200
MAX_BYTES = 64 * 1024 * 1024  # of code a search reads, the most recently kept first
# Searches running at once in one API process take at most a quarter of its
# pool's connections (at least one); more: 503, a moment later. Each
# statement runs 5 s at most, or the operator's shorter timeout.
POOL_SHARE = 4
STATEMENT_SECONDS = 5
_running = 0


def at_once(pool_max: int) -> int:
    return max(1, pool_max // POOL_SHARE)


Q_PARAMETER: dict[str, Any] = {
    "required": True,
    "description": f"The text to find ({MIN_CHARS} to {MAX_CHARS} characters, at least"
    f" {MIN_CHARS} not spaces), as written, whatever its case: not a pattern.",
    "schema": {"type": "string", "minLength": MIN_CHARS, "maxLength": MAX_CHARS},
}


def wanted(ctx: Ctx) -> str:
    raw = ctx.request.query.get("q", "")
    if not (len(raw.strip()) >= MIN_CHARS and len(raw) <= MAX_CHARS):
        raise BadRequest(
            f"q is the text to find: {MIN_CHARS} to {MAX_CHARS} characters, at least"
            f" {MIN_CHARS} of them not spaces.",
            code="validation_failed",
            field="q",
        )
    if "\n" in raw or "\r" in raw or "\x00" in raw:
        raise BadRequest("q is one line of text.", code="validation_failed", field="q")
    return raw


def within_budget(candidates: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """The most recently kept texts up to MAX_BYTES (the first always), and
    whether any were left out."""
    chosen, total = [], 0
    for c in candidates:
        if chosen and total + c["bytes"] > MAX_BYTES:
            return chosen, True
        chosen.append(c)
        total += c["bytes"]
    return chosen, False


async def search_code(ctx: Ctx) -> web.Response:
    global _running
    q = wanted(ctx)
    if _running >= at_once(ctx.settings.db_pool_max):
        raise Unavailable(
            "Other searches of notebooks' code are running: search again in a moment.",
            code="search_busy",
            retry_after="1",
        )
    _running += 1
    try:
        async with ctx.conn.transaction():
            seconds = min(STATEMENT_SECONDS, ctx.settings.db_statement_timeout_seconds)
            await ctx.conn.execute(f"set local statement_timeout = '{int(seconds)}s'")
            candidates = await ctx.all(
                "api_code_search_candidates", ctx.mine(see_all=ctx.me.organization_admin)
            )
            chosen, partial = within_budget(candidates)
            files = [(i, c) for i, c in enumerate(chosen) if c["version"] is not None]
            seeds = [(i, c) for i, c in enumerate(chosen) if c["version"] is None]
            row = await ctx.one(
                "api_code_search",
                {
                    "q": q,
                    "versions": [c["version"] for _, c in files],
                    "version_ordinals": [i for i, _ in files],
                    "seeds": [c["id"] for _, c in seeds],
                    "seed_ordinals": [i for i, _ in seeds],
                    "limit": SHOWN,
                    "before": BEFORE_MATCH,
                    "line_chars": LINE_CHARS,
                },
            )
    finally:
        _running -= 1
    assert row is not None  # an aggregate: one row
    kept_at = {c["id"]: c["kept_at"] for c in chosen}  # as PostgreSQL writes times
    items = json.loads(row["items"])
    for item in items:
        item["keptAt"] = kept_at[item["notebookId"]]
    body = {
        "q": q,
        "items": items[:SHOWN],
        "more": len(items) > SHOWN,
        "partial": partial,
        "searched": len(chosen),
    }
    return raw_json(json.dumps(body, ensure_ascii=False))

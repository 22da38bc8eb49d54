"""The organization's usage by whole UTC day (migration 0026, docs/api.md
"Usage"): a settled day is read from the history once, kept in
`usage_days`, and read from there by every later report, so a window reads
from the history its partial edges only, and sums one row per notebook per
whole day it ran. Used by the workers' housekeeping (recent days, before
anyone asks) and the API (a report finding at most IN_REPORT_DAYS missing)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from common.statuses import HOLDS_SERVERS
from sql import query

# A day is settled this long after its end: an event stamped by a clock that
# lags lands in the history within it (status.sql never dates one before the
# notebook's last), and a day rolled up is never read from the history again.
SETTLE = timedelta(hours=1)
HELD = sorted(HOLDS_SERVERS)  # the statuses counted, as the statements take them
# A report rolls up at most this many missing days itself (a day of a large
# organization costs about a second, more than its share of one read of the
# whole window); past it, it reads the history alone, as before the
# roll-up. The housekeeping rolls a day up within minutes of its settling.
IN_REPORT_DAYS = 2
RECENT_DAYS = 366  # the housekeeping rolls up this many days back (a window's most), newest first


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def rolled_span(
    start: datetime, until: datetime, now: datetime, floor: date | None = None
) -> tuple[date, date] | None:
    """The whole UTC days [first, end) within [start, until) that are
    settled at `now`, none before `floor` (`usage_days_floor`); None if
    there is none (the window is read from the history alone). Pure."""
    start, until = start.astimezone(UTC), until.astimezone(UTC)
    first = start.date() if start == midnight(start.date()) else start.date() + timedelta(days=1)
    if floor is not None:
        first = max(first, floor)
    end = min(until.date(), (now.astimezone(UTC) - SETTLE).date())
    return (first, end) if first < end else None


async def first_rollable_day(conn: AsyncConnection[Any]) -> date | None:
    """The first day that may be rolled up (`usage_days_floor`)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query("usage_days_floor"))
        row = await cur.fetchone()
    return None if row is None else row["day"]


async def window_by_notebook(
    conn: AsyncConnection[Any], org_id: str, start: datetime, until: datetime
) -> dict[str, float]:
    """Each notebook's seconds in [start, until), read from the history."""
    params = {"org_id": org_id, "from": start, "until": until, "held": HELD}
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query("usage_window_by_notebook"), params)
        return {str(r["notebook_id"]): float(r["seconds"]) for r in await cur.fetchall()}


async def rolled_params(
    conn: AsyncConnection[Any],
    org_id: str,
    start: datetime,
    until: datetime,
    span: tuple[date, date],
) -> dict[str, Any]:
    """What api_org_usage_rolled takes beyond the window: its whole days
    `span` (`rolled_span`, rolled up), and each notebook's seconds in its
    partial days before and after them, read from the history."""
    first, end = span
    used: dict[str, float] = {}
    for a, b in ((start, midnight(first)), (midnight(end), until)):
        if a < b:
            for notebook_id, seconds in (await window_by_notebook(conn, org_id, a, b)).items():
                used[notebook_id] = used.get(notebook_id, 0.0) + seconds
    return {
        "first_day": first,
        "end_day": end,
        "edge_ids": list(used),
        "edge_seconds": list(used.values()),
    }


async def roll_up(conn: AsyncConnection[Any], org_id: str, day: date, now: datetime) -> None:
    """Keep `day`'s seconds by notebook (once: a day another writer kept
    first stays as it kept it)."""
    used = await window_by_notebook(conn, org_id, midnight(day), midnight(day + timedelta(days=1)))
    await conn.execute(
        query("usage_day_keep"),
        {
            "org_id": org_id,
            "day": day,
            "now": now,
            "ids": list(used),
            "seconds": list(used.values()),
        },
    )


async def missing_days(
    conn: AsyncConnection[Any], org_id: str, first: date, end: date
) -> list[date]:
    """The days of [first, end) not rolled up yet."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            query("usage_days_missing"), {"org_id": org_id, "first_day": first, "end_day": end}
        )
        return [r["day"] for r in await cur.fetchall()]


async def roll_up_missing(
    conn: AsyncConnection[Any], org_id: str, first: date, end: date, now: datetime
) -> int:
    """Roll up the days of [first, end) not rolled up yet; how many."""
    missing = await missing_days(conn, org_id, first, end)
    for day in missing:
        await roll_up(conn, org_id, day, now)
    return len(missing)

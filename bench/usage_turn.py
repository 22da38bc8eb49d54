"""The housekeeping's search for days of usage to roll up, at many
organizations: every organization's recent days probed one by one (the
statement before migration 0027, which an organization without a watermark
still gets) against the search past each organization's watermark
(`usage_days_rolled_through`), same data, same run, the days found checked
equal. Stop 28's statement is run as it was sent, as the baseline.

It starts its own embedded PostgreSQL, migrates it and makes --orgs
organizations (1,000 by default), each a year and a half old with every one
of its RECENT_DAYS recent days rolled up, set-wise, then times, each the
median of --rounds:

- `nothing due`: a turn's search when every settled day is rolled up (most
  minutes of a day), with stop 28's statement (the baseline), this one
  before any watermark is set (right after the upgrade), and with them;
- `a new day`: the search the minute a new day settles (one day due per
  organization);
- `advance`: the watermarks' update after a turn: the first (every
  organization's year probed, as once after the upgrade), with every
  organization through, the minute a new day settles (probed, nothing moved),
  and once that day is rolled up (every watermark moved, once).

Usage: python bench/usage_turn.py [--orgs 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from common import usage_days
from common.embedded_db import database_url, start_embedded
from sql import query
from sql.migrate import migrate

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
END = (NOW - usage_days.SETTLE).date()  # as roll_up_usage takes it
FIRST = END - timedelta(days=usage_days.RECENT_DAYS)


def seed(dsn: str, orgs: int) -> None:
    """`orgs` organizations, every recent day of each rolled up."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "insert into organizations (id, name, created_at)"
            " select 'ORG' || g, 'org ' || g, %s from generate_series(1, %s) g",
            (NOW - timedelta(days=540), orgs),
        )
        conn.execute(
            "insert into usage_days_settled (organization_id, day, rolled_at)"
            " select o.id, %s::date + d, %s from organizations o"
            " cross join generate_series(0, %s) d",
            (FIRST, NOW, (END - FIRST).days - 1),
        )
        conn.execute("vacuum analyze")


# Stop 28's `usage_days_due`, as it was sent: every recent day of every
# organization probed, the anti-join outside the lateral.
STOP_28_DUE = """
select o.id as organization_id, d.day
  from organizations o
 cross join lateral (
       select %(first_day)s::date + g as day
         from generate_series(0, %(end_day)s::date - %(first_day)s::date - 1) g) d
 where d.day >= (o.created_at at time zone 'UTC')::date - 1
   and not exists (select 1 from usage_days_settled s
                    where s.organization_id = o.id and s.day = d.day)
 order by d.day desc, o.id
 limit %(limit)s
"""


async def due(
    conn: psycopg.AsyncConnection[Any], end: Any, statement: str = ""
) -> list[tuple[str, Any]]:
    cur = await conn.execute(
        statement or query("usage_days_due"),
        {"first_day": FIRST, "end_day": end, "limit": 1_000_000},
    )
    return [(r["organization_id"], r["day"]) for r in await cur.fetchall()]


async def timed(call: Any, rounds: int) -> tuple[float, Any]:
    took, result = [], None
    for _ in range(rounds):
        began = time.perf_counter()
        result = await call()
        took.append(time.perf_counter() - began)
    return statistics.median(took), result


async def run(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-usage-turn-"))
    server = start_embedded(root / "pg", cleanup="stop")
    try:
        dsn = database_url(server)
        await migrate(dsn)
        seed(dsn, args.orgs)
        async with await psycopg.AsyncConnection.connect(
            dsn, autocommit=True, row_factory=dict_row
        ) as conn:
            tomorrow = END + timedelta(days=1)
            old_none = await timed(lambda: due(conn, END, STOP_28_DUE), args.rounds)
            old_new = await timed(lambda: due(conn, tomorrow, STOP_28_DUE), args.rounds)
            # No watermark yet (as right after the upgrade): every recent day probed.
            before_none = await timed(lambda: due(conn, END), args.rounds)
            before_new = await timed(lambda: due(conn, tomorrow), args.rounds)

            async def advance(end: Any) -> None:
                await conn.execute(
                    query("usage_days_advance"), {"first_day": FIRST, "end_day": end}
                )

            first_advance = await timed(lambda: advance(END), 1)
            after_none = await timed(lambda: due(conn, END), args.rounds)
            after_new = await timed(lambda: due(conn, tomorrow), args.rounds)
            advance_through = await timed(lambda: advance(END), args.rounds)
            # The minute the new day settles: each organization probed past
            # its watermark, nothing moved; then once it is rolled up, every
            # watermark moved (one round: it moves once).
            advance_due = await timed(lambda: advance(tomorrow), args.rounds)
            await conn.execute(
                "insert into usage_days_settled (organization_id, day, rolled_at)"
                " select id, %s, %s from organizations",
                (END, NOW),
            )
            advance_moved = await timed(lambda: advance(tomorrow), 1)
        assert old_none[1] == before_none[1] == after_none[1] == []
        assert sorted(old_new[1]) == sorted(before_new[1]) == sorted(after_new[1])
        assert len(after_new[1]) == args.orgs
        print("command:", " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
        print(
            f"{args.orgs:,} organizations, each with its {usage_days.RECENT_DAYS} recent days"
            f" rolled up; medians of {args.rounds}; the days found checked equal"
        )
        print(
            f"{'search':<28} {'stop 28 s':>10} {'no watermark s':>15} {'watermark s':>12}"
            f" {'ratio to stop 28':>17}"
        )
        for name, (o, _), (b, _), (a, _) in (
            ("nothing due", old_none, before_none, after_none),
            (f"a new day ({args.orgs:,} due)", old_new, before_new, after_new),
        ):
            print(f"{name:<28} {o:>10.4f} {b:>15.4f} {a:>12.4f} {a / o:>16.3f}x")
        print(
            f"advance: first (every organization's year probed) {first_advance[0]:.3f} s;"
            f" every organization through {advance_through[0]:.4f} s; a new day settled,"
            f" not rolled up {advance_due[0]:.4f} s; rolled up, every watermark moved"
            f" {advance_moved[0]:.4f} s"
        )
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orgs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()

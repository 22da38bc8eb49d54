"""The organization's usage over many days at scale: read from the history
alone (the one statement every window used before stop 28, `api_org_usage`)
against the roll-up by day (`usage_days`, migration 0026, common/usage_days.py:
whole settled days from their roll-up, the partial edges from the history),
same data, same run, the answers checked equal.

It starts its own embedded PostgreSQL, migrates it and seeds `bench/api.py
--scale`'s organization (50,000 notebooks, a million history rows, one a
second from 2025-06-01), then times, over a window of every event with
partial days at both ends:

- `history`: `api_org_usage` for the window, the median of --rounds;
- `roll-up, first`: rolling up its whole days (what the workers' housekeeping
  does before anyone asks, or the first report that finds them missing), once;
- `roll-up`: a report once they are (its two edges from the history, then
  `api_org_usage_rolled`), the median of --rounds.

Usage: python bench/usage.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# `python bench/usage.py` puts bench/ first on sys.path, where bench/api.py
# would shadow the API package.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import psycopg  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from api.usage import HELD, TOP_NOTEBOOKS  # noqa: E402
from common import usage_days  # noqa: E402
from common.embedded_db import database_url, start_embedded  # noqa: E402
from sql import query  # noqa: E402
from sql.migrate import migrate  # noqa: E402

NOW = datetime(2025, 7, 1, tzinfo=UTC)  # every day of the windows settled
# Every event (the last is on June 12): whole days only, as "last month"
# asks; and with partial days at both ends, as "the last 30 days" does.
WINDOWS = (
    ("whole days", datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 6, 13, tzinfo=UTC)),
    ("partial ends", datetime(2025, 6, 1, 6, tzinfo=UTC), datetime(2025, 6, 13, 18, tzinfo=UTC)),
)


def bench_api() -> Any:
    spec = importlib.util.spec_from_file_location("bench_api", HERE / "api.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def params(start: datetime, until: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "org_id": "ORG",
        "member_id": "M1",
        "now": NOW,
        "from": start,
        "until": until,
        "top": TOP_NOTEBOOKS,
        "held": HELD,
        **extra,
    }


async def from_history(
    conn: psycopg.AsyncConnection[Any], start: datetime, until: datetime
) -> float:
    cur = await conn.execute(query("api_org_usage"), params(start, until))
    row = await cur.fetchone()
    assert row is not None
    return float(row["seconds"])


async def rolled(conn: psycopg.AsyncConnection[Any], start: datetime, until: datetime) -> float:
    span = usage_days.rolled_span(start, until, NOW)
    assert span is not None
    rolled = await usage_days.rolled_params(conn, "ORG", start, until, span)
    cur = await conn.execute(query("api_org_usage_rolled"), params(start, until, **rolled))
    row = await cur.fetchone()
    assert row is not None
    return float(row["seconds"])


async def timed(call: Any) -> tuple[float, float]:
    began = time.perf_counter()
    result = await call()
    return time.perf_counter() - began, result


async def run(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-usage-"))
    server = start_embedded(root / "pg", cleanup="stop")
    try:
        dsn = database_url(server)
        await migrate(dsn)
        bench_api().seed_scale(dsn)
        lines = []
        async with await psycopg.AsyncConnection.connect(
            dsn, autocommit=True, row_factory=dict_row
        ) as conn:
            first, end = min(w[1] for w in WINDOWS).date(), max(w[2] for w in WINDOWS).date()
            roll_first = await timed(
                lambda: usage_days.roll_up_missing(conn, "ORG", first, end, NOW)
            )
            for name, start, until in WINDOWS:
                history = [
                    await timed(lambda: from_history(conn, start, until))  # noqa: B023
                    for _ in range(args.rounds)
                ]
                again = [
                    await timed(lambda: rolled(conn, start, until))  # noqa: B023
                    for _ in range(args.rounds)
                ]
                assert round(history[0][1]) == round(again[0][1]), (history[0][1], again[0][1])
                h = statistics.median(t for t, _ in history)
                r = statistics.median(t for t, _ in again)
                lines.append(
                    f"{name:<14} {start:%m-%d %H:%M} to {until:%m-%d %H:%M}"
                    f" {h:>10.3f} {r:>10.3f} {r / h:>8.2f}x"
                )
        print("command:", " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
        print(
            "50,000 notebooks, 1,000,000 events (one a second from 2025-06-01, every notebook"
            f" every day); medians of {args.rounds}; each window's answers checked equal"
        )
        print(
            f"rolling up the {roll_first[1]} whole days, once (the housekeeping's, or the"
            f" first report's): {roll_first[0]:.3f} s"
        )
        print(f"{'window (UTC, 2025)':<38} {'history s':>10} {'roll-up s':>10} {'ratio':>9}")
        for line in lines:
            print(line)
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()

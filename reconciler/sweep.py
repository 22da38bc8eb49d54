"""The periodic sweep: repairs whatever no job announced.

Every worker runs the loop; a transaction-scoped advisory lock lets one sweep
run at a time across all workers, and the shared `sweep_state` row (migration
0008) one per interval: a worker whose timer fires less than an interval
after another's sweep skips that round, so N workers sweep as often as one. A sweep only
enqueues reconciles (deduplicated per notebook); the reconcile pass itself
checks health, presence (running↔idle↔detached) and the idle/detached timers.
The worker that ran the round's sweep also refreshes the gauges (notebooks by
status, queue depth and age: a count over every notebook, so once per
interval, not once per worker); the others report zeros, so `max` over the
workers gives the latest sweeper's figures, or figures at most one interval
older while the sweeping moves to another worker. Every
worker, at most once a minute, purges rows that can never be used again
(`purge_once`): expired API tokens, used proxy login ids, stale pings,
pgqueuer's old log.

Both sweep queries read a partial index whose predicate is their WHERE
(migration 0012), not the whole table: the sweep costs what is unsettled or
provisioned, however many notebooks are stopped.

One sweep enqueues at most `limit` unsettled notebooks (longest waiting first)
plus the next page of `limit` of all it looks at, by id from where the
previous sweep's page ended (kept in `sweep_state`, whichever worker swept),
wrapping at the end: past `limit` notebooks every one is still swept, one
page per round.

Orphans: it also asks the runtime what it runs (`Runtime.active_ids`) and
enqueues those with no row, whose pass removes them, and those whose row
is settled where nothing runs (`stopped`, or `failed` with its teardown seen
done), which no page looks at: a teardown that gave up silently, or a
database restored from before a start, would otherwise leave them running. Safe against a notebook
created meanwhile: the runtime is listed *before* the rows are read, and a
runtime only ever provisions a notebook after a pass has read its row, so a
listed notebook whose row exists is seen by that read (ids are never
reused); and the sweep only enqueues: the pass reads the row again and
removes nothing of a notebook that has one. A notebook this database never
knew (no event of it, events outliving their row) is not an orphan but
another database's, pointed at the same data directory: left alone, logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from psycopg_pool import AsyncConnectionPool

from common import usage_days
from common.clock import Clock, SystemClock
from common.jobs import enqueue_reconcile
from common.statuses import Status
from reconciler import metrics
from reconciler.db import fetchall, fetchone
from reconciler.runtime.base import Runtime
from sql import query

log = structlog.get_logger("sweep")

SWEEP_LOCK_KEY = 7_310_003  # constant, arbitrary: one sweeper at a time
BATCH = 1000

# Housekeeping (`purge_once`): per table, the query and how long past its
# last use a row is kept (grace for clock skew between hosts, and for a
# look at what just happened).
PURGE_LOCK_KEY = 7_310_004  # one purge at a time
PURGE_EVERY = timedelta(seconds=60)  # at most this often per worker
PURGE_BATCH = 1000  # rows per transaction: short locks however big the backlog
PURGE_BATCHES = 50  # per table per purge: bounded work, yet ahead of pgqueuer's log
PURGES = {
    "api_tokens": timedelta(days=30),  # expired for a month
    "used_proxy_tokens": timedelta(hours=1),  # a login token (≤ 5 min) long expired
    "notebook_presence": timedelta(days=1),  # far past any presence window
    "pgqueuer_log": timedelta(days=1),  # already folded into pgqueuer_statistics
    "pgqueuer_statistics": timedelta(days=7),
    "notebook_trash": timedelta(0),  # past its own `kept_until` (NOTEBOOKS_TRASH_DAYS)
    "webhook_deliveries": timedelta(days=30),  # sent, or given up after a day, long ago
}


@dataclass
class SweepCursor:
    """What a worker's sweeps carry from one round to the next: the
    runtime's notebooks this database never knew, last time (logged when
    that changes), and the queue's backlog as the last round this worker
    swept found it, before it enqueued its own jobs (for the gauges)."""

    foreign: frozenset[str] = frozenset()
    backlog: dict[str, Any] | None = None


async def sweep_once(
    pool: AsyncConnectionPool,
    cursor: SweepCursor | None = None,
    *,
    limit: int = BATCH,
    runtime: Runtime | None = None,
    every: timedelta = timedelta(0),
) -> int | None:
    """Enqueue reconciles for notebooks that need a look (and, given the
    runtime, for what it runs with no row); None if another worker holds
    the sweep lock or swept less than `every` ago."""
    if cursor is None:
        cursor = SweepCursor()
    async with pool.connection() as conn, conn.transaction():
        row = await fetchone(conn, "reconciler_try_sweep_lock", {"key": SWEEP_LOCK_KEY})
        if not row or not row["locked"]:
            return None
        claim = await fetchone(conn, "reconciler_claim_sweep", {"every": every})
        if claim is None:
            return None
        # Before this round's enqueue: after it, the gauge would show those
        # jobs (about one per running notebook), never what workers left undone.
        cursor.backlog = await fetchone(conn, "reconciler_queue_stats")
        # First the runtime, then the rows (see the module's docstring).
        active = await _active(runtime)
        unsettled = await fetchall(conn, "reconciler_sweep_unsettled", {"limit": limit})
        page = await fetchall(
            conn, "reconciler_sweep_page", {"after": claim["after"], "limit": limit}
        )
        strays = await fetchall(conn, "reconciler_sweep_orphans", {"ids": active}) if active else []
        orphans = [r["id"] for r in strays if r["known"]]
        ids = list(dict.fromkeys([*(r["id"] for r in [*unsettled, *page]), *orphans]))
        await enqueue_reconcile(conn, ids)
        # Moved on with the enqueue; a short page is the last: the next starts over.
        after = page[-1]["id"] if len(page) == limit else ""
        await conn.execute(query("reconciler_sweep_moved"), {"after": after})
    if rowless := [r["id"] for r in strays if r["known"] and r["rowless"]]:
        log.info("sweep_orphans", notebook_ids=rowless)
    if settled := [r["id"] for r in strays if not r["rowless"]]:
        log.warning("sweep_running_for_settled_rows", notebook_ids=settled)
    foreign = frozenset(r["id"] for r in strays if not r["known"])
    if foreign != cursor.foreign:
        cursor.foreign = foreign
        if foreign:
            log.warning(
                "sweep_foreign_notebooks_left_alone",
                notebook_ids=sorted(foreign),
                hint="the runtime runs notebooks this database never had: "
                "is another database using the same data directory?",
            )
    metrics.SWEEPS.inc()
    metrics.SWEEP_ENQUEUED.inc(len(ids))
    return len(ids)


async def _active(runtime: Runtime | None) -> list[str]:
    """What the runtime runs; nothing if it cannot say (the rows are still swept)."""
    if runtime is None:
        return []
    try:
        return list(await runtime.active_ids())  # the query orders them
    except Exception:
        log.exception("sweep could not list the runtime's notebooks")
        return []


async def purge_once(
    pool: AsyncConnectionPool,
    now: datetime,
    *,
    limit: int = PURGE_BATCH,
    batches: int = PURGE_BATCHES,
    roll_up: Callable[[], Awaitable[int]] | None = None,
) -> dict[str, int] | None:
    """Delete rows that can never be used again (`PURGES`), `limit` rows per
    transaction, at most `batches` transactions per table (the rest waits for
    the next purge), then `roll_up` (the usage's days), under the same lock:
    one worker at a time does either. Returns the rows deleted per table, or
    None if another worker is purging."""
    purged: dict[str, int] = {}
    # One connection holds a session lock across every batch, so that one
    # purge runs at a time and is never cut short by another's batches.
    async with pool.connection() as conn:
        row = await fetchone(conn, "reconciler_try_purge_lock", {"key": PURGE_LOCK_KEY})
        if not row or not row["locked"]:
            return None
        try:
            for table, grace in PURGES.items():
                purged[table] = 0
                for _ in range(batches):
                    async with conn.transaction():
                        cur = await conn.execute(
                            query(f"reconciler_purge_{table}"),
                            {"before": now - grace, "limit": limit},
                        )
                        deleted = cur.rowcount
                    purged[table] += deleted
                    metrics.PURGED.labels(table).inc(deleted)
                    if deleted < limit:
                        break
            if roll_up is not None:
                try:
                    await roll_up()
                except Exception:  # the purge's figures are logged all the same
                    log.exception("usage_roll_up_failed")
        finally:
            await conn.execute(query("reconciler_purge_unlock"), {"key": PURGE_LOCK_KEY})
    if any(purged.values()):
        log.info("sweep_purged", **purged)
    return purged


ROLL_UP_BATCH = 200  # organization-days per housekeeping turn at most
ROLL_UP_BUDGET = 5.0  # seconds per turn: a large organization's day costs about one


async def roll_up_usage(
    pool: AsyncConnectionPool,
    now: datetime,
    *,
    limit: int = ROLL_UP_BATCH,
    budget: float = ROLL_UP_BUDGET,
    monotonic: Callable[[], float] = time.monotonic,
) -> int:
    """Roll up recent settled days of the organizations' usage not rolled
    up yet (common/usage_days.py), the newest first, before a report asks:
    a report then reads the history for its partial edges only. Bounded by
    `limit` days and `budget` seconds (the monotonic clock) a turn; each
    organization's search starts past the days it is rolled up through
    (migration 0027). How many."""
    end = (now - usage_days.SETTLE).date()
    first = end - timedelta(days=usage_days.RECENT_DAYS)
    began, done = monotonic(), 0
    async with pool.connection() as conn:
        first = max(first, await usage_days.first_rollable_day(conn) or first)
        due = await fetchall(
            conn, "usage_days_due", {"first_day": first, "end_day": end, "limit": limit}
        )
        try:
            for row in due:
                async with conn.transaction():
                    await usage_days.roll_up(conn, row["organization_id"], row["day"], now)
                done += 1
                if monotonic() - began > budget:
                    break  # the rest at the next turn
        finally:
            # The next turn's search starts past the days now rolled up
            # without a gap (a report's own roll-ups included), even when a
            # day failed: the other organizations' watermarks move on.
            await conn.execute(query("usage_days_advance"), {"first_day": first, "end_day": end})
    if done:
        log.info("usage_rolled_up", days=done)
    return done


def clear_gauges() -> None:
    """What a worker whose round another worker's sweep covered reports: not
    its figures from whenever it last swept, which `max` over the workers
    would take for current."""
    for status in Status:
        metrics.BY_STATUS.labels(status.value).set(0)
    metrics.QUEUE_DEPTH.set(0)
    metrics.QUEUE_OLDEST.set(0)


async def refresh_gauges(pool: AsyncConnectionPool, backlog: dict[str, Any] | None) -> None:
    """`backlog`: the queue as this round's sweep found it (SweepCursor)."""
    async with pool.connection() as conn:
        counts = {r["status"]: r["n"] for r in await fetchall(conn, "reconciler_status_counts")}
    for status in Status:
        metrics.BY_STATUS.labels(status.value).set(counts.get(status.value, 0))
    if backlog:
        metrics.QUEUE_DEPTH.set(backlog["queued"])
        metrics.QUEUE_OLDEST.set(backlog["oldest_seconds"])


async def sweep_loop(
    pool: AsyncConnectionPool,
    interval: float,
    stop: asyncio.Event,
    runtime: Runtime | None = None,
    clock: Clock | None = None,
) -> None:
    cursor = SweepCursor()
    clock = clock or SystemClock()
    purged_at: float | None = None  # the monotonic clock
    # A little under the interval: timers that drift must not skip every other round.
    every = timedelta(seconds=interval * 0.9)
    while not stop.is_set():
        try:
            n = await sweep_once(pool, cursor, runtime=runtime, every=every)
            if n is None:  # another worker's sweep covers this round, gauges too
                clear_gauges()
            else:
                if n:
                    log.debug("sweep", enqueued=n)
                await refresh_gauges(pool, cursor.backlog)
            # How long since the last purge on the monotonic clock: a wall
            # clock stepped back must not hold purges off by as much.
            ticks = clock.monotonic()
            if purged_at is None or ticks - purged_at >= PURGE_EVERY.total_seconds():
                purged_at = ticks
                await purge_once(
                    pool,
                    clock.now(),
                    roll_up=functools.partial(
                        roll_up_usage, pool, clock.now(), monotonic=clock.monotonic
                    ),
                )
        except Exception:  # the next round tries again; a sweep must never kill the worker
            log.exception("sweep failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)

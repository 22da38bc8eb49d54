"""The periodic sweep: repairs whatever no job announced.

Every worker runs the loop; a transaction-scoped advisory lock lets one sweep
run at a time across all workers (the others skip that round). A sweep only
enqueues reconciles (deduplicated per notebook); the reconcile pass itself
checks health, presence (running↔idle↔detached) and the idle/detached timers.
It also refreshes the gauges: notebooks by status, queue depth and age.

One sweep enqueues at most `limit` unsettled notebooks (longest waiting first)
plus the next page of `limit` of all it looks at, by id from where the
previous page of this worker ended (`SweepCursor`, in memory), wrapping at the
end: past `limit` notebooks every one is still swept, one page per round.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import structlog
from psycopg_pool import AsyncConnectionPool

from common.jobs import enqueue_reconcile
from common.statuses import Status
from reconciler import metrics
from reconciler.db import fetchall, fetchone

log = structlog.get_logger("sweep")

SWEEP_LOCK_KEY = 7_310_003  # constant, arbitrary: one sweeper at a time
BATCH = 1000


@dataclass
class SweepCursor:
    """The last id of the previous page ("" = from the start)."""

    after: str = ""


async def sweep_once(
    pool: AsyncConnectionPool, cursor: SweepCursor | None = None, *, limit: int = BATCH
) -> int | None:
    """Enqueue reconciles for notebooks that need a look; None if another
    worker holds the sweep lock."""
    if cursor is None:
        cursor = SweepCursor()
    async with pool.connection() as conn, conn.transaction():
        row = await fetchone(conn, "reconciler_try_sweep_lock", {"key": SWEEP_LOCK_KEY})
        if not row or not row["locked"]:
            return None
        unsettled = await fetchall(conn, "reconciler_sweep_unsettled", {"limit": limit})
        page = await fetchall(
            conn, "reconciler_sweep_page", {"after": cursor.after, "limit": limit}
        )
        ids = list(dict.fromkeys(r["id"] for r in [*unsettled, *page]))
        await enqueue_reconcile(conn, ids)
    # Moved on only once enqueued; a short page is the last: the next starts over.
    cursor.after = page[-1]["id"] if len(page) == limit else ""
    metrics.SWEEPS.inc()
    metrics.SWEEP_ENQUEUED.inc(len(ids))
    return len(ids)


async def refresh_gauges(pool: AsyncConnectionPool) -> None:
    async with pool.connection() as conn:
        counts = {r["status"]: r["n"] for r in await fetchall(conn, "reconciler_status_counts")}
        for status in Status:
            metrics.BY_STATUS.labels(status.value).set(counts.get(status.value, 0))
        stats = await fetchone(conn, "reconciler_queue_stats")
        if stats:
            metrics.QUEUE_DEPTH.set(stats["queued"])
            metrics.QUEUE_OLDEST.set(stats["oldest_seconds"])


async def sweep_loop(pool: AsyncConnectionPool, interval: float, stop: asyncio.Event) -> None:
    cursor = SweepCursor()
    while not stop.is_set():
        try:
            n = await sweep_once(pool, cursor)
            if n:
                log.debug("sweep", enqueued=n)
            await refresh_gauges(pool)
        except Exception:  # the next round tries again; a sweep must never kill the worker
            log.exception("sweep failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)

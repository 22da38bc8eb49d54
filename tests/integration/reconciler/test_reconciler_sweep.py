"""The sweep past its page size: every notebook it looks at is enqueued
within a few rounds (pages by id, wrapping around), and unsettled ones are
enqueued every round. Real database; a page size of 2 stands for 1000."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from reconciler.sweep import SweepCursor, sweep_once


async def _sweep(pool: Any, db: Any, cursor: SweepCursor) -> set[str]:
    await db.execute("delete from pgqueuer")
    assert await sweep_once(pool, cursor, limit=2) is not None
    cur = await db.execute("select convert_from(payload, 'utf8') as id from pgqueuer")
    return {r["id"] for r in await cur.fetchall()}


async def test_every_provisioned_notebook_is_swept_past_the_page_size(rows, pool, db):
    provisioned = {
        await rows.notebook(status=status, desired_state="running")
        for status in ("running", "running", "idle", "idle", "detached")
    }
    starting = await rows.notebook()
    await rows.start(starting)  # unsettled: its job may be lost
    stopped = await rows.notebook()

    cursor, seen = SweepCursor(), set()
    for _ in range(3):  # 6 notebooks to look at, 2 a page
        queued = await _sweep(pool, db, cursor)
        assert starting in queued and stopped not in queued
        assert len(queued) <= 2 + 2  # unsettled ones, plus one page
        seen |= queued
    assert seen == provisioned | {starting}

    # Past the last page the walk starts over.
    rounds = [await _sweep(pool, db, cursor) for _ in range(4)]
    assert set().union(*rounds) == provisioned | {starting}


async def test_workers_share_one_sweep_per_interval_and_one_walk(rows, pool, db):
    """Every worker runs the sweep loop: a worker whose timer fires less than
    an interval after another's sweep skips the round, and the walk over the
    notebooks goes on from the page the other's sweep ended at."""
    provisioned = {await rows.notebook(status="running", desired_state="running") for _ in range(4)}
    interval = timedelta(seconds=60)
    one, other = SweepCursor(), SweepCursor()  # two workers
    assert await sweep_once(pool, one, limit=2, every=interval) is not None
    assert await sweep_once(pool, other, limit=2, every=interval) is None  # swept just now
    assert await sweep_once(pool, one, limit=2, every=interval) is None
    # Between rounds (no interval to wait out here): the workers take turns,
    # and each page follows the last one, whoever swept it.
    await db.execute("update sweep_state set after = ''")  # the walk from its start
    first = await _sweep(pool, db, one)
    second = await _sweep(pool, db, other)
    assert first | second == provisioned and not first & second

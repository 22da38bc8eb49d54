"""The sweep's housekeeping against real PostgreSQL, with an injected clock:
rows that can never be used again go after their grace period (expired API
tokens, used proxy login ids, stale pings, pgqueuer's folded log and old
statistics), in bounded batches, counted in a metric; everything still of
use stays, revoked tokens without an expiry included (the audit trail)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from common import usage_days
from common.clock import FakeClock
from common.ids import new_id
from reconciler import metrics
from reconciler.sweep import purge_once, roll_up_usage, sweep_loop

DAY = timedelta(days=1)


def _purged(table: str) -> float:
    value = REGISTRY.get_sample_value("notebooks_rows_purged_total", {"table": table})
    return value or 0.0


async def _token(db: Any, member: str, *, expires_at: Any = None, revoked_at: Any = None) -> str:
    tid = new_id()
    await db.execute(
        "insert into api_tokens (id, member_id, name, prefix, secret_hash, expires_at, revoked_at)"
        " values (%s, %s, 't', 'p', %s, %s, %s)",
        (tid, member, secrets.token_bytes(32), expires_at, revoked_at),
    )
    return tid


async def rolled_through(db: Any, org: str) -> date | None:
    cur = await db.execute(
        "select through from usage_days_rolled_through where organization_id = %s", (org,)
    )
    row = await cur.fetchone()
    return None if row is None else row["through"]


async def _ids(db: Any, sql: str) -> set[Any]:
    cur = await db.execute(sql)
    return {r["id"] for r in await cur.fetchall()}


async def test_rows_that_can_never_be_used_again_are_purged_after_their_grace(rows, pool, db):
    clock = FakeClock()
    now = clock.now()
    member = rows.member
    gone_token = await _token(db, member, expires_at=now - 31 * DAY)
    gone_revoked = await _token(db, member, expires_at=now - 40 * DAY, revoked_at=now - 41 * DAY)
    recent = await _token(db, member, expires_at=now - 29 * DAY)  # within the grace
    live = await _token(db, member, expires_at=now + DAY)
    forever = await _token(db, member)
    audit = await _token(db, member, revoked_at=now - 400 * DAY)  # revoked, no expiry: kept

    nid = await rows.notebook()
    for jti, expires in (("old", now - timedelta(hours=2)), ("fresh", now - timedelta(minutes=5))):
        await db.execute(
            "insert into used_proxy_tokens (jti, notebook_id, member_id, expires_at)"
            " values (%s, %s, %s, %s)",
            (jti, nid, member, expires),
        )
    other = await rows.notebook()
    for notebook, seen in ((nid, now - 2 * DAY), (other, now - timedelta(minutes=1))):
        await db.execute(
            "insert into notebook_presence (notebook_id, member_id, last_seen_at)"
            " values (%s, %s, %s)",
            (notebook, member, seen),
        )
    await db.execute("delete from pgqueuer_log")
    await db.execute("delete from pgqueuer_statistics")
    for job, aggregated, created in (
        (1, True, now - 2 * DAY),  # folded and old: purged
        (2, False, now - 2 * DAY),  # not yet folded into the statistics: kept
        (3, True, now - timedelta(hours=1)),
    ):
        await db.execute(
            "insert into pgqueuer_log (job_id, status, priority, entrypoint, aggregated, created)"
            " values (%s, 'successful', 0, 'reconcile', %s, %s)",
            (job, aggregated, created),
        )
    for created in (now - 8 * DAY, now - 8 * DAY + timedelta(seconds=1), now - DAY):
        await db.execute(
            "insert into pgqueuer_statistics (count, priority, status, entrypoint, created)"
            " values (1, 0, 'successful', 'reconcile', %s)",
            (created,),
        )
    trashed = {}
    for name, until in (("past", now - timedelta(seconds=1)), ("kept", now + timedelta(days=2))):
        trashed[name] = await rows.notebook()
        await db.execute(
            "insert into notebook_trash (notebook_id, organization_id, member_id, name,"
            " description, workload_config_id, idle_timeout_seconds, detached_timeout_seconds,"
            " team_ids, content, file_kept_at, deleted_at, kept_until)"
            " values (%s, %s, %s, 'nb', '', 'C', 3600, 14400, '{}', 'x = 1', %s, %s, %s)",
            (trashed[name], rows.org, member, now, now, until),
        )
    hook = new_id()
    await db.execute(
        "insert into webhooks (id, organization_id, url, statuses, secret, created_at,"
        " created_by) values (%s, %s, 'https://hooks.example.com/', '{}', 'whsec_eA==', %s,"
        " %s)",
        (hook, rows.org, now, member),
    )
    for created in (now - 31 * DAY, now - 29 * DAY):  # sent or given up long ago; recent
        await db.execute(
            "insert into webhook_deliveries (webhook_id, event_id, status, next_attempt_at,"
            " created_at) values (%s, 1, 'delivered', %s, %s)",
            (hook, created, created),
        )
    before = {t: _purged(t) for t in metrics.PURGED_TABLES}

    # Bounded: one row per transaction, one transaction per table.
    assert await purge_once(pool, now, limit=1, batches=1) == {
        "api_tokens": 1,
        "used_proxy_tokens": 1,
        "notebook_presence": 1,
        "pgqueuer_log": 1,
        "pgqueuer_statistics": 1,
        "notebook_trash": 1,  # past its own `kept_until`: no grace beyond it
        "webhook_deliveries": 1,
    }
    assert gone_token in await _ids(db, "select id from api_tokens")  # the older one went first
    assert (await purge_once(pool, now))["api_tokens"] == 1  # type: ignore[index]
    assert await purge_once(pool, now) == dict.fromkeys(metrics.PURGED_TABLES, 0)

    assert await _ids(db, "select id from api_tokens") == {recent, live, forever, audit}
    assert gone_revoked not in await _ids(db, "select id from api_tokens")
    assert await _ids(db, "select jti as id from used_proxy_tokens") == {"fresh"}
    assert await _ids(db, "select notebook_id as id from notebook_presence") == {other}
    assert await _ids(db, "select job_id as id from pgqueuer_log") == {2, 3}
    left = await _ids(db, "select created as id from pgqueuer_statistics")
    assert left == {now - DAY}
    assert await _ids(db, "select notebook_id as id from notebook_trash") == {trashed["kept"]}
    left = await _ids(
        db, f"select created_at as id from webhook_deliveries where webhook_id = '{hook}'"
    )
    assert left == {now - 29 * DAY}
    counted = {t: _purged(t) - before[t] for t in metrics.PURGED_TABLES}
    assert counted == {
        "api_tokens": 2,
        "used_proxy_tokens": 1,
        "notebook_presence": 1,
        "pgqueuer_log": 1,
        "pgqueuer_statistics": 2,
        "notebook_trash": 1,
        "webhook_deliveries": 1,
    }

    # A month later the token that was within its grace goes too.
    assert (await purge_once(pool, now + 2 * DAY))["api_tokens"] == 1  # type: ignore[index]
    assert recent not in await _ids(db, "select id from api_tokens")


async def _until(check: Any, timeout: float = 20) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def _sweeping(pool: Any, clock: FakeClock) -> AsyncIterator[None]:
    """The worker's sweep loop (which purges) running meanwhile, every 10 ms."""
    stop = asyncio.Event()
    task = asyncio.create_task(sweep_loop(pool, 0.01, stop, clock=clock))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def _gone(db: Any, tid: str) -> bool:
    return tid not in await _ids(db, "select id from api_tokens")


async def test_the_sweep_loop_purges_at_most_once_a_minute(rows, pool, db):
    clock = FakeClock()
    await db.execute(  # days of usage to roll up (its first turn's, or a later one's)
        "update organizations set created_at = %s where id = %s",
        (clock.now() - 3 * DAY, rows.org),
    )
    expired = clock.now() - 31 * DAY
    first = await _token(db, rows.member, expires_at=expired)
    until, gone = _until, functools.partial(_gone, db)

    def sweeps() -> float:  # the loop's rounds, to wait on
        return REGISTRY.get_sample_value("notebooks_sweeps_completed_total") or 0.0

    async with _sweeping(pool, clock):
        await until(lambda: gone(first))
        second = await _token(db, rows.member, expires_at=expired)
        seen = sweeps()

        async def three_more_rounds() -> bool:
            return sweeps() >= seen + 3

        await until(three_more_rounds)
        assert not await gone(second)  # the clock has not moved: not due yet
        clock.advance(60)
        await until(lambda: gone(second))

        # A turn also rolls up the organizations' settled days of usage.
        async def rolled_up() -> bool:
            return bool(await _ids(db, "select day as id from usage_days_settled"))

        await until(rolled_up)


class WallSteppedBack(FakeClock):
    """Its wall clock can be stepped back (NTP, an operator) on its own."""

    step = timedelta()

    def now(self):  # type: ignore[no-untyped-def]
        return super().now() + self.step


async def test_a_wall_clock_stepped_back_does_not_hold_purges_off(rows, pool, db):
    clock = WallSteppedBack()
    expired = clock.now() - 31 * DAY
    first = await _token(db, rows.member, expires_at=expired)
    until, gone = _until, functools.partial(_gone, db)
    async with _sweeping(pool, clock):
        await until(lambda: gone(first))
        second = await _token(db, rows.member, expires_at=expired)
        clock.step = -timedelta(hours=1)  # the host's clock stepped back an hour
        clock.advance(60)  # a minute passed all the same
        await until(lambda: gone(second))


async def test_one_purge_at_a_time_holding_its_lock_across_batches(
    rows, pool, db, rsettings, monkeypatch
):
    """Another worker's purge (its lock held) makes this one stand aside
    whole; between two batches of a purge the lock is still held (so no other
    worker's batches interleave); when done it is released."""
    import psycopg

    from reconciler import sweep

    clock = FakeClock()
    member = rows.member
    first = await _token(db, member, expires_at=clock.now() - 31 * DAY)
    async with pool.connection() as other:
        await other.execute("select pg_advisory_lock(%s)", (sweep.PURGE_LOCK_KEY,))
        try:
            assert await purge_once(pool, clock.now(), limit=1) is None
        finally:
            await other.execute("select pg_advisory_unlock(%s)", (sweep.PURGE_LOCK_KEY,))
    second = await _token(db, member, expires_at=clock.now() - 31 * DAY)

    free_between_batches: list[bool] = []

    class Counted:
        """Stands in for the metric, counted between batches: asks, from
        another session, whether the purge lock is free right then."""

        def labels(self, table: str) -> Counted:
            return self

        def inc(self, n: int) -> None:
            with psycopg.connect(rsettings.database_url, autocommit=True) as c:
                got = c.execute("select pg_try_advisory_lock(%s)", (sweep.PURGE_LOCK_KEY,))
                free = bool(got.fetchone()[0])
                if free:
                    c.execute("select pg_advisory_unlock(%s)", (sweep.PURGE_LOCK_KEY,))
            free_between_batches.append(free)

    monkeypatch.setattr(sweep.metrics, "PURGED", Counted())
    done = await purge_once(pool, clock.now(), limit=1)  # batches of one row
    assert done is not None and done["api_tokens"] == 2
    assert free_between_batches and not any(free_between_batches)
    assert not await _ids(db, f"select id from api_tokens where id in ('{first}', '{second}')")
    monkeypatch.undo()
    assert await purge_once(pool, clock.now(), limit=1) is not None  # released


async def test_recent_days_of_usage_are_rolled_up_before_a_report_asks(rows, pool, db):
    """The housekeeping rolls up each organization's settled days (since it
    existed, RECENT_DAYS back), the newest first, a bounded batch a turn:
    a month's report then reads its partial edges only from the history."""
    now = datetime(2026, 11, 10, 0, 30, tzinfo=UTC)  # Nov 9 ended 30 min ago: not settled
    await db.execute(
        "update organizations set created_at = %s where id = %s", (now - 5 * DAY, rows.org)
    )
    nid = await rows.notebook()
    await db.execute(
        "insert into notebook_events (notebook_id, organization_id, to_status, reason, actor,"
        " created_at) values (%s, %s, 'running', '', 'reconciler', %s),"
        " (%s, %s, 'stopped', '', 'reconciler', %s)",
        (nid, rows.org, now - 3 * DAY, nid, rows.org, now - 3 * DAY + timedelta(hours=2)),
    )
    await db.execute(
        "update notebooks set status = 'stopped', status_changed_at = %s where id = %s",
        (now - 3 * DAY + timedelta(hours=2), nid),
    )
    assert await roll_up_usage(pool, now, limit=2) == 2
    days = await _ids(db, "select day as id from usage_days_settled")
    assert days == {date(2026, 11, 9) - timedelta(days=1), date(2026, 11, 9) - timedelta(days=2)}
    # Rolled up newest first: through the day before its first (Nov 4) only.
    assert await rolled_through(db, rows.org) == date(2026, 11, 3)
    await roll_up_usage(pool, now + usage_days.SETTLE)  # Nov 9 settled now; the rest
    days = await _ids(db, "select day as id from usage_days_settled")
    # From the day before the organization existed (Nov 5), not the year before.
    assert days == {date(2026, 11, d) for d in range(4, 10)}
    kept = await db.execute("select day, seconds from usage_days where notebook_id = %s", (nid,))
    assert [(r["day"], r["seconds"]) for r in await kept.fetchall()] == [
        (date(2026, 11, 7), 7200.0)
    ]
    assert await roll_up_usage(pool, now + usage_days.SETTLE) == 0  # nothing left
    assert await rolled_through(db, rows.org) == date(2026, 11, 9)
    # A turn stops past its time budget (a day of a large organization takes
    # about a second), after one day at least: the rest at the next turn.
    await db.execute("delete from usage_days_settled")
    await db.execute("delete from usage_days")
    await db.execute("delete from usage_days_rolled_through")
    ticks = iter(range(100))
    turn = await roll_up_usage(pool, now, budget=1.5, monotonic=lambda: float(next(ticks)))
    assert turn == 2


async def test_the_search_for_days_to_roll_up_starts_past_the_watermark(rows, pool, db):
    """Each organization's days are looked for after the day it is rolled
    up through without a gap (migration 0027): a turn costs a day's new
    days, not a year of probes per organization. Days a report rolled up
    itself, in a gap's middle, count once the gap is filled."""
    now = datetime(2026, 11, 10, 1, 30, tzinfo=UTC)  # Nov 9 settled
    await db.execute(
        "update organizations set created_at = %s where id = %s", (now - 5 * DAY, rows.org)
    )
    async with pool.connection() as conn:  # a report's own roll-up of Nov 8
        await usage_days.roll_up(conn, rows.org, date(2026, 11, 8), now)
    assert await roll_up_usage(pool, now, limit=1) == 1  # Nov 9, newest first
    assert await rolled_through(db, rows.org) == date(2026, 11, 3)  # Nov 4..7 missing
    assert await roll_up_usage(pool, now) == 4
    assert await rolled_through(db, rows.org) == date(2026, 11, 9)  # Nov 8 and 9 counted

    # Past the watermark only: a day before it is taken as rolled up (never
    # removed in use: here by hand, to show the search does not look there).
    await db.execute(
        "delete from usage_days_settled where organization_id = %s and day = %s",
        (rows.org, date(2026, 11, 6)),
    )
    assert await roll_up_usage(pool, now + DAY) == 1  # Nov 10, the new day
    assert await _ids(db, "select day as id from usage_days_settled") == {
        date(2026, 11, d) for d in (4, 5, 7, 8, 9, 10)
    }
    assert await rolled_through(db, rows.org) == date(2026, 11, 10)
    # Never back: a watermark ahead (a clock that ran ahead) stays. (What
    # this shows is usage_days_advance passing over an organization already
    # through; its conflict clause's `where` is a second guard this cannot
    # reach, for a race between two turns.)
    await db.execute("update usage_days_rolled_through set through = %s", (date(2026, 11, 20),))
    assert await roll_up_usage(pool, now + DAY) == 0
    assert await rolled_through(db, rows.org) == date(2026, 11, 20)


async def test_a_failing_roll_up_still_moves_the_watermarks(rows, pool, db, monkeypatch):
    """A day that fails to roll up (logged by the purge's turn) does not hold
    every organization's search back: the watermarks still move."""
    now = datetime(2026, 11, 10, 1, 30, tzinfo=UTC)  # Nov 9 settled
    await db.execute(
        "update organizations set created_at = %s where id = %s", (now - 5 * DAY, rows.org)
    )
    async with pool.connection() as conn:  # all but the newest, as reports would
        await usage_days.roll_up_missing(conn, rows.org, date(2026, 11, 4), date(2026, 11, 9), now)

    async def broken(*_: Any) -> None:
        raise RuntimeError("a day that cannot be read")

    monkeypatch.setattr(usage_days, "roll_up", broken)
    with pytest.raises(RuntimeError):
        await roll_up_usage(pool, now)
    assert await rolled_through(db, rows.org) == date(2026, 11, 8)

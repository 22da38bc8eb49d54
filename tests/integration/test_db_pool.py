"""The services' pool after PostgreSQL lost its connections (a restart, a
failover, `up` reviving its embedded server): a connection that sat idle is
checked before use and replaced, so the next request does not fail on it
(a crash audit got a 503 from the API after the server came back), nor wait
through psycopg_pool's back-off from one dead connection to the next (a
review measured 7.6 s with four)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg_pool import pool_async

from common.db import _IdleCheck, open_pool


async def _terminate_all_but_mine(dsn: str) -> int:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as admin:
        cur = await admin.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity"
            " where datname = current_database() and pid <> pg_backend_pid()"
        )
        return len(await cur.fetchall())


async def test_idle_connections_the_server_dropped_are_replaced_at_once(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    real_sleep = pool_async.asleep

    async def recorded(delay: float) -> None:
        waits.append(delay)
        await real_sleep(delay)

    monkeypatch.setattr(pool_async, "asleep", recorded)
    pool = await open_pool(empty_database_url, min_size=4, max_size=4, check_after_idle_seconds=0)
    try:
        await pool.wait()
        assert await _terminate_all_but_mine(empty_database_url) == 4
        for _ in range(6):  # every pooled connection was dropped: none fails a request
            async with pool.connection() as conn:
                row = await (await conn.execute("select 1 as one")).fetchone()
                assert row == {"one": 1}
        # The first dead one had the pool drop the other three with it: no back-off.
        assert all(delay == 0 for delay in waits), waits
    finally:
        await pool.close()


async def test_a_connection_handed_out_moments_ago_is_not_checked_again(
    empty_database_url: str,
) -> None:
    """The hot path pays no extra round trip. Shown on a connection closed
    under the check: unchecked, nothing fails."""
    idle = _IdleCheck(after_seconds=60)
    conn = await psycopg.AsyncConnection.connect(empty_database_url, autocommit=True)
    await idle.check(conn)  # never handed out before: checked
    await conn.close()
    await idle.check(conn)  # handed out a moment ago: not sent a query
    idle.after = 0
    with pytest.raises(psycopg.OperationalError):
        await idle.check(conn)  # long enough ago: checked, and found dead

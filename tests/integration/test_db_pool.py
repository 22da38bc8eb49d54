"""The services' pool after PostgreSQL lost its connections (a restart, a
failover, `up` reviving its embedded server): a connection that sat idle is
checked before use and replaced, so the next request does not fail on it
(a crash audit got a 503 from the API after the server came back)."""

from __future__ import annotations

import psycopg
import pytest

from common.db import _IdleCheck, open_pool


async def _terminate_all_but_mine(dsn: str) -> int:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as admin:
        cur = await admin.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity"
            " where datname = current_database() and pid <> pg_backend_pid()"
        )
        return len(await cur.fetchall())


async def test_idle_connections_the_server_dropped_are_replaced_before_use(
    empty_database_url: str,
) -> None:
    pool = await open_pool(empty_database_url, min_size=2, max_size=2, check_after_idle_seconds=0)
    try:
        async with pool.connection() as conn:
            first = await (await conn.execute("select pg_backend_pid() as pid")).fetchone()
            assert first is not None
            before = first["pid"]
        assert await _terminate_all_but_mine(empty_database_url) >= 1
        for _ in range(3):  # every pooled connection was dropped: none fails a request
            async with pool.connection() as conn:
                row = await (await conn.execute("select pg_backend_pid() as pid")).fetchone()
                assert row is not None and row["pid"] != before
    finally:
        await pool.close()


async def test_a_connection_back_moments_ago_is_handed_out_unchecked(
    empty_database_url: str,
) -> None:
    """Checked only after sitting idle: the hot path pays no extra round trip.
    Shown on a connection closed under the check: unchecked, nothing fails."""
    idle = _IdleCheck(after_seconds=60)
    conn = await psycopg.AsyncConnection.connect(empty_database_url, autocommit=True)
    await idle.check(conn)  # never seen back: checked
    await idle.reset(conn)
    await conn.close()
    await idle.check(conn)  # back a moment ago: not sent a query
    idle.after = 0
    with pytest.raises(psycopg.OperationalError):
        await idle.check(conn)  # idle long enough: checked, and found dead

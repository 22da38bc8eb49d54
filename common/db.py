"""One psycopg pool per process. Connections are autocommit; every request or
unit of work opens an explicit transaction (which pgqueuer's psycopg driver
also requires for the transactional enqueue)."""

from __future__ import annotations

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool


async def open_pool(
    dsn: str, *, min_size: int = 2, max_size: int = 10, wait_seconds: float = 30.0
) -> AsyncConnectionPool:
    """`wait_seconds`: how long taking a connection waits before PoolTimeout."""
    pool = AsyncConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        timeout=wait_seconds,
        kwargs={"autocommit": True, "row_factory": dict_row},
        open=False,
    )
    await pool.open(wait=True, timeout=30)
    return pool

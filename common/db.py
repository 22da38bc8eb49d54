"""One psycopg pool per process. Connections are autocommit; every request or
unit of work opens an explicit transaction (which pgqueuer's psycopg driver
also requires for the transactional enqueue)."""

from __future__ import annotations

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

# The database cannot serve this request now (every pooled connection busy,
# unreachable, restarting; psycopg's timeouts and conflicts are among its
# OperationalErrors): nothing the client did, worth retrying shortly.
UNAVAILABLE: tuple[type[Exception], ...] = (PoolTimeout, psycopg.OperationalError)


async def open_pool(
    dsn: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    wait_seconds: float = 30.0,
    statement_timeout_seconds: int = 0,
) -> AsyncConnectionPool:
    """`wait_seconds`: how long taking a connection waits before PoolTimeout.
    `statement_timeout_seconds` (0: none): the longest a statement may run,
    or a transaction sit idle, on these connections, so that a request stuck
    behind a lock (or one stuck holding it) gives its connection back."""

    if statement_timeout_seconds:
        # Set at connect, in the startup packet: no statement of its own.
        ms = statement_timeout_seconds * 1000
        given = conninfo_to_dict(dsn).get("options") or ""
        dsn = make_conninfo(
            dsn,
            options=f"{given} -c statement_timeout={ms}"
            f" -c idle_in_transaction_session_timeout={ms}".strip(),
        )
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

"""One psycopg pool per process. Connections are autocommit; every request or
unit of work opens an explicit transaction (which pgqueuer's psycopg driver
also requires for the transactional enqueue)."""

from __future__ import annotations

import time
import weakref
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

# The database cannot serve this request now (every pooled connection busy,
# unreachable, restarting; psycopg's timeouts and conflicts are among its
# OperationalErrors): nothing the client did, worth retrying shortly.
UNAVAILABLE: tuple[type[Exception], ...] = (PoolTimeout, psycopg.OperationalError)


def session_options(*, statement_timeout_seconds: int = 0) -> str:
    """The `-c` settings of every connection the services open (libpq
    `options`, sent in the startup packet: no statement of their own).

    `jit=off`: PostgreSQL JIT-compiles a statement whose estimated cost
    passes `jit_above_cost`, and for these short statements the compile is
    all loss (an early notebook list spent about 0.6 s compiling to save
    nothing; docs/api.md). With `statement_timeout_seconds`, statements and
    idle transactions are also cut off after that long."""
    options = ["-c jit=off"]
    if statement_timeout_seconds:
        ms = statement_timeout_seconds * 1000
        options += [f"-c statement_timeout={ms}", f"-c idle_in_transaction_session_timeout={ms}"]
    return " ".join(options)


def add_options(dsn: str, options: str) -> str:
    """`dsn` with `options` after any it already has: a URL's own (`-c
    search_path=…` for a schema-scoped database) are kept."""
    given = conninfo_to_dict(dsn).get("options") or ""
    return make_conninfo(dsn, options=f"{given} {options}".strip())


def with_session_options(dsn: str, *, statement_timeout_seconds: int = 0) -> str:
    """`dsn` with `session_options` after any `options` it already has."""
    return add_options(dsn, session_options(statement_timeout_seconds=statement_timeout_seconds))


# A pooled connection not handed out for this long is checked (one empty
# query) before it is: after a PostgreSQL restart (a failover, `up` reviving
# its embedded server) every idle one is dead, and each would have failed one
# request with a 503. The pool hands its connections out in turn, so above
# about max_size / 2 requests a second none is checked; below that, a
# request pays one short round trip.
CHECK_AFTER_IDLE_SECONDS = 2.0


class _IdleCheck:
    """The pool's `check` callback: a connection is checked only if it was
    last handed out `after_seconds` ago or more (or never). One found dead
    has the pool replace all its connections at once (`drain`: the idle ones
    closed without a query, the busy ones when they come back): psycopg_pool
    waits 1, 2, 4 s between failed checks, so going through them one by one
    held the first request after a restart for seconds (past the pool's
    wait, a 503 all the same). One drain at a time."""

    def __init__(self, after_seconds: float) -> None:
        self.after = after_seconds
        self.pool: AsyncConnectionPool | None = None
        self.draining = False
        self.handed: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], float] = (
            weakref.WeakKeyDictionary()
        )

    async def check(self, conn: psycopg.AsyncConnection[Any]) -> None:
        now = time.monotonic()
        last = self.handed.get(conn)
        self.handed[conn] = now
        if last is not None and now - last < self.after:
            return
        try:
            await AsyncConnectionPool.check_connection(conn)
        except Exception:
            if self.pool is not None and not self.draining:
                self.draining = True  # the others went with it: replace them all
                try:
                    await self.pool.drain()
                finally:
                    self.draining = False
            raise  # the pool discards this one and hands out another


async def open_pool(
    dsn: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    wait_seconds: float = 30.0,
    statement_timeout_seconds: int = 0,
    check_after_idle_seconds: float = CHECK_AFTER_IDLE_SECONDS,
) -> AsyncConnectionPool:
    """`wait_seconds`: how long taking a connection waits before PoolTimeout.
    `statement_timeout_seconds` (0: none): the longest a statement may run,
    or a transaction sit idle, on these connections, so that a request stuck
    behind a lock (or one stuck holding it) gives its connection back.
    JIT compilation is off on them (`session_options`). A connection idle
    `check_after_idle_seconds` is checked before use (`_IdleCheck`)."""
    idle = _IdleCheck(check_after_idle_seconds)
    pool = AsyncConnectionPool(
        with_session_options(dsn, statement_timeout_seconds=statement_timeout_seconds),
        min_size=min_size,
        max_size=max_size,
        timeout=wait_seconds,
        kwargs={"autocommit": True, "row_factory": dict_row},
        check=idle.check,
        open=False,
    )
    idle.pool = pool
    await pool.open(wait=True, timeout=30)
    return pool

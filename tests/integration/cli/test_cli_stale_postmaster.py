"""After a hard stop, `postmaster.pid` can name a pid another process has
taken since: the embedded PostgreSQL must still start (it was taken for
running, and nothing could connect)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg

from cli.database import drop_stale_postmaster_pid, embedded, pgdata_of


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

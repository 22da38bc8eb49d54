"""A notebook's delete removes its files even where its tools made them
read-only (Go's module cache, `chmod -R a-w` in a cell) for a worker that is
not root, never following a symlink out of the notebook; and says so when
something still stays, so the delete is retried instead of leaving data."""

from __future__ import annotations

import asyncio
import concurrent.futures.thread  # noqa: F401 - loaded before the child drops to nobody
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.runtime.local_pool import remove_tree

NOBODY = 65534


ROOT = os.geteuid() == 0


def remove_as_worker(path: Path) -> tuple[int, str]:
    """`remove_tree(path, strict=True)` in a forked child as a worker that is
    not root runs it (as the user nobody when the tests run as root, where
    permissions would not apply); its exit code and error. Forked, not
    exec'd: the interpreter lives under root's home, which nobody cannot
    enter."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(read)
            if ROOT:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            asyncio.run(remove_tree(path, strict=True))
        except OSError as e:
            os.write(write, str(e).encode())
            code = 3
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            os.write(write, repr(e).encode())
            code = 4
        os._exit(code)
    os.close(write)
    with os.fdopen(read) as out:
        said = out.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), said


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory another user can reach (pytest's tmp_path is root's alone)."""
    base = Path(tempfile.mkdtemp(prefix="remove-tree-"))
    base.chmod(0o755)
    if ROOT:
        os.chown(base, NOBODY, NOBODY)  # the worker's own data directory
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _chown_tree(root: Path, uid: int) -> None:
    if not ROOT:
        return  # already the worker's
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            os.chown(os.path.join(dirpath, name), uid, uid, follow_symlinks=False)
    os.chown(root, uid, uid)


def test_a_non_root_worker_removes_read_only_directories_and_follows_no_symlink(
    shared_tmp: Path,
) -> None:
    notebook = shared_tmp / "notebook"
    cache = notebook / "go" / "pkg" / "mod"
    cache.mkdir(parents=True)
    (cache / "module.go").write_text("package x")
    locked = notebook / "locked"
    locked.mkdir()
    (locked / "inner.txt").write_text("x")
    outside = shared_tmp / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    (notebook / "link").symlink_to(outside, target_is_directory=True)
    _chown_tree(notebook, NOBODY)
    _chown_tree(outside, NOBODY)
    cache.chmod(0o500)
    (notebook / "go" / "pkg").chmod(0o500)
    locked.chmod(0o000)
    outside.chmod(0o555)

    code, said = remove_as_worker(notebook)
    assert code == 0, said
    assert not notebook.exists()
    assert (outside / "keep.txt").read_text() == "keep"
    assert outside.stat().st_mode & 0o777 == 0o555  # not made writable through the link


def test_what_cannot_be_removed_is_an_error_not_silence(shared_tmp: Path) -> None:
    # The worker's own directory made read-only (an operator's chmod, a
    # read-only mount): the notebook's files go, its directory cannot, and
    # strict removal says so (the delete is retried).
    notebook = shared_tmp / "notebook"
    (notebook / "sub").mkdir(parents=True)
    (notebook / "sub" / "f").write_text("x")
    _chown_tree(notebook, NOBODY)
    shared_tmp.chmod(0o555)
    try:
        code, said = remove_as_worker(notebook)
    finally:
        shared_tmp.chmod(0o755)
    assert code == 3, said
    assert f"could not remove {notebook}" in said
    assert notebook.is_dir() and not (notebook / "sub").exists()


def test_a_symlink_in_place_of_the_tree_is_removed_not_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "sub").mkdir(parents=True)
    elsewhere.chmod(0o555)
    link = tmp_path / "notebook"
    link.symlink_to(elsewhere, target_is_directory=True)
    asyncio.run(remove_tree(link, strict=True))
    assert not link.is_symlink() and not link.exists()
    assert (elsewhere / "sub").is_dir() and elsewhere.stat().st_mode & 0o777 == 0o555


def test_lenient_removal_stays_quiet(tmp_path: Path) -> None:
    missing = tmp_path / "never-made"
    asyncio.run(remove_tree(missing))
    asyncio.run(remove_tree(missing, strict=True))
    assert not missing.exists()

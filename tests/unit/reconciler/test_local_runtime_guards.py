"""Guards of the local runtime that need no Sail or Marimo (stand-in
processes): a stop ends descendants that left the process group; logs are
rotated at spawn; a port clash is read from the process's own output only;
a restart on an old port reserves it; trees are removed off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from reconciler.runtime import procs
from reconciler.runtime.base import SessionSpec, WorkloadSpec
from reconciler.runtime.local import LocalRuntime
from reconciler.runtime.local_pool import CLAIM, WORK, LocalPool

SLEEP = "import sys, time; time.sleep(60)"


def spawn_python(cwd: Path, code: str, log: str | Path = "p.log") -> procs.Proc:
    """`python -c code PORT` through the runtime's spawn (its port on its
    command line, as Sail and Marimo have theirs), logging to `cwd / log`."""
    port = procs.free_port()
    return procs.spawn(
        [sys.executable, "-c", code, str(port)], env={}, cwd=cwd, log=cwd / log, port=port
    )


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # exited, not reaped
    except psutil.NoSuchProcess:
        return True


async def until(check: Callable[[], bool], timeout: float = 10) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def kill(*pids: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if (child := procs._CHILDREN.pop(pid, None)) is not None:
            child[0].wait()


# -- a stop ends what left the group ------------------------------------------

ESCAPES = """
import os, subprocess, sys, time
# What Marimo's terminal (pty.fork), its LSP server (start_new_session) or a
# cell's setsid do: a child in a session of its own, with a child of its own.
escape = (
    "import os, subprocess, sys, time; os.setsid();"
    " g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
    " print(os.getpid(), g.pid, flush=True); time.sleep(60)"
)
subprocess.Popen([sys.executable, "-c", escape], stdout=open("escaped.pids", "w"))
time.sleep(60)
"""


async def test_a_stop_ends_descendants_that_left_the_process_group(tmp_path: Path) -> None:
    leader = spawn_python(tmp_path, ESCAPES)
    pids_file = tmp_path / "escaped.pids"
    escaped: list[int] = []
    try:
        await until(
            lambda: len(pids_file.read_text().split()) == 2 if pids_file.exists() else False
        )
        escaped = [int(pid) for pid in pids_file.read_text().split()]
        child, grandchild = escaped
        assert os.getpgid(child) == child != leader.pid  # out of the leader's group
        await procs.stop(leader, signal.SIGTERM, 5, tmp_path)
        await until(lambda: gone(child) and gone(grandchild))
    finally:
        if not escaped and pids_file.exists():  # written after the wait gave up
            escaped = [int(pid) for pid in pids_file.read_text().split()]
        kill(leader.pid, *escaped)


# -- logs -----------------------------------------------------------------------


async def test_a_log_over_the_cap_is_rotated_when_the_next_process_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(procs, "LOG_ROTATE_BYTES", 1000)
    log = tmp_path / "sail.log"
    old = b"an earlier run\n" * 100  # 1500 bytes: over the cap
    log.write_bytes(old)
    log.chmod(0o600)

    async def run(word: str) -> None:
        proc = spawn_python(tmp_path, f"print({word!r})", log=log.name)
        await asyncio.to_thread(procs._CHILDREN.pop(proc.pid)[0].wait, 10)

    await run("first")
    assert (tmp_path / "sail.log.1").read_bytes() == old  # one previous file kept
    assert (tmp_path / "sail.log.1").stat().st_mode & 0o077 == 0  # still owner only
    assert log.read_bytes().split() == [b"first"]
    await run("second")  # under the cap: appended, as before
    assert log.read_bytes().split() == [b"first", b"second"]
    assert (tmp_path / "sail.log.1").read_bytes() == old


# -- ports ----------------------------------------------------------------------


async def test_a_port_clash_is_read_from_the_process_own_output_only(tmp_path: Path) -> None:
    clashed = spawn_python(tmp_path, "print('RuntimeError: Address already in use (os error 98)')")
    procs._CHILDREN.pop(clashed.pid)[0].wait(10)
    assert procs.port_clash(clashed)
    # The next process on the same log dies of something else: the earlier
    # run's line above its own output is not its reason.
    other = spawn_python(tmp_path, "import sys; sys.exit(3)")
    procs._CHILDREN.pop(other.pid)[0].wait(10)
    assert not procs.port_clash(other)
    marimo = spawn_python(
        tmp_path,
        'print("ERROR:    [Errno 98] error while attempting to bind on address'
        " ('127.0.0.1', 5): address already in use\")",
    )
    procs._CHILDREN.pop(marimo.pid)[0].wait(10)
    assert procs.port_clash(marimo)


@pytest.fixture
def stand_ins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sail and Marimo replaced by processes that only sleep (their port on
    their command line, never bound)."""
    argv = staticmethod(lambda port, *_: [sys.executable, "-c", SLEEP, "--port", str(port)])
    monkeypatch.setattr(LocalRuntime, "_sail_argv", argv)
    monkeypatch.setattr(LocalRuntime, "_marimo_argv", argv)


def spec() -> SessionSpec:
    return SessionSpec("NB1", "S1", secrets.token_urlsafe(16), WorkloadSpec(), "/notebooks/NB1")


@pytest.mark.usefixtures("stand_ins")
async def test_a_restart_on_an_old_port_keeps_free_port_from_handing_it_out(
    tmp_path: Path,
) -> None:
    rt = LocalRuntime(tmp_path, stop_grace_seconds=1)
    s = spec()
    try:
        obs = await rt.ensure_running(s)
        state = rt._read_state("NB1")
        assert state is not None
        records = [procs.Proc.from_json(state[k]) for k in ("sail", "marimo")]
        kill(*(int(str(obs.runtime_state[k])) for k in ("sail_pid", "marimo_pid")))
        procs._RECENT_PORTS.clear()  # a new worker adopts the notebook
        await rt.ensure_running(s)  # both restarted, each on its old port
        again = rt._read_state("NB1")
        assert again is not None
        ports = [procs.Proc.from_json(again[k]).port for k in ("sail", "marimo")]  # type: ignore[union-attr]
        assert ports == [r.port for r in records if r is not None]
        assert set(ports) <= set(procs._RECENT_PORTS)
    finally:
        await rt.delete("NB1")
        await rt.close()


# -- trees removed off the event loop ---------------------------------------------


@pytest.fixture
async def rmtree_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """shutil.rmtree wrapped by a stand-in that removes the tree once the
    event loop has run a callback: at once from a worker thread; after 5 s, with False,
    when it runs on (and so blocks) the loop itself. Each call is recorded as
    (path, whether the loop ran meanwhile)."""
    loop = asyncio.get_running_loop()
    calls: list[tuple[str, bool]] = []
    real = shutil.rmtree

    def rmtree(path: object, ignore_errors: bool = False, **_: object) -> None:
        ran = threading.Event()
        loop.call_soon_threadsafe(ran.set)
        calls.append((Path(str(path)).name, ran.wait(5)))
        real(str(path), ignore_errors=True)  # a delete checks that it is gone

    monkeypatch.setattr(shutil, "rmtree", rmtree)
    return calls


async def test_stop_and_delete_remove_trees_off_the_event_loop(
    tmp_path: Path, rmtree_calls: list[tuple[str, bool]]
) -> None:
    rt = LocalRuntime(tmp_path)
    run_dir = rt.run_dir("NB1")
    (run_dir / WORK).mkdir(parents=True)
    rt.notebook_dir("NB1").mkdir(parents=True)
    (run_dir / "state.json").write_text(json.dumps({"session_id": "S1"}))
    await rt.ensure_stopped("NB1")  # a claimed warm Sail's scratch
    await rt.delete("NB1")  # the notebook's directory, its run directory
    await rt.close()
    assert rmtree_calls == [(WORK, True), ("NB1", True), ("NB1", True)]


async def test_the_warm_pool_removes_trees_off_the_event_loop(
    tmp_path: Path, rmtree_calls: list[tuple[str, bool]]
) -> None:
    workload = WorkloadSpec()
    pool = LocalPool(tmp_path / "pool", 1, lambda port: [])
    shape_dir = pool.shape_dir(workload)
    shape_dir.mkdir(parents=True)
    # A warm Sail (a stand-in) to claim, and a drained one whose stop was cut short.
    for wid in ("w1", "w2"):
        (shape_dir / f"{wid}.d").mkdir()  # each warm Sail's own working directory
    warm = spawn_python(shape_dir / "w1.d", SLEEP, log=shape_dir / "w1.log")
    (shape_dir / "w1.json").write_text(json.dumps(warm.to_json()))
    dead = spawn_python(shape_dir / "w2.d", "pass", log=shape_dir / "w2.log")
    procs._CHILDREN.pop(dead.pid)[0].wait(10)
    (shape_dir / "w2.draining").write_text(json.dumps(dead.to_json()))
    run_dir = tmp_path / "run" / "NB1"
    run_dir.mkdir(parents=True)
    try:
        claimed = await pool.claim(workload, run_dir)  # clears a previous session's scratch
        assert claimed is not None and claimed.pid == warm.pid
        assert (run_dir / CLAIM).exists()
        await pool.drain()  # the drained one's working directory
    finally:
        kill(warm.pid)
        await pool.close()
    assert [ok for _, ok in rmtree_calls] == [True] * len(rmtree_calls)
    assert {name for name, _ in rmtree_calls} >= {WORK, "w2.d"}

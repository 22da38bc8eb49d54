"""Process handling of the local runtime: recognising our processes again,
never signalling a stranger that reuses a pid, redacting tokens."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.runtime import procs


def spawn_python(tmp_path: Path, code: str, log: str = "p.log") -> procs.Proc:
    """`python -c code PORT` through the runtime's spawn, in `tmp_path`, with
    a free port on its command line (as Sail and Marimo have theirs)."""
    port = procs.free_port()
    return procs.spawn(
        [sys.executable, "-c", code, str(port)],
        env={},
        cwd=tmp_path,
        log=tmp_path / log,
        port=port,
    )


def end(proc: procs.Proc) -> None:
    """Kill a spawned process's group and reap it, whatever the test did."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    child = procs._CHILDREN.pop(proc.pid, None)
    if child is not None:
        child[0].wait(10)


async def test_stop_never_signals_a_process_that_is_not_ours(tmp_path: Path) -> None:
    # A stranger: its own session (a group leader), a different directory.
    stranger = subprocess.Popen(  # noqa: ASYNC220 - returns at once
        [sys.executable, "-c", "import time; time.sleep(60)"],
        cwd="/",
        start_new_session=True,
    )
    try:
        # A stale record pointing at the stranger's pid (as after pid reuse).
        stale = procs.Proc(stranger.pid, 1234, 1.0, str(tmp_path / "x.log"))
        assert not procs.is_alive(stale)
        assert procs.members(stale, tmp_path) == []
        await procs.stop(stale, signal.SIGKILL, 0.1, tmp_path)
        assert stranger.poll() is None  # untouched
    finally:
        stranger.kill()
        stranger.wait()


async def test_stop_never_signals_a_stranger_in_a_directory_whose_name_extends_ours(
    tmp_path: Path,
) -> None:
    # Another notebook's process (own group, in `notebooks/NB12`) got the pid
    # that a stale record of notebook `NB1` names: `NB12` is not under `NB1`.
    ours, theirs = tmp_path / "NB1", tmp_path / "NB12"
    ours.mkdir()
    theirs.mkdir()
    stranger = spawn_python(theirs, "import time; time.sleep(60)")
    try:
        stale = dataclasses.replace(stranger, start_ticks=(stranger.start_ticks or 0) - 1)
        assert not procs.is_alive(stale)
        assert procs.members(stale, ours) == []
        await procs.stop(stale, signal.SIGKILL, 0.1, ours)
        assert procs.is_alive(stranger)  # untouched
    finally:
        end(stranger)


def test_a_process_is_recognised_by_its_start_in_this_boot_not_the_wall_clock(
    tmp_path: Path,
) -> None:
    proc = spawn_python(tmp_path, "import time; time.sleep(60)")
    try:
        assert proc.start_ticks is not None and proc.boot_id == procs.boot_id() != ""
        assert procs.Proc.from_json(proc.to_json()) == proc  # kept in state.json
        # The wall clock was stepped since (NTP, a resume): psutil's create
        # time moved with it, the process is still the one we started.
        stepped = dataclasses.replace(proc, create_time=proc.create_time - 3600)
        assert procs.is_alive(stepped)
        # Another process that got this pid started at another tick, or in
        # another boot: not ours.
        assert not procs.is_alive(dataclasses.replace(proc, start_ticks=proc.start_ticks - 1))
        assert not procs.is_alive(dataclasses.replace(proc, boot_id="another-boot"))
        # A record written before start ticks were kept: the create time decides.
        old = {k: v for k, v in proc.to_json().items() if k not in ("start_ticks", "boot_id")}
        assert procs.is_alive(procs.Proc.from_json(old))  # type: ignore[arg-type]
    finally:
        end(proc)


def test_start_ticks_reads_past_a_command_name_with_spaces_and_parentheses(
    tmp_path: Path,
) -> None:
    odd = tmp_path / "a) b (c"
    odd.symlink_to(sys.executable)
    child = subprocess.Popen([str(odd), "-c", "import time; time.sleep(60)"])
    try:
        ticks = procs.start_ticks(child.pid)
        assert ticks is not None and ticks > 0
        assert procs.start_ticks(child.pid) == ticks
    finally:
        child.kill()
        child.wait()
    assert procs.start_ticks(child.pid) is None  # gone (reaped)


async def test_spawned_process_is_recognised_and_stopped_with_its_exit_code(
    tmp_path: Path,
) -> None:
    proc = spawn_python(
        tmp_path, "import sys, time; print('hello'); sys.stdout.flush(); time.sleep(60)"
    )
    try:
        assert procs.is_alive(proc)
        assert [p.pid for p in procs.members(proc, tmp_path)] == [proc.pid]
        await procs.stop(proc, signal.SIGTERM, 5, tmp_path)
        assert not procs.is_alive(proc)
        assert procs.members(proc, tmp_path) == []
    finally:
        end(proc)


KERNEL_ELSEWHERE = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a server that will not stop: SIGKILL comes
kernel = subprocess.Popen([sys.executable, "-c",
    "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    " os.chdir('/tmp'); print(os.getpid(), flush=True); time.sleep(60)"],
    stdout=open("kernel.pid", "w"))
time.sleep(60)
"""


async def test_stop_ends_a_kernel_that_left_the_notebooks_directory(tmp_path: Path) -> None:
    """A kernel that ran `os.chdir('/tmp')` is still of the server's group:
    stopped with it, even when the server has to be killed first."""
    proc = spawn_python(tmp_path, KERNEL_ELSEWHERE)
    pid_file = tmp_path / "kernel.pid"
    try:
        for _ in range(200):  # the kernel writes its pid once it is in /tmp
            if pid_file.read_text().strip() if pid_file.exists() else "":
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the kernel never wrote its pid")
        kernel = int(pid_file.read_text())
        assert os.getpgid(kernel) == proc.pid
        await procs.stop(proc, signal.SIGTERM, 0.3, tmp_path)
        assert not procs.is_alive(proc)
        for _ in range(100):  # reaped by init once its parent is gone
            try:
                os.kill(kernel, 0)
            except ProcessLookupError:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the kernel outside the notebook's directory was left running")
    finally:
        end(proc)  # the kernel is of its group


def test_death_reason_has_exit_code_and_log_tail_without_tokens(tmp_path: Path) -> None:
    proc = spawn_python(
        tmp_path,
        "print('url http://h/nb?access_token=SECRET1 up'); print('fatal: SECRET2'); exit(3)",
        log="d.log",
    )
    procs._CHILDREN[proc.pid][0].wait(10)
    try:
        assert (tmp_path / "d.log").stat().st_mode & 0o077 == 0  # holds tokens: owner only
        reason = procs.death_reason("Sail", proc, ("SECRET2",))
        assert reason.startswith("Sail exited with code 3: ")
        assert "fatal: ***" in reason and "access_token=***" in reason
        assert "SECRET1" not in reason and "SECRET2" not in reason
    finally:
        end(proc)


def test_death_reason_quotes_only_this_runs_output_and_not_marimos_banner(
    tmp_path: Path,
) -> None:
    """A process adopted after a worker restart (no exit code to read) and
    killed: its reason quotes neither the run before it (a stop's
    traceback, earlier in the same log) nor Marimo's start-up banner."""
    log = tmp_path / "marimo.log"
    log.write_text("Traceback (most recent call last):\nKeyboardInterrupt\n")
    offset = log.stat().st_size
    with log.open("a") as f:
        f.write(
            "\n        Edit notebook.py in your browser 📝\n\n"
            "        ➜  URL: http://localhost:50981/notebooks/NB1?access_token=abc\n\n"
        )
    proc = procs.Proc(pid=2**22 + 1, port=1, create_time=0.0, log=str(log), log_offset=offset)
    assert procs.death_reason("Marimo", proc) == "Marimo exited"
    with log.open("a") as f:
        f.write("MemoryError: cannot allocate\n")
    assert procs.death_reason("Marimo", proc) == "Marimo exited: MemoryError: cannot allocate"


async def test_two_runtimes_on_one_host_take_turns_on_a_notebook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.runtime import local_pool
    from reconciler.runtime.local import LocalRuntime

    refused = asyncio.Event()
    real_flock = local_pool.fcntl.flock

    def watched_flock(fd: int, how: int) -> None:
        try:
            real_flock(fd, how)
        except BlockingIOError:
            refused.set()
            raise

    monkeypatch.setattr(local_pool.fcntl, "flock", watched_flock)
    first, second = LocalRuntime(tmp_path), LocalRuntime(tmp_path)  # as two workers would
    order: list[str] = []
    async with first._lock("NB"):
        waiting = asyncio.create_task(second.ensure_stopped("NB"))
        waiting.add_done_callback(lambda _: order.append("second"))
        await asyncio.wait_for(refused.wait(), 5)  # the second tried the flock
        await asyncio.sleep(0)
        assert not waiting.done()  # held off by the first one's flock
        order.append("first")
    await asyncio.wait_for(waiting, 5)
    assert order == ["first", "second"]


def test_free_port_never_hands_out_a_port_it_just_gave(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The OS may give back a port just released: Sail's and Marimo's picks,
    one after the other, were seen to be the same."""
    offered = iter([5001, 5001, 5001, 5002])

    class OneAfterAnother:
        def __init__(self, *_: object) -> None:
            self.port = next(offered)

        def __enter__(self) -> OneAfterAnother:
            return self

        def __exit__(self, *_: object) -> None:
            pass

        def bind(self, _: object) -> None:
            pass

        def getsockname(self) -> tuple[str, int]:
            return ("127.0.0.1", self.port)

    monkeypatch.setattr(procs, "_RECENT_PORTS", collections.deque(maxlen=256))
    monkeypatch.setattr(procs.socket, "socket", OneAfterAnother)
    assert [procs.free_port(), procs.free_port()] == [5001, 5002]


def test_a_child_that_died_on_its_own_does_not_judge_the_process_that_got_its_pid(
    tmp_path: Path,
) -> None:
    """A child of ours that died by itself stays in the worker's table (only
    a stop removes it); the kernel may give its pid to a process another
    worker spawns. Judged by the dead child's Popen, that live process (a
    notebook's Sail, a warm Sail) read as dead: a repair killed it."""
    dead = spawn_python(tmp_path, "pass", log="dead.log")
    popen = procs._CHILDREN[dead.pid][0]
    popen.wait(10)
    port = procs.free_port()
    other = subprocess.Popen(  # another worker's child
        [sys.executable, "-c", "import time; time.sleep(60)", str(port)],
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        live = procs.Proc(
            other.pid,
            port,
            procs.psutil.Process(other.pid).create_time(),
            str(tmp_path / "other.log"),
            str(tmp_path),
            procs.start_ticks(other.pid),
            procs.boot_id(),
        )
        procs._CHILDREN[other.pid] = procs._CHILDREN.pop(dead.pid)  # the pid, reused
        assert procs.is_alive(live)
        assert procs.exit_code(live) is None
        assert other.pid not in procs._CHILDREN  # the stale entry is dropped
    finally:
        other.kill()
        other.wait()
        procs._CHILDREN.pop(other.pid, None)

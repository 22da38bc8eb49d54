"""Process handling of the local runtime: recognising our processes again,
never signalling a stranger that reuses a pid, redacting tokens."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

from reconciler.runtime import procs


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


async def test_spawned_process_is_recognised_and_stopped_with_its_exit_code(
    tmp_path: Path,
) -> None:
    port = procs.free_port()
    proc = procs.spawn(
        [
            sys.executable,
            "-c",
            "import sys, time; print('hello'); sys.stdout.flush(); time.sleep(60)",
            "--port",
            str(port),
        ],
        env={},
        cwd=tmp_path,
        log=tmp_path / "p.log",
        port=port,
    )
    assert procs.is_alive(proc)
    assert [p.pid for p in procs.members(proc, tmp_path)] == [proc.pid]
    await procs.stop(proc, signal.SIGTERM, 5, tmp_path)
    assert not procs.is_alive(proc)
    assert procs.members(proc, tmp_path) == []
    await asyncio.sleep(0)


def test_death_reason_has_exit_code_and_log_tail_without_tokens(tmp_path: Path) -> None:
    port = procs.free_port()
    proc = procs.spawn(
        [
            sys.executable,
            "-c",
            "print('url http://h/nb?access_token=SECRET1 up'); print('fatal: SECRET2'); exit(3)",
            str(port),
        ],
        env={},
        cwd=tmp_path,
        log=tmp_path / "d.log",
        port=port,
    )
    procs._CHILDREN[proc.pid].wait(10)
    assert (tmp_path / "d.log").stat().st_mode & 0o077 == 0  # holds tokens: owner only
    reason = procs.death_reason("Sail", proc, ("SECRET2",))
    assert reason.startswith("Sail exited with code 3: ")
    assert "fatal: ***" in reason and "access_token=***" in reason
    assert "SECRET1" not in reason and "SECRET2" not in reason


async def test_two_runtimes_on_one_host_take_turns_on_a_notebook(tmp_path: Path) -> None:
    from reconciler.runtime.local import LocalRuntime

    first, second = LocalRuntime(tmp_path), LocalRuntime(tmp_path)  # as two workers would
    order: list[str] = []
    async with first._lock("NB"):
        waiting = asyncio.create_task(second.ensure_stopped("NB"))
        waiting.add_done_callback(lambda _: order.append("second"))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # held off by the first one's flock
        order.append("first")
    await asyncio.wait_for(waiting, 5)
    assert order == ["first", "second"]

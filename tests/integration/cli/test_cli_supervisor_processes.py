"""The supervisor with real child processes: restart with backoff, orderly stop,
no orphans, and process groups of their own (notebooks) left alone."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psutil
import structlog.testing

from cli.supervisor import Backoff, ProcessSpec, Supervisor


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.02)


def py(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@contextlib.asynccontextmanager
async def running(supervisor: Supervisor) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_a_crashing_child_is_restarted_with_growing_delays(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    crasher = py(
        f"import time; open({str(starts)!r}, 'a').write(f'{{time.time()}}\\n'); raise SystemExit(3)"
    )
    steady = py("import time; time.sleep(600)")
    supervisor = Supervisor(
        [ProcessSpec("crasher", crasher), ProcessSpec("steady", steady)],
        env=dict(os.environ),
        backoff=Backoff(initial=0.2, factor=2.0, maximum=5.0, healthy_after=60.0),
        grace_seconds=5.0,
    )
    async with running(supervisor):
        await wait_for(lambda: len(lines(starts)) >= 4)
        steady_pid = supervisor.pids["steady"]
        times = [float(t) for t in lines(starts)]
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        # delays 0.2, 0.4, 0.8 s between exits and the next start
        assert gaps[0] >= 0.2 and gaps[1] >= 0.4 and gaps[2] >= 0.8, gaps
        assert supervisor.restarts["crasher"] >= 3
        # the crashes never touched the other process
        assert supervisor.restarts["steady"] == 0 and alive(steady_pid)
    assert not alive(steady_pid)


async def test_stop_terminates_children_kills_stubborn_ones_and_leaves_no_orphan(
    tmp_path: Path,
) -> None:
    helper_pid = tmp_path / "helper"
    notebook_pid = tmp_path / "notebook"
    # A child with a helper in its own process group, and a "notebook" it put
    # in a session of its own (as the local runtime does).
    parent = py(
        "import subprocess, sys, time\n"
        "h = subprocess.Popen(['sleep', '600'])\n"
        f"open({str(helper_pid)!r}, 'w').write(str(h.pid))\n"
        "n = subprocess.Popen(['sleep', '600'], start_new_session=True)\n"
        f"open({str(notebook_pid)!r}, 'w').write(str(n.pid))\n"
        "time.sleep(600)\n"
    )
    stubborn = py(
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    )
    supervisor = Supervisor(
        [ProcessSpec("parent", parent), ProcessSpec("stubborn", stubborn)],
        env=dict(os.environ),
        backoff=Backoff(initial=0.1),
        grace_seconds=0.5,
    )
    notebook = 0
    try:
        async with running(supervisor):
            await wait_for(lambda: bool(lines(helper_pid)) and bool(lines(notebook_pid)))
            pids = [
                supervisor.pids["parent"],
                supervisor.pids["stubborn"],
                int(lines(helper_pid)[0]),
            ]
            notebook = int(lines(notebook_pid)[0])
            assert all(alive(p) for p in [*pids, notebook])
        # run() returned: every supervised process and its helpers are gone ...
        for pid in pids:
            assert not alive(pid), pid
        assert supervisor.restarts == {"parent": 0, "stubborn": 0}
        # ... but the process in a group of its own lives on, to be adopted.
        assert alive(notebook)
    finally:
        if notebook:
            with contextlib.suppress(ProcessLookupError):
                os.kill(notebook, signal.SIGKILL)


async def test_children_run_in_sessions_of_their_own() -> None:
    # Children run in sessions of their own: a Ctrl-C aimed at the supervisor's
    # process group does not reach them; the supervisor stops them in order.
    supervisor = Supervisor(
        [ProcessSpec("child", py("import time; time.sleep(600)"))], env=dict(os.environ)
    )
    async with running(supervisor):
        await wait_for(lambda: "child" in supervisor.pids)
        child = supervisor.pids["child"]
        assert os.getpgid(child) == child != os.getpgid(0)
        assert os.getsid(child) == child
    assert not alive(child)


async def test_hurry_skips_the_grace_period(tmp_path: Path) -> None:
    # a second Ctrl-C: a child ignoring SIGTERM is killed at once, not after 60 s
    ready = tmp_path / "ready"
    stubborn = py(
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"open({str(ready)!r}, 'w').write('1'); time.sleep(600)"
    )
    supervisor = Supervisor(
        [ProcessSpec("stubborn", stubborn)], env=dict(os.environ), grace_seconds=60.0
    )
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop))
    try:
        await wait_for(ready.exists)  # its SIGTERM handler is in place
        child = supervisor.pids["stubborn"]
        stop.set()
        supervisor.hurry.set()
        await asyncio.wait_for(task, 10)
        assert not alive(child)
    finally:
        stop.set()
        supervisor.hurry.set()
        await asyncio.wait_for(task, 30)


async def test_a_command_that_cannot_start_is_retried_without_stopping_the_others(
    tmp_path: Path,
) -> None:
    supervisor = Supervisor(
        [
            ProcessSpec("missing", (str(tmp_path / "no-such-program"),)),
            ProcessSpec("steady", py("import time; time.sleep(600)")),
        ],
        env=dict(os.environ),
        backoff=Backoff(initial=0.05, maximum=0.1),
    )
    async with running(supervisor):
        await wait_for(lambda: supervisor.restarts.get("missing", 0) >= 3)
        assert alive(supervisor.pids["steady"])


async def test_the_injected_clock_decides_what_counts_as_a_healthy_run() -> None:
    # Every run looks an hour long to the supervisor, so each exit is treated
    # as the first failure after a healthy run: no growing backoff.
    ticks = iter(range(0, 10**9, 3600))
    supervisor = Supervisor(
        [ProcessSpec("crasher", py("raise SystemExit(1)"))],
        env=dict(os.environ),
        backoff=Backoff(initial=0.05, factor=2.0, healthy_after=30.0),
        monotonic=lambda: float(next(ticks)),
    )
    with structlog.testing.capture_logs() as logs:
        async with running(supervisor):
            await wait_for(lambda: supervisor.restarts.get("crasher", 0) >= 4)
    exits = [e for e in logs if e["event"] == "process_exited"]
    assert len(exits) >= 4
    assert {(e["consecutive_failures"], e["restart_in_seconds"]) for e in exits} == {(1, 0.05)}

"""The local runtime's warm Sail pool, with real Sail and Marimo: a start
claims a pre-started Sail and spawns only Marimo, the pool is refilled, a
shape's pool serves only that shape, two claims racing for one warm Sail
have one winner, warm Sails of a killed worker are adopted, a claim a dying
worker did not record is stopped, and the last runtime to close stops the
pool (nothing is left behind)."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
from reconciler_helpers import processes_under
from test_reconciler_lifecycle import spark_sum

from common.clock import FakeClock
from common.ids import new_id
from common.settings import Settings
from reconciler.runtime import probes, procs
from reconciler.runtime.base import Observation, Phase, SessionSpec, WorkloadSpec
from reconciler.runtime.local import LocalRuntime
from reconciler.runtime.local_pool import SHAPE_IDLE_SECONDS, LocalPool, take

pytestmark = pytest.mark.slow


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def warm_pids(rt: LocalRuntime, workload: WorkloadSpec, *, ready: bool = True) -> list[int]:
    """The shape's warm Sails; if `ready`, once there are as many as the pool
    size and all of them answer health (refills run in the background)."""
    assert rt.pool is not None
    pool = rt.pool
    if ready:

        async def full() -> bool:
            ports = [p.port for _, p in pool.members(workload)]
            return len(ports) == pool.size and await _all_healthy(ports)

        await until(full)
    return [p.pid for _, p in pool.members(workload)]


async def _all_healthy(ports: list[int]) -> bool:
    return all(await asyncio.gather(*(probes.sail_healthy(p) for p in ports)))


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # exited, not reaped
    except psutil.NoSuchProcess:
        return True


def spec_for(workload: WorkloadSpec) -> SessionSpec:
    nid = new_id()
    return SessionSpec(nid, new_id(), secrets.token_urlsafe(32), workload, f"/notebooks/{nid}")


async def test_start_claims_a_warm_sail_and_the_pool_is_refilled(
    rows, worker, rsettings: Settings, tmp_path: Path
):
    workload = WorkloadSpec(env={"TEAM": "a"})
    nid = await rows.notebook(await rows.config(env={"TEAM": "a"}))
    # Warm Sails pre-started by another runtime on this host (as by a worker
    # that has since restarted): the worker adopts them through the pool's files.
    other = LocalRuntime(rsettings.data_dir, stop_grace_seconds=5, warm_pool_size=1)
    try:
        assert await other.warm_up(workload) == 1
        [warm] = await warm_pids(other, workload)

        shutdown = await worker(sweep_interval_seconds=300, local_warm_pool_size=1)
        await rows.start(nid)
        row = await rows.wait_running(nid)
        state = row["runtime_state"]
        assert state["sail_pid"] == warm and state["sail_warm"] is True
        # Marimo was started pointed at the warm Sail, which serves queries.
        marimo = psutil.Process(state["marimo_pid"])
        assert marimo.environ()["SPARK_REMOTE"] == state["sail_url"]
        assert psutil.Process(warm).environ()["TEAM"] == "a"
        # Claimed, it works in a directory of its own notebook, shared with no other Sail.
        work = rsettings.data_dir / "run" / nid / "sail-work"
        assert psutil.Process(warm).cwd() == str(work)
        assert await spark_sum(state["sail_url"], tmp_path) == "499500"

        # Refilled: a new warm Sail of the shape, not the claimed one.
        refilled = await warm_pids(other, workload)
        assert len(refilled) == 1 and refilled != [warm]
        # A warm Sail serves whichever notebook claims it: not this session's HOME.
        assert psutil.Process(refilled[0]).environ().get("HOME") == os.environ.get("HOME")

        await rows.stop(nid)
        await rows.wait_status(nid, "stopped", timeout=15)
        assert gone(warm)
        assert not work.exists()
        # The worker closing is not the last user of the pool: the warm Sail stays.
        await shutdown()
        assert await warm_pids(other, workload) == refilled
    finally:
        await other.close()  # the last user: stops the pool
    assert processes_under(rsettings.data_dir) == []
    assert other.pool is not None and other.pool.members(workload) == []


async def test_a_shape_pool_is_not_used_by_another_shape(rsettings: Settings):
    team_a, team_b = WorkloadSpec(env={"TEAM": "a"}), WorkloadSpec(env={"TEAM": "b"})
    cluster = WorkloadSpec(mode="cluster", workers=1, env={"TEAM": "a"})
    rt = LocalRuntime(rsettings.data_dir, stop_grace_seconds=5, warm_pool_size=1)
    try:
        await rt.warm_up(team_a)
        [warm_a] = await warm_pids(rt, team_a)
        spec = spec_for(team_b)
        obs = await rt.ensure_running(spec)
        await rt.refilled()
        assert obs.runtime_state["sail_pid"] != warm_a
        assert obs.runtime_state["sail_warm"] is False
        assert psutil.Process(int(obs.runtime_state["sail_pid"])).environ()["TEAM"] == "b"
        # A's warm Sail is still A's; the start filled B's own pool.
        assert await warm_pids(rt, team_a, ready=False) == [warm_a]
        [warm_b] = await warm_pids(rt, team_b, ready=False)
        assert warm_b not in (warm_a, obs.runtime_state["sail_pid"])
        # Same env, other mode: another shape too.
        assert rt.pool is not None and rt.pool.members(cluster) == []
        await rt.ensure_stopped(spec.notebook_id)
    finally:
        await rt.close()
    assert processes_under(rsettings.data_dir) == []


async def test_a_workload_with_secret_env_is_never_pooled(rsettings: Settings):
    """Its shape is the plain one's (a digest of its values would name a
    directory): it neither claims a warm Sail, which another config's
    notebooks share, nor leaves one holding its values."""
    plain = WorkloadSpec(env={"TEAM": "s"})
    secret = WorkloadSpec(env={"TEAM": "s"}, secret_env={"DB_PASSWORD": "hunter2"})
    rt = LocalRuntime(rsettings.data_dir, stop_grace_seconds=5, warm_pool_size=1)
    try:
        await rt.warm_up(plain)
        [warm] = await warm_pids(rt, plain)
        assert await rt.warm_up(secret) == 0
        spec = spec_for(secret)
        obs = await rt.ensure_running(spec)
        await rt.refilled()
        assert obs.runtime_state["sail_warm"] is False and obs.runtime_state["sail_pid"] != warm
        sail = psutil.Process(int(obs.runtime_state["sail_pid"]))
        assert sail.environ()["DB_PASSWORD"] == "hunter2"
        assert await warm_pids(rt, plain, ready=False) == [warm]  # untouched, and no other
        assert "DB_PASSWORD" not in psutil.Process(warm).environ()
        await rt.ensure_stopped(spec.notebook_id)
    finally:
        await rt.close()
    assert processes_under(rsettings.data_dir) == []


async def test_two_workers_racing_for_one_warm_sail_only_one_wins(rsettings: Settings):
    workload = WorkloadSpec(env={"TEAM": "race"})
    # Two runtimes on one data directory, as two workers on one host.
    first = LocalRuntime(rsettings.data_dir, stop_grace_seconds=5, warm_pool_size=1)
    second = LocalRuntime(rsettings.data_dir, stop_grace_seconds=5, warm_pool_size=1)
    specs = [spec_for(workload), spec_for(workload)]
    try:
        await first.warm_up(workload)
        [warm] = await warm_pids(first, workload)

        def start(rt: LocalRuntime, spec: SessionSpec) -> Observation:
            # Each worker on its own thread and event loop: a real race.
            async def go() -> Observation:
                try:
                    obs = await rt.ensure_running(spec)
                    await rt.refilled()  # refills run in this loop's background
                    return obs
                finally:
                    if rt._http is not None:  # bound to this thread's loop
                        await rt._http.close()
                        rt._http = None

            return asyncio.run(go())

        observed = await asyncio.gather(
            asyncio.to_thread(start, first, specs[0]),
            asyncio.to_thread(start, second, specs[1]),
        )
        sail_pids = [o.runtime_state["sail_pid"] for o in observed]
        assert sail_pids.count(warm) == 1, sail_pids
        assert sorted(o.runtime_state["sail_warm"] for o in observed) == [False, True]
        assert len(set(sail_pids)) == 2
        # Both starts complete; the refills did not overshoot the pool size.
        for spec in specs:
            await until(lambda s=spec: _running(first, s.notebook_id), timeout=60)
        assert len(await warm_pids(first, workload)) == 1
        for spec in specs:
            await first.ensure_stopped(spec.notebook_id)
    finally:
        await second.close()
        await first.close()
    assert processes_under(rsettings.data_dir) == []


async def _running(rt: LocalRuntime, notebook_id: str) -> bool:
    obs = await rt.observe(notebook_id)
    return obs.sail.phase is Phase.READY and obs.marimo.phase is Phase.READY


async def test_pool_off_starts_cold_and_keeps_no_pool(rsettings: Settings):
    rt = LocalRuntime(rsettings.data_dir, stop_grace_seconds=5)
    spec = spec_for(WorkloadSpec())
    try:
        assert rt.pool is None and await rt.warm_up(spec.workload) == 0
        obs = await rt.ensure_running(spec)
        assert obs.runtime_state["sail_warm"] is False
        assert not (rsettings.data_dir / "pool").exists()
        await rt.ensure_stopped(spec.notebook_id)
    finally:
        await rt.close()
    assert processes_under(rsettings.data_dir) == []


WARM_UP_AND_DIE = """
import asyncio, os, sys
from reconciler.runtime.base import WorkloadSpec
from reconciler.runtime.local import LocalRuntime

rt = LocalRuntime(sys.argv[1], warm_pool_size=1)
asyncio.run(rt.warm_up(WorkloadSpec(env={"TEAM": "adopt"})))
os._exit(0)  # a worker killed: no close, so its pool is not drained
"""


async def test_pool_off_stops_the_warm_sails_a_killed_pool_worker_left(
    rsettings: Settings, tmp_path: Path
):
    """A worker with the pool on, killed, restarted with it off: nothing
    would ever claim or drain its warm Sails; the first sweep stops them."""
    script = tmp_path / "warm_up_and_die.py"
    script.write_text(WARM_UP_AND_DIE)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), str(rsettings.data_dir)
    )
    assert await asyncio.wait_for(proc.wait(), 60) == 0
    [left] = [
        p.pid
        for _, p in LocalPool(rsettings.data_dir / "pool", 1, list).members(
            WorkloadSpec(env={"TEAM": "adopt"})
        )
    ]
    rt = LocalRuntime(rsettings.data_dir, stop_grace_seconds=5)
    try:
        assert rt.pool is None
        await rt.active_ids()  # what the sweep calls: starts the drain

        async def stopped() -> bool:
            return gone(left)

        await until(stopped)
    finally:
        await rt.close()
    assert processes_under(rsettings.data_dir) == []


async def test_a_refill_collects_idle_shapes_and_the_surplus_of_a_lowered_size(
    rsettings: Settings,
):
    """Shapes nobody starts any more (a config edited) and warm Sails beyond
    a lowered pool size are stopped by the next refill of any shape; a
    shape in use keeps its newest up to the size."""
    edited, current = WorkloadSpec(env={"V": "1"}), WorkloadSpec(env={"V": "2"})
    # Idle is judged from a shape directory's mtime, which the filesystem
    # stamps with the real time: the runtimes' clock starts there.
    clock = FakeClock(datetime.now(UTC))
    before = LocalRuntime(rsettings.data_dir, stop_grace_seconds=5, warm_pool_size=2, clock=clock)
    rt = LocalRuntime(rsettings.data_dir, stop_grace_seconds=5, warm_pool_size=1, clock=clock)
    try:
        await before.warm_up(edited)
        await before.warm_up(current)
        old = await warm_pids(before, edited)
        current_pids = await warm_pids(before, current)
        assert len(old) == len(current_pids) == 2
        assert before.pool is not None
        # Nobody claims from or refills shape `edited` (its config was edited).
        clock.advance(2 * SHAPE_IDLE_SECONDS)

        assert await rt.warm_up(current) == 0  # one is kept: nothing to add
        assert all(gone(pid) for pid in old)
        assert rt.pool is not None and rt.pool.members(edited) == []
        kept = await warm_pids(rt, current)
        assert kept == [current_pids[-1]]  # the newest
        assert gone(current_pids[0])
        assert not list(before.pool.shape_dir(edited).glob("*.d"))  # files gone too
    finally:
        await rt.close()
        await before.close()
    assert processes_under(rsettings.data_dir) == []


async def test_warm_sails_of_a_dead_worker_are_adopted(rsettings: Settings, tmp_path: Path):
    workload = WorkloadSpec(env={"TEAM": "adopt"})
    script = tmp_path / "warm_up_and_die.py"
    script.write_text(WARM_UP_AND_DIE)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), str(rsettings.data_dir)
    )
    assert await asyncio.wait_for(proc.wait(), 60) == 0
    rt = LocalRuntime(rsettings.data_dir, stop_grace_seconds=5, warm_pool_size=1)
    spec = spec_for(workload)
    try:
        [warm] = await warm_pids(rt, workload)  # found through the pool's files
        obs = await rt.ensure_running(spec)
        assert obs.runtime_state["sail_pid"] == warm and obs.runtime_state["sail_warm"] is True
        await until(lambda: _running(rt, spec.notebook_id), timeout=60)
        await rt.refilled()
        assert len(await warm_pids(rt, workload)) == 1
        await rt.ensure_stopped(spec.notebook_id)
        assert gone(warm)  # not our child, stopped all the same
    finally:
        await rt.close()
    assert processes_under(rsettings.data_dir) == []


def _a_pool_of_one(
    rsettings: Settings, team: str
) -> tuple[WorkloadSpec, LocalRuntime, SessionSpec, Path]:
    """A runtime with a warm pool of one for a workload of its own, and a
    notebook's run directory to claim into."""
    workload = WorkloadSpec(env={"TEAM": team})
    rt = LocalRuntime(rsettings.data_dir, stop_grace_seconds=5, warm_pool_size=1)
    spec = spec_for(workload)
    run_dir = rt.run_dir(spec.notebook_id)
    run_dir.mkdir(parents=True)
    return workload, rt, spec, run_dir


async def test_a_claim_not_recorded_by_a_dying_worker_is_stopped(rsettings: Settings):
    workload, rt, spec, run_dir = _a_pool_of_one(rsettings, "crash")
    try:
        await rt.warm_up(workload)
        [warm] = await warm_pids(rt, workload)
        # A worker renamed the warm Sail's record to its notebook and died
        # before writing state.json: the Sail is nobody's.
        assert rt.pool is not None
        proc = await rt.pool.claim(workload, run_dir)
        assert proc is not None and proc.pid == warm
        assert (run_dir / "sail.claim").exists() and rt.pool.members(workload) == []
        await rt.ensure_stopped(spec.notebook_id)  # the notebook's next stop (or start)
        assert gone(warm) and not (run_dir / "sail.claim").exists()
    finally:
        await rt.close()
    assert processes_under(rsettings.data_dir) == []


async def test_a_claim_cut_short_before_its_files_moved_leaves_none_in_the_pool(
    rsettings: Settings,
):
    """A worker died right after renaming the warm Sail's record (its log
    and scratch directory still in the pool's): the Sail is stopped and its
    files go too (they stayed for ever, a crash audit found)."""
    workload, rt, spec, run_dir = _a_pool_of_one(rsettings, "cut")
    try:
        await rt.warm_up(workload)
        assert rt.pool is not None
        [(record, warm)] = rt.pool.members(workload)
        assert Path(warm.log).exists() and Path(warm.cwd).is_dir()
        assert take(record, run_dir / "sail.claim")
        await rt.ensure_stopped(spec.notebook_id)
        assert gone(warm.pid) and not (run_dir / "sail.claim").exists()
        assert not Path(warm.log).exists() and not Path(warm.cwd).exists()
    finally:
        await rt.close()
    assert processes_under(rsettings.data_dir) == []


def test_a_process_is_recognised_as_alive_right_after_spawn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # What the refill does with each new warm Sail. For a moment after Popen
    # returns, the kernel has not yet filled the new program's command line
    # (/proc/<pid>/cmdline read empty in ~8 % of spawns here); that must not
    # read as death. The empty read is made to happen, once.
    port = 40000
    proc = procs.spawn(
        ["/bin/sh", "-c", "sleep 30", "sh", str(port)],
        env={},
        cwd=tmp_path,
        log=tmp_path / "sh.log",
        port=port,
    )
    real = psutil.Process.cmdline
    reads: list[list[str]] = []

    def cmdline(self: psutil.Process) -> list[str]:
        got = [] if not reads else real(self)
        reads.append(got)
        return got

    try:
        monkeypatch.setattr(psutil.Process, "cmdline", cmdline)
        assert procs.is_alive(proc)  # its command line not filled in yet
        assert reads == [[]]
        assert procs.is_alive(proc)  # and filled in
        assert str(port) in reads[1]
        # A command line without its port is not the process recorded.
        monkeypatch.setattr(psutil.Process, "cmdline", lambda self: ["/usr/bin/other"])
        assert not procs.is_alive(proc)
    finally:
        monkeypatch.undo()
        os.kill(proc.pid, signal.SIGKILL)
        procs._CHILDREN.pop(proc.pid)[0].wait()


async def test_warm_sails_of_a_drain_cut_short_are_stopped(rsettings: Settings):
    workload = WorkloadSpec(env={"TEAM": "drain"})
    dying = LocalRuntime(rsettings.data_dir, stop_grace_seconds=5, warm_pool_size=2)
    await dying.warm_up(workload)
    first, second = await warm_pids(dying, workload)
    # The last worker closing took both out of the pool (`drain` renames each
    # record before stopping it) and was SIGKILLed before stopping them.
    assert dying.pool is not None and dying.pool._workers_fd is not None
    for path, _ in dying.pool.members(workload):
        path.rename(path.with_suffix(".draining"))
    assert dying.pool.members(workload) == []
    os.close(dying.pool._workers_fd)  # its flocks die with it
    # The next worker's pool neither counts them nor leaves them running...
    rt = LocalRuntime(rsettings.data_dir, stop_grace_seconds=5, warm_pool_size=1)
    try:
        assert await rt.warm_up(workload) == 1
        assert gone(first) and gone(second)
        [warm] = await warm_pids(rt, workload)
        # ...and the last one to close stops a drain's leftovers too.
        assert rt.pool is not None
        [(path, _)] = rt.pool.members(workload)
        path.rename(path.with_suffix(".draining"))
    finally:
        await rt.close()
    assert gone(warm)
    assert processes_under(rsettings.data_dir) == []

"""A worker SIGKILLed right after spawning a process and before recording it
(the local runtime's state.json, the warm pool's record): the next worker
converges to exactly one Sail and one Marimo for the notebook, and the next
refill to exactly its pool's Sails; nothing is left running. Real Sail and
Marimo; the kill happens inside `procs.spawn`, after the child exists."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from reconciler_helpers import kinds, processes_for, processes_under

from common.settings import Settings
from reconciler.runtime.base import WorkloadSpec
from reconciler.runtime.local import LocalRuntime

pytestmark = pytest.mark.slow

# argv: database URL, data dir, notebook id (or "" for a pool refill), the
# word of the command line after whose spawn the process dies.
DIE_AFTER_SPAWN = """
import asyncio, os, signal, sys

from common.clock import SystemClock
from common.db import open_pool
from reconciler.reconcile import Deps, reconcile_once
from reconciler.runtime import procs
from reconciler.runtime.base import WorkloadSpec
from reconciler.runtime.local import LocalRuntime

database_url, data_dir, notebook_id, word = sys.argv[1:5]
spawn = procs.spawn


def spawn_then_die(argv, **kw):
    proc = spawn(argv, **kw)
    if word in argv:
        os.kill(os.getpid(), signal.SIGKILL)  # the child runs; nothing recorded it
    return proc


procs.spawn = spawn_then_die


async def main():
    if not notebook_id:
        rt = LocalRuntime(data_dir, warm_pool_size=1)
        await rt.warm_up(WorkloadSpec(env={"TEAM": "crash"}))
        return
    pool = await open_pool(database_url, min_size=1, max_size=2)
    deps = Deps(pool=pool, runtime=LocalRuntime(data_dir), clock=SystemClock())
    while True:  # what the worker's job does, until the kill
        await reconcile_once(deps, notebook_id)
        await asyncio.sleep(0.05)


asyncio.run(main())
"""


async def _die_after_spawn(tmp_path: Path, settings: Settings, notebook_id: str, word: str) -> None:
    script = tmp_path / "die_after_spawn.py"
    script.write_text(DIE_AFTER_SPAWN)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        settings.database_url,
        str(settings.data_dir),
        notebook_id,
        word,
    )
    assert await asyncio.wait_for(proc.wait(), 60) == -9


@pytest.mark.parametrize(("word", "left"), [("spark", ["sail"]), ("edit", ["marimo", "sail"])])
async def test_a_start_cut_short_after_a_spawn_converges_to_one_sail_and_one_marimo(
    rows, worker, rsettings: Settings, tmp_path: Path, word: str, left: list[str]
) -> None:
    nid = await rows.notebook()
    await rows.start(nid)  # its job waits in the queue for the next worker
    await _die_after_spawn(tmp_path, rsettings, nid, word)
    assert kinds(processes_for(rsettings.data_dir, nid)) == left  # one unrecorded
    await worker()
    row = await rows.wait_running(nid)
    assert kinds(processes_for(rsettings.data_dir, nid)) == ["marimo", "sail"]
    leaders = {p.pid for p in processes_for(rsettings.data_dir, nid)}
    assert {row["runtime_state"]["sail_pid"], row["runtime_state"]["marimo_pid"]} <= leaders
    await rows.stop(nid)
    await rows.wait_status(nid, "stopped")
    assert processes_for(rsettings.data_dir, nid) == []


async def test_a_stop_after_a_start_cut_short_stops_the_unrecorded_process(
    rows, worker, rsettings: Settings, tmp_path: Path
) -> None:
    nid = await rows.notebook()
    await rows.start(nid)
    await _die_after_spawn(tmp_path, rsettings, nid, "spark")
    assert kinds(processes_for(rsettings.data_dir, nid)) == ["sail"]
    await rows.stop(nid)  # a member stops it before any worker looked again
    await worker()
    await rows.wait_status(nid, "stopped")
    assert processes_for(rsettings.data_dir, nid) == []


async def test_a_refill_cut_short_after_a_spawn_leaves_no_extra_warm_sail(
    rsettings: Settings, tmp_path: Path
) -> None:
    workload = WorkloadSpec(env={"TEAM": "crash"})
    await _die_after_spawn(tmp_path, rsettings, "", "spark")
    pool_dir = rsettings.data_dir / "pool"
    assert kinds(processes_under(pool_dir)) == ["sail"]  # unrecorded
    rt = LocalRuntime(rsettings.data_dir, stop_grace_seconds=5, warm_pool_size=1)
    try:
        assert await rt.warm_up(workload) == 1
        assert rt.pool is not None
        [(_, warm)] = rt.pool.members(workload)
        assert [p.pid for p in processes_under(pool_dir)] == [warm.pid]
    finally:
        await rt.close()
    assert processes_under(rsettings.data_dir) == []

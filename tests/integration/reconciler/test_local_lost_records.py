"""Processes of the local runtime whose record is missing are still found,
reported and stopped, with real Sail and Marimo: a warm Sail claimed by a
worker killed before it wrote state.json; a notebook's processes (and warm
Sails) whose data directory was deleted while they ran."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import psutil
import pytest
from reconciler_helpers import kinds, processes_for, processes_under
from test_local_pool import gone, spec_for, until, warm_pids

from common.clock import SystemClock
from common.settings import Settings
from reconciler.reconcile import Deps, reconcile_once
from reconciler.runtime.base import WorkloadSpec
from reconciler.runtime.local import LocalRuntime

pytestmark = pytest.mark.slow


async def settle(deps: Deps, rows: Any, nid: str, *statuses: str, timeout: float = 60) -> dict:
    """Run reconcile passes for `nid` (what its job does) until its status
    is one of `statuses`; returns the row."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await reconcile_once(deps, nid)
        row = await rows.get(nid)
        if row["status"] in statuses:
            return dict(row)
        assert loop.time() < deadline, f"still {row['status']}: {row['status_message']}"
        await asyncio.sleep(min(result.requeue_after or 0.05, 0.2))


# -- a claim a killed worker did not record ----------------------------------------


async def claim_cut_short(rt: LocalRuntime, nid: str, workload: WorkloadSpec) -> int:
    """What a worker killed right after `pool.claim` (before state.json) leaves:
    the warm Sail's record renamed to `run/{id}/sail.claim`, nothing else."""
    assert rt.pool is not None
    await rt.warm_up(workload)
    [warm] = await warm_pids(rt, workload)
    run_dir = rt.run_dir(nid)
    run_dir.mkdir(parents=True)
    claimed = await rt.pool.claim(workload, run_dir)
    assert claimed is not None and claimed.pid == warm
    assert not (run_dir / "state.json").exists()
    return warm


@pytest.mark.parametrize("log_moved", [True, False])
async def test_a_stop_after_a_claim_cut_short_stops_the_claimed_sail(
    rows, pool, rsettings: Settings, tmp_path: Path, log_moved: bool
) -> None:
    rt = LocalRuntime(rsettings.data_dir, stop_grace_seconds=5, warm_pool_size=1)
    deps = Deps(pool=pool, runtime=rt, clock=SystemClock())
    nid = await rows.notebook()
    try:
        await rows.start(nid)  # the notebook's first start...
        warm = await claim_cut_short(rt, nid, WorkloadSpec())  # ...cut short
        if not log_moved:  # as when the claim could not move it: only sail.claim names it
            (rt.run_dir(nid) / "sail.log").rename(tmp_path / "elsewhere.log")
        assert not (await rt.observe(nid)).nothing_left
        await rows.stop(nid)  # the member presses stop
        await settle(deps, rows, nid, "stopped")
        assert gone(warm)
        assert not (rt.run_dir(nid) / "sail.claim").exists()
        assert (await rt.observe(nid)).nothing_left
    finally:
        await rt.close()
    assert processes_under(rsettings.data_dir) == []


async def test_a_start_after_a_claim_cut_short_ends_with_one_sail(
    rows, pool, rsettings: Settings
) -> None:
    rt = LocalRuntime(rsettings.data_dir, stop_grace_seconds=5, warm_pool_size=1)
    deps = Deps(pool=pool, runtime=rt, clock=SystemClock())
    nid = await rows.notebook()
    try:
        await rows.start(nid)
        warm = await claim_cut_short(rt, nid, WorkloadSpec())
        row = await settle(deps, rows, nid, "running", "failed")
        assert row["status"] == "running", row["status_message"]
        assert gone(warm)  # replaced, not left beside the new one
        sail = row["runtime_state"]["sail_pid"]
        assert psutil.Process(sail).is_running() and sail != warm
        await rt.refilled()
        await rows.stop(nid)
        await settle(deps, rows, nid, "stopped")
    finally:
        await rt.close()
    assert processes_under(rsettings.data_dir) == []


# -- a data directory deleted under running processes ---------------------------------


def _pids(row: dict) -> set[int]:
    return {row["runtime_state"]["sail_pid"], row["runtime_state"]["marimo_pid"]}


async def test_a_data_directory_deleted_under_a_running_notebook_leaves_one_sail_and_marimo(
    rows, worker, rsettings: Settings
) -> None:
    nid = await rows.notebook()
    await worker()  # its sweep (every second here) looks at every running notebook
    await rows.start(nid)
    old = _pids(await rows.wait_running(nid))
    shutil.rmtree(rsettings.data_dir)
    row = await rows.wait_for(
        nid, lambda r: r is not None and r["status"] == "running" and _pids(r) != old, 60
    )
    assert row is not None and all(gone(pid) for pid in old)  # stopped, not left beside
    assert kinds(processes_for(rsettings.data_dir, nid)) == ["marimo", "sail"]
    assert {p.pid for p in processes_for(rsettings.data_dir, nid)} >= _pids(row)
    await rows.stop(nid)
    await rows.wait_status(nid, "stopped")
    assert processes_for(rsettings.data_dir, nid) == []


async def test_processes_whose_run_directory_was_deleted_are_listed_and_removed(
    rsettings: Settings,
) -> None:
    rt = LocalRuntime(rsettings.data_dir, stop_grace_seconds=5)
    spec = spec_for(WorkloadSpec())
    nid = spec.notebook_id
    try:
        await rt.ensure_running(spec)

        async def both() -> bool:
            return kinds(processes_for(rsettings.data_dir, nid)) == ["marimo", "sail"]

        await until(both)
        shutil.rmtree(rt.run_dir(nid))  # state.json, token and logs gone
        # What the sweep asks: a notebook whose row is gone is then removed.
        assert nid in await rt.active_ids()
        assert not (await rt.observe(nid)).nothing_left
        await rt.delete(nid)
        assert processes_for(rsettings.data_dir, nid) == []
        assert nid not in await rt.active_ids()
    finally:
        await rt.close()
    assert processes_under(rsettings.data_dir) == []


async def test_warm_sails_whose_pool_directory_was_deleted_are_stopped(
    rsettings: Settings,
) -> None:
    workload = WorkloadSpec(env={"TEAM": "lost"})
    rt = LocalRuntime(rsettings.data_dir, stop_grace_seconds=5, warm_pool_size=1)
    try:
        await rt.warm_up(workload)
        [first] = await warm_pids(rt, workload)
        shutil.rmtree(rsettings.data_dir / "pool")
        # The next refill of the shape starts one the pool knows, and stops
        # the one nothing names any more.
        assert await rt.warm_up(workload) == 1
        [second] = await warm_pids(rt, workload)
        assert gone(first) and second != first
        shutil.rmtree(rsettings.data_dir / "pool")
    finally:
        await rt.close()  # the last worker: no pool directory, its Sails go all the same
    assert gone(second)
    assert processes_under(rsettings.data_dir) == []


async def test_observe_scans_for_lost_processes_only_when_the_record_is_missing(
    rsettings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = LocalRuntime(rsettings.data_dir, stop_grace_seconds=5)
    spec = spec_for(WorkloadSpec())
    scans: list[str] = []
    scan = rt._logging_here
    monkeypatch.setattr(rt, "_logging_here", lambda nid: scans.append(nid) or scan(nid))
    try:
        await rt.ensure_running(spec)
        scans.clear()
        await rt.observe(spec.notebook_id)  # the sweep's routine look at a running notebook
        assert scans == []
        await rt.ensure_stopped(spec.notebook_id)
        scans.clear()
        assert (await rt.observe(spec.notebook_id)).nothing_left
        assert scans == [spec.notebook_id]
    finally:
        await rt.close()
    assert processes_under(rsettings.data_dir) == []

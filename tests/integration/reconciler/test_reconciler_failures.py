"""Failure paths with real processes: a start that fails with its real
reason, a worker SIGKILLed mid-start, Marimo killed while running, and a stop
that arrives while the notebook is still starting."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal

import psutil
import pytest
from prometheus_client import REGISTRY
from reconciler_helpers import kinds, processes_for, until_none_for, worker_process

from common.settings import Settings

pytestmark = pytest.mark.slow


async def test_start_failure_reports_exit_code_and_log_and_leaves_nothing(
    rows, worker, rsettings: Settings
):
    config = await rows.config(env={"SAIL_EXECUTION__BATCH_SIZE": "lots"})
    nid = await rows.notebook(config)
    await worker()
    await rows.start(nid)

    row = await rows.wait_status(nid, "failed", "running", timeout=60)
    assert row["status"] == "failed"
    message = row["status_message"]
    assert "Sail exited with code" in message, message
    assert "BATCH_SIZE" in message, message  # Sail's own complaint from its log
    await until_none_for(rsettings.data_dir, nid)
    events = await rows.events(nid)
    assert events[-1]["to_status"] == "failed" and events[-1]["reason"] == message
    assert events[-1]["actor"] == "reconciler"


async def test_stop_while_starting_ends_stopped_with_nothing_left(
    rows, worker, rsettings: Settings
):
    nid = await rows.notebook()
    await worker()
    await rows.start(nid)
    # As soon as the processes exist (the start is under way), stop.
    run_state = rsettings.data_dir / "run" / nid / "state.json"
    await rows.wait_for(nid, lambda r: run_state.exists(), timeout=30)
    await rows.stop(nid)

    await rows.wait_status(nid, "stopped", timeout=30)
    assert processes_for(rsettings.data_dir, nid) == []
    statuses = [e["to_status"] for e in await rows.events(nid)]
    assert statuses[-2:] == ["stopping", "stopped"]


async def test_marimo_killed_while_running_is_noticed_and_restarted_in_same_session(
    rows, worker, rsettings: Settings
):
    nid = await rows.notebook()
    await worker()
    await rows.start(nid)
    row = await rows.wait_running(nid)
    old_pid, session = row["runtime_state"]["marimo_pid"], row["session_id"]

    os.killpg(old_pid, signal.SIGKILL)

    def restarted(r: dict | None) -> bool:
        return (
            r is not None
            and r["status"] == "running"
            and r["runtime_state"].get("marimo_pid") not in (None, old_pid)
        )

    row = await rows.wait_for(nid, restarted, timeout=60)
    assert row is not None and row["session_id"] == session
    reasons = [(e["to_status"], e["reason"]) for e in await rows.events(nid)]
    assert any(
        s == "starting" and "restarting after Marimo exited with code -9" in r for s, r in reasons
    ), reasons
    # Marimo logs its URL with the token; members must never see it in a status message.
    assert all(row["session_token"] not in r for _, r in reasons)
    assert kinds(processes_for(rsettings.data_dir, nid)) == ["marimo", "sail"]


async def test_worker_killed_mid_start_is_replaced_and_processes_are_adopted(
    rows, worker, rsettings: Settings
):
    nid = await rows.notebook()
    proc = await worker_process(rsettings)
    try:
        await rows.start(nid)
        run_state = rsettings.data_dir / "run" / nid / "state.json"

        def marimo_spawned(_: object) -> bool:
            return run_state.exists() and "marimo" in json.loads(run_state.read_text())

        await rows.wait_for(nid, marimo_spawned, timeout=60)
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 10)
        assert (await rows.get(nid))["status"] == "starting"  # type: ignore[index]
    finally:
        if proc.returncode is None:
            proc.kill()
            await asyncio.wait_for(proc.wait(), 10)
    state_before = json.loads(run_state.read_text())

    await worker()  # a new worker takes the job over after the heartbeat timeout
    await rows.wait_running(nid)
    # Adopted, not duplicated: the same pids, exactly one Sail and one Marimo.
    state_after = json.loads(run_state.read_text())
    assert state_after["sail"]["pid"] == state_before["sail"]["pid"]
    assert state_after["marimo"]["pid"] == state_before["marimo"]["pid"]
    assert kinds(processes_for(rsettings.data_dir, nid)) == ["marimo", "sail"]
    await asyncio.sleep(0)  # let the teardown stop the worker; leftovers are killed there


async def test_a_start_under_way_when_the_whole_stack_died_is_made_again_not_failed(
    rows, worker, rsettings: Settings
):
    """The worker and the start's own Sail and Marimo killed together (a
    host restart, the stack's cgroup killed): a worker started afterwards
    sees both dead, ended while nobody watched them, and starts them again
    within the deadline. Before, the start was failed on "Sail exited"."""
    nid = await rows.notebook()
    proc = await worker_process(rsettings)
    run_state = rsettings.data_dir / "run" / nid / "state.json"
    try:
        await rows.start(nid)

        def marimo_spawned(_: object) -> bool:
            return run_state.exists() and "marimo" in json.loads(run_state.read_text())

        await rows.wait_for(nid, marimo_spawned, timeout=60)
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await asyncio.wait_for(proc.wait(), 10)
    before = json.loads(run_state.read_text())
    for kind in ("sail", "marimo"):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(before[kind]["pid"], signal.SIGKILL)
    assert (await rows.get(nid))["status"] == "starting"  # type: ignore[index]

    await worker()
    row = await rows.wait_status(nid, "running", "failed", timeout=90)
    assert row["status"] == "running", row["status_message"]
    after = json.loads(run_state.read_text())
    assert {after[k]["pid"] for k in ("sail", "marimo")}.isdisjoint(
        {before[k]["pid"] for k in ("sail", "marimo")}
    )
    assert kinds(processes_for(rsettings.data_dir, nid)) == ["marimo", "sail"]
    assert [e["to_status"] for e in await rows.events(nid)][-2:] == ["starting", "running"]


async def test_a_restarted_worker_adopts_running_notebooks_without_restarting_them(
    rows, worker, rsettings: Settings
):
    nid = await rows.notebook()
    shutdown = await worker()
    await rows.start(nid)
    row = await rows.wait_running(nid)
    pids = (row["runtime_state"]["sail_pid"], row["runtime_state"]["marimo_pid"])
    await shutdown()  # e.g. a deploy: the processes keep running without a worker
    assert kinds(processes_for(rsettings.data_dir, nid)) == ["marimo", "sail"]
    events_before = len(await rows.events(nid))

    def noops() -> float:
        sample = REGISTRY.get_sample_value(
            "notebooks_reconciles_completed_total", {"outcome": "noop"}
        )
        return sample or 0.0

    seen = noops()
    await worker()
    # The new worker's sweep has the notebook observed: healthy, nothing to do.
    await rows.wait_for(nid, lambda r: noops() > seen, timeout=30)
    run_state = rsettings.data_dir / "run" / nid / "state.json"
    state = json.loads(run_state.read_text())
    assert (state["sail"]["pid"], state["marimo"]["pid"]) == pids
    assert kinds(processes_for(rsettings.data_dir, nid)) == ["marimo", "sail"]
    assert len(await rows.events(nid)) == events_before
    assert (await rows.get(nid))["status"] == "running"  # type: ignore[index]


async def test_sail_killed_while_running_is_restarted_on_its_port_for_the_same_marimo(
    rows, worker, rsettings: Settings
):
    nid = await rows.notebook()
    await worker()
    await rows.start(nid)
    row = await rows.wait_running(nid)
    state = row["runtime_state"]
    # A client connected, as the kernel's Spark session is: the killed Sail's
    # side of it lingers on the port (FIN_WAIT2), which a bind without
    # SO_REUSEADDR takes for a port in use, though Sail binds it again fine.
    sail_port = int(state["sail_url"].rsplit(":", 1)[1])
    _, spark_client = await asyncio.open_connection("127.0.0.1", sail_port)
    local = spark_client.get_extra_info("sockname")[1]
    sail_proc = psutil.Process(state["sail_pid"])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not any(c.raddr and c.raddr.port == local for c in sail_proc.net_connections()):
        assert loop.time() < deadline, "Sail never accepted the connection"
        await asyncio.sleep(0.02)  # accepted: Sail's side then lingers after the kill

    os.killpg(state["sail_pid"], signal.SIGKILL)

    def restarted(r: dict | None) -> bool:
        return (
            r is not None
            and r["status"] == "running"
            and r["runtime_state"].get("sail_pid") not in (None, state["sail_pid"])
        )

    row = await rows.wait_for(nid, restarted, timeout=60)
    assert row is not None
    # Same port, so the Marimo that kept running still points at its Sail.
    assert row["runtime_state"]["sail_url"] == state["sail_url"]
    assert row["runtime_state"]["marimo_pid"] == state["marimo_pid"]
    assert kinds(processes_for(rsettings.data_dir, nid)) == ["marimo", "sail"]
    spark_client.close()

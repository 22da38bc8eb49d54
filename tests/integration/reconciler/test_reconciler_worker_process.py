"""The worker as a process: /metrics on the port it is given, and a clean
exit (rc 0) on SIGTERM."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
from reconciler_helpers import worker_process

from common.settings import Settings
from reconciler.runtime.local import LocalRuntime
from reconciler.runtime.procs import free_port


async def test_worker_serves_metrics_and_exits_cleanly_on_sigterm(rows, rsettings: Settings):
    await rows.notebook(status="running", desired_state="running")  # counted by status
    port = free_port()
    proc = await worker_process(rsettings, port)
    try:
        loop = asyncio.get_running_loop()
        until = loop.time() + 30
        body = ""
        async with aiohttp.ClientSession() as http:
            while 'notebooks_status_current_count{status="running"} 1.0' not in body:
                assert loop.time() < until, body[-3000:]
                try:
                    async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                        body = await resp.text()
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        for name in (
            "notebooks_reconciles_completed_total",
            "notebooks_reconcile_duration_seconds",
            "notebooks_queue_jobs_queued",
            "notebooks_queue_oldest_age_seconds",
            "notebooks_start_running_seconds",
            "notebooks_autostops_triggered_total",
        ):
            assert name in body
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_cluster_mode_runs_sail_local_cluster_with_the_worker_count() -> None:
    from reconciler.runtime.base import SessionSpec, WorkloadSpec

    spec = SessionSpec("N", "S", "t", WorkloadSpec(mode="cluster", workers=3), "/notebooks/N")
    env = LocalRuntime._sail_env(spec, {"A": "1"})
    assert env["SAIL_MODE"] == "local-cluster"
    assert env["SAIL_CLUSTER__WORKER_INITIAL_COUNT"] == "3"
    assert env["A"] == "1"
    standalone = SessionSpec("N", "S", "t", WorkloadSpec(env={"X": "y"}), "/notebooks/N")
    assert "SAIL_MODE" not in LocalRuntime._sail_env(standalone, {})

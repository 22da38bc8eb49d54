"""A failed "is a cell executing" probe reads as unknown, never as idle: a
notebook past its idle timeout whose Marimo cannot be asked is not stopped
(its kernel may be running a long job), while a dead Marimo is still
repaired. Real Sail and Marimo; the clock is injected."""

from __future__ import annotations

import asyncio
import os
import signal
import socket

import aiohttp
import pytest
from prometheus_client import REGISTRY
from reconciler_helpers import reconcile_until_running

from common.clock import FakeClock
from common.db import open_pool
from common.settings import Settings
from reconciler.plan import UNKNOWN_ACTIVITY
from reconciler.reconcile import Deps, reconcile_once
from reconciler.runtime import probes
from reconciler.runtime.base import Phase
from reconciler.runtime.local import LocalRuntime
from reconciler.runtime.procs import free_port


async def test_a_probe_that_is_refused_or_times_out_is_unknown() -> None:
    refused = free_port()  # nothing listens there
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        async with aiohttp.ClientSession() as http:
            assert await probes.marimo_executing(http, refused, "/notebooks/N", "t") is None
            port = silent.getsockname()[1]
            assert await probes.marimo_executing(http, port, "/notebooks/N", "t", 0.2) is None


@pytest.mark.slow
async def test_an_unknown_executing_does_not_auto_stop_but_a_dead_marimo_is_repaired(
    rows, rsettings: Settings
) -> None:
    clock = FakeClock()
    nid = await rows.notebook()
    await rows.start(nid, now=clock.now())
    runtime = LocalRuntime(rsettings.data_dir, stop_grace_seconds=5)
    pool = await open_pool(rsettings.database_url, min_size=1, max_size=2)
    deps = Deps(pool=pool, runtime=runtime, clock=clock)
    try:
        await reconcile_until_running(deps, rows, nid)
        loop = asyncio.get_running_loop()
        # Marimo now refuses the probe (401: not the token it was started with).
        (runtime.run_dir(nid) / "token").write_text("not-the-token")
        observed = await runtime.observe(nid)
        assert observed.marimo.phase is Phase.READY and observed.executing is None

        clock.advance(3700)  # past the presence window and the idle timeout (3600 s)
        unknown_before = REGISTRY.get_sample_value("notebooks_executing_unknown_total") or 0.0
        await reconcile_once(deps, nid)
        row = await rows.get(nid)
        assert (row["status"], row["desired_state"], row["executing"]) == (
            "idle",
            "running",
            False,
        )
        # ... and says so, to its member and to the operator.
        assert row["status_message"] == UNKNOWN_ACTIVITY
        assert REGISTRY.get_sample_value("notebooks_executing_unknown_total") > unknown_before

        # The health path is not blocked: a dead Marimo is restarted.
        os.killpg(observed.runtime_state["marimo_pid"], signal.SIGKILL)  # type: ignore[arg-type]
        until = loop.time() + 30
        while (await runtime.observe(nid)).marimo.phase is not Phase.FAILED:
            assert loop.time() < until, "Marimo not seen dead"
            await asyncio.sleep(0.05)
        await reconcile_once(deps, nid)
        row = await rows.get(nid)
        assert row["status"] == "starting", row
        assert "restarting after Marimo exited" in row["status_message"]
    finally:
        await runtime.ensure_stopped(nid)
        await runtime.close()
        await pool.close()

"""A Marimo that is alive but stops answering (here frozen with SIGSTOP, as
a process starved of CPU or stuck would look) keeps its notebook `running`
for the grace, so one missed health check does not take it offline; if it
answers again, nothing happened; if not, the repair and then the deadline
take over. Real Sail and Marimo; the clock is injected."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import timedelta

import pytest
from reconciler_helpers import reconcile_until_running

from common.clock import FakeClock
from common.db import open_pool
from common.settings import Settings
from reconciler.plan import UNRESPONSIVE_GRACE_SECONDS
from reconciler.reconcile import Deps, reconcile_once
from reconciler.runtime.base import Phase
from reconciler.runtime.local import LocalRuntime

pytestmark = pytest.mark.slow


async def test_a_marimo_that_misses_its_health_check_keeps_the_notebook_running(
    rows, rsettings: Settings
) -> None:
    clock = FakeClock()
    nid = await rows.notebook()
    await rows.start(nid, now=clock.now())
    # A frozen Marimo ignores SIGTERM until the grace ends: keep it short.
    runtime = LocalRuntime(rsettings.data_dir, stop_grace_seconds=1)
    pool = await open_pool(rsettings.database_url, min_size=1, max_size=2)
    deps = Deps(pool=pool, runtime=runtime, clock=clock, start_deadline_seconds=120)
    marimo_pid = 0
    try:
        await reconcile_until_running(deps, rows, nid)
        loop = asyncio.get_running_loop()
        events = len(await rows.events(nid))
        marimo_pid = int((await runtime.observe(nid)).runtime_state["marimo_pid"])  # type: ignore[arg-type]

        os.killpg(marimo_pid, signal.SIGSTOP)
        assert (await runtime.observe(nid)).marimo.phase is Phase.STARTING  # alive, silent
        assert (await reconcile_once(deps, nid)).outcome == "unresponsive"
        row = await rows.get(nid)
        assert row["status"] == "running" and row["start_deadline_at"] is not None
        clock.advance(UNRESPONSIVE_GRACE_SECONDS - 1)
        assert (await reconcile_once(deps, nid)).outcome == "unresponsive"
        assert (await rows.get(nid))["status"] == "running"

        os.killpg(marimo_pid, signal.SIGCONT)  # answers again: nothing happened
        until = loop.time() + 30
        while (await runtime.observe(nid)).marimo.phase is not Phase.READY:
            assert loop.time() < until, "Marimo did not answer again"
            await asyncio.sleep(0.05)
        while (row := await rows.get(nid))["start_deadline_at"] is not None:  # disarmed
            assert loop.time() < until, row
            await reconcile_once(deps, nid)  # one that misses again keeps the grace
        assert row["status"] == "running"
        assert len(await rows.events(nid)) == events  # no status change on record
        pid_now = (await runtime.observe(nid)).runtime_state["marimo_pid"]
        assert pid_now == marimo_pid  # not restarted: the kernel's state is kept

        # Silent past the grace: the repair (its restart finds Marimo alive,
        # so only the status says so), then failed at the deadline.
        os.killpg(marimo_pid, signal.SIGSTOP)
        await reconcile_once(deps, nid)  # arms afresh
        clock.advance(UNRESPONSIVE_GRACE_SECONDS)
        await reconcile_once(deps, nid)
        row = await rows.get(nid)
        assert row["status"] == "starting", row
        assert "restarting after Marimo starting" in row["status_message"]
        clock.advance(timedelta(seconds=120).total_seconds())
        await reconcile_once(deps, nid)
        row = await rows.get(nid)
        assert row["status"] == "failed" and "start deadline passed" in row["status_message"]
    finally:
        if marimo_pid:
            os.killpg(marimo_pid, signal.SIGCONT)
        await runtime.ensure_stopped(nid)
        await runtime.close()
        await pool.close()

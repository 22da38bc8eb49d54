""" "Executing" is Marimo's own view of its kernel (GET /api/kernel/status per
session): a notebook running a long cell with nobody present is `detached`;
when the cell is interrupted it becomes `idle`. Real Sail and Marimo; the
clock is injected so the presence window passes without waiting."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest
from reconciler_helpers import processes_for

from common.clock import FakeClock
from common.db import open_pool
from common.settings import Settings
from reconciler.reconcile import Deps, reconcile_once
from reconciler.runtime.local import LocalRuntime

pytestmark = pytest.mark.slow

LONG_CELL = """import marimo

app = marimo.App()


@app.cell
def _():
    import time

    for _i in range(1200):
        time.sleep(0.1)
    return


if __name__ == "__main__":
    app.run()
"""


async def _until(check, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout
    while not await check():
        assert loop.time() < until, "condition not reached in time"
        await asyncio.sleep(0.1)


async def test_long_cell_without_presence_is_detached_then_idle_when_it_ends(
    rows, rsettings: Settings
):
    clock = FakeClock()
    nid = await rows.notebook()
    nb_dir = rsettings.data_dir / "notebooks" / nid
    nb_dir.mkdir(parents=True)
    (nb_dir / "notebook.py").write_text(LONG_CELL)
    await rows.start(nid, now=clock.now())
    runtime = LocalRuntime(rsettings.data_dir, stop_grace_seconds=5)
    pool = await open_pool(rsettings.database_url, min_size=1, max_size=2)
    deps = Deps(pool=pool, runtime=runtime, clock=clock)
    try:

        async def running() -> bool:
            await reconcile_once(deps, nid)
            return (await rows.get(nid))["status"] == "running"

        await _until(running)
        row = await rows.get(nid)
        base = f"{row['runtime_state']['marimo_url']}/notebooks/{nid}"
        auth = {"Authorization": f"Bearer {row['session_token']}"}
        async with aiohttp.ClientSession() as http:
            # What a browser does: load the page (server token), open the
            # kernel's WebSocket, instantiate (auto-run) the notebook.
            async with http.get(f"{base}/", headers=auth) as resp:
                match = re.search(r'"serverToken":\s*"([^"]+)"', await resp.text())
            assert match, "Marimo page without a server token"
            ws = await http.ws_connect(
                base.replace("http", "ws", 1) + "/ws?session_id=browser-1", headers=auth
            )
            try:
                assert "kernel-ready" in (await ws.receive(timeout=30)).data
                headers = {
                    **auth,
                    "Marimo-Session-Id": "browser-1",
                    "Marimo-Server-Token": match.group(1),
                }
                async with http.post(
                    f"{base}/api/kernel/instantiate",
                    headers=headers,
                    json={"objectIds": [], "values": [], "autoRun": True},
                ) as resp:
                    assert resp.status == 200

                async def executing() -> bool:
                    return (await runtime.observe(nid)).executing

                await _until(executing)
                clock.advance(151)  # the presence window passes, nobody pinged
                await reconcile_once(deps, nid)
                row = await rows.get(nid)
                assert (row["status"], row["executing"]) == ("detached", True)

                async with http.post(
                    f"{base}/api/kernel/interrupt", headers=headers, json={}
                ) as resp:
                    assert resp.status == 200

                async def settled() -> bool:
                    return not (await runtime.observe(nid)).executing

                await _until(settled)
                await reconcile_once(deps, nid)
                row = await rows.get(nid)
                assert (row["status"], row["executing"]) == ("idle", False)
            finally:
                await ws.close()
        # Stop takes Marimo's kernel down with it (same process group, same directory).
        await runtime.ensure_stopped(nid)
        assert processes_for(rsettings.data_dir, nid) == []
    finally:
        await runtime.ensure_stopped(nid)
        await runtime.close()
        await pool.close()

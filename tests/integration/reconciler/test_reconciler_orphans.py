"""What runs or is stored for a notebook whose row is gone (removed by hand,
a delete cut short) is removed by the next pass for that id, with the real
local runtime and real Sail and Marimo processes."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from reconciler_helpers import kinds, processes_for

from common.clock import FakeClock
from common.ids import new_id
from common.settings import Settings
from reconciler.reconcile import Deps, reconcile_once
from reconciler.runtime.base import SessionSpec, WorkloadSpec
from reconciler.runtime.local import LocalRuntime


@pytest.mark.slow
async def test_processes_and_files_of_a_notebook_without_a_row_are_removed(
    rsettings: Settings, pool
):
    rt = LocalRuntime(rsettings.data_dir, stop_grace_seconds=5)
    nid = new_id()  # no row: as if removed by hand while it ran
    spec = SessionSpec(
        nid, new_id(), secrets.token_urlsafe(32), WorkloadSpec(), f"/notebooks/{nid}"
    )
    try:
        await rt.ensure_running(spec)
        loop = asyncio.get_running_loop()
        until = loop.time() + 30
        while kinds(processes_for(rsettings.data_dir, nid)) != ["marimo", "sail"]:
            assert loop.time() < until, "Sail and Marimo never showed up"
            await asyncio.sleep(0.05)

        result = await reconcile_once(Deps(pool=pool, runtime=rt, clock=FakeClock()), nid)

        assert result.outcome == "gone"
        assert processes_for(rsettings.data_dir, nid) == []
        assert not (rsettings.data_dir / "notebooks" / nid).exists()
        assert not (rsettings.data_dir / "run" / nid).exists()
    finally:
        await rt.close()


async def test_a_payload_that_is_not_a_notebook_id_is_never_handed_to_the_runtime(
    rsettings: Settings, pool
):
    class Refuses:
        async def delete(self, notebook_id: str) -> None:
            raise AssertionError(f"delete({notebook_id!r})")

    deps = Deps(pool=pool, runtime=Refuses(), clock=FakeClock())  # type: ignore[arg-type]
    assert (await reconcile_once(deps, "../..")).outcome == "gone"

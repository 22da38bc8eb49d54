"""The local runtime tells a start's process that died under a worker that
still runs (a failure: the start fails on it) from one that died with the
whole platform (its spawner gone too: made again). Real Sail and Marimo; a
second worker is played by forgetting, in this process, that it spawned
them (as another worker process would not know)."""

from __future__ import annotations

import os
import signal

import pytest
from reconciler_helpers import processes_under

from common.ids import new_id
from common.settings import Settings
from reconciler.runtime import procs
from reconciler.runtime.base import Phase, SessionSpec, WorkloadSpec
from reconciler.runtime.local import LocalRuntime

pytestmark = pytest.mark.slow


async def test_a_process_that_died_under_its_running_spawner_is_a_failure(
    rsettings: Settings,
) -> None:
    rt = LocalRuntime(rsettings.data_dir, stop_grace_seconds=5)
    nid = new_id()
    spec = SessionSpec(nid, new_id(), "t" * 32, WorkloadSpec(), f"/notebooks/{nid}")
    try:
        obs = await rt.ensure_running(spec)
        sail_pid = int(obs.runtime_state["sail_pid"])
        popen = procs._CHILDREN.pop(sail_pid)[0]  # another worker's view: not its child
        os.killpg(sail_pid, signal.SIGKILL)
        popen.wait()
        seen = await rt.observe(nid)
        assert seen.sail.phase is Phase.FAILED
        assert not seen.sail.unwatched  # its spawner (this process) still runs: it saw the end
    finally:
        await rt.ensure_stopped(nid)
        await rt.close()
    assert processes_under(rsettings.data_dir) == []

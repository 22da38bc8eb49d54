"""A full disk while a notebook starts: the process just spawned is not left
running untracked (each retry would start another), and the start fails with
the reason."""

from __future__ import annotations

import errno

import pytest
from reconciler_helpers import processes_under
from test_local_pool import spec_for

from common.settings import Settings
from reconciler.runtime.base import TerminalError, WorkloadSpec
from reconciler.runtime.local import LocalRuntime


async def test_a_state_that_cannot_be_written_stops_what_was_spawned(
    rsettings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = LocalRuntime(rsettings.data_dir, stop_grace_seconds=5)
    spec = spec_for(WorkloadSpec())

    def disk_full(*_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rt, "_write_state", disk_full)
    try:
        with pytest.raises(TerminalError, match="No space left on device"):
            await rt.ensure_running(spec)
        assert processes_under(rsettings.data_dir) == []
    finally:
        await rt.close()

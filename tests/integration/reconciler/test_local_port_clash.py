"""A port taken between `free_port` and the bind (another program on the
host got it first) does not fail a start: the runtime starts the process
again on another port, once; a second clash is the start's failure, with
the process's own words. Real Sail and Marimo, a port this test holds."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from reconciler_helpers import kinds, processes_for, processes_under
from test_local_lost_records import settle

from common.clock import SystemClock
from common.settings import Settings
from reconciler.reconcile import Deps
from reconciler.runtime import procs
from reconciler.runtime.local import LocalRuntime

pytestmark = pytest.mark.slow


@pytest.fixture
def held() -> Iterator[int]:
    """A port some other program listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def hand_out(monkeypatch: pytest.MonkeyPatch, picks: list[int | None]) -> None:
    """`free_port` returns these first (None: a real pick), then real picks:
    the race lost, deterministically."""
    real = procs.free_port
    queue = list(picks)
    monkeypatch.setattr(procs, "free_port", lambda: (queue.pop(0) if queue else None) or real())


@pytest.mark.parametrize("who", ["Sail", "Marimo"])
async def test_a_port_taken_before_the_bind_is_retried_on_another(
    rows, pool, rsettings: Settings, monkeypatch: pytest.MonkeyPatch, held: int, who: str
) -> None:
    # Sail's port is picked first, then Marimo's.
    hand_out(monkeypatch, [held] if who == "Sail" else [None, held])
    rt = LocalRuntime(rsettings.data_dir, stop_grace_seconds=5)
    deps = Deps(pool=pool, runtime=rt, clock=SystemClock())
    nid = await rows.notebook()
    try:
        await rows.start(nid)
        row = await settle(deps, rows, nid, "running", "failed")
        assert row["status"] == "running", row["status_message"]
        assert "failed" not in [e["to_status"] for e in await rows.events(nid)]
        state = row["runtime_state"]
        assert str(held) not in (state["sail_url"] + state["marimo_url"])
        log = rt.run_dir(nid) / f"{who.lower()}.log"
        assert "already in use" in log.read_text()  # it did clash
        assert kinds(processes_for(rsettings.data_dir, nid)) == ["marimo", "sail"]
        await rows.stop(nid)
        await settle(deps, rows, nid, "stopped")
    finally:
        await rt.close()
    assert processes_under(rsettings.data_dir) == []


async def test_a_second_clash_fails_the_start_with_the_reason(
    rows, pool, rsettings: Settings, monkeypatch: pytest.MonkeyPatch, held: int
) -> None:
    hand_out(monkeypatch, [held, None, held])  # Sail, Marimo, Sail again
    rt = LocalRuntime(rsettings.data_dir, stop_grace_seconds=5)
    deps = Deps(pool=pool, runtime=rt, clock=SystemClock())
    nid = await rows.notebook()
    try:
        await rows.start(nid)
        row = await settle(deps, rows, nid, "running", "failed")
        assert row["status"] == "failed"
        assert "Sail exited" in row["status_message"]
        assert "Address already in use" in row["status_message"]
        await settle(deps, rows, nid, "failed")  # torn down
        assert (await rt.observe(nid)).nothing_left
    finally:
        await rt.close()
    assert processes_under(rsettings.data_dir) == []

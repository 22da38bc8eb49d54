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
from reconciler.plan import LEFT_RUNNING
from reconciler.reconcile import Deps, reconcile_once
from reconciler.runtime.base import Observation, SessionSpec, WorkloadSpec
from reconciler.runtime.local import LocalRuntime
from reconciler.sweep import sweep_once


@pytest.mark.slow
async def test_processes_and_files_of_a_notebook_without_a_row_are_removed(
    rsettings: Settings, pool, rows, db
):
    rt = LocalRuntime(rsettings.data_dir, stop_grace_seconds=5)
    nid = new_id()  # no row: as if removed by hand while it ran
    await db.execute(  # it ran here once: its events outlive the row
        "insert into notebook_events (notebook_id, organization_id, to_status, actor)"
        " values (%s, %s, 'starting', 'test')",
        (nid, rows.org),
    )
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


def _pids(row: dict) -> tuple[int, int]:
    return row["runtime_state"]["sail_pid"], row["runtime_state"]["marimo_pid"]


@pytest.mark.slow
async def test_the_sweep_removes_what_runs_for_a_row_removed_by_hand_and_nothing_else(
    rows, db, worker, rsettings: Settings
):
    kept, gone = await rows.notebook(), await rows.notebook()
    shutdown = await worker()
    for nid in (kept, gone):
        await rows.start(nid)
    kept_pids = _pids(await rows.wait_running(kept))
    await rows.wait_running(gone)
    await shutdown()
    # Removed by hand while it ran, and no job left that names it: only the
    # sweep can find its processes now.
    await db.execute("delete from notebooks where id = %s", (gone,))
    await db.execute("delete from pgqueuer")
    assert kinds(processes_for(rsettings.data_dir, gone)) == ["marimo", "sail"]
    # Processes of a notebook this database never had (another database
    # pointed at the same data directory): not this sweep's to remove.
    rt = LocalRuntime(rsettings.data_dir, stop_grace_seconds=5)
    foreign = new_id()
    try:
        await rt.ensure_running(
            SessionSpec(
                foreign,
                new_id(),
                secrets.token_urlsafe(32),
                WorkloadSpec(),
                f"/notebooks/{foreign}",
            )
        )
        loop = asyncio.get_running_loop()
        until = loop.time() + 30
        while kinds(processes_for(rsettings.data_dir, foreign)) != ["marimo", "sail"]:
            assert loop.time() < until, "Sail and Marimo never showed up"
            await asyncio.sleep(0.05)

        await worker()

        def removed(_: object) -> bool:
            return (
                processes_for(rsettings.data_dir, gone) == []
                and not (rsettings.data_dir / "run" / gone).exists()
            )

        await rows.wait_for(kept, removed, timeout=30)
        assert not (rsettings.data_dir / "notebooks" / gone).exists()
        # The sweep that found it saw the others too: both left as they were.
        assert kinds(processes_for(rsettings.data_dir, foreign)) == ["marimo", "sail"]
        assert (rsettings.data_dir / "run" / foreign / "state.json").exists()
        row = await rows.get(kept)
        assert row is not None and row["status"] == "running" and _pids(row) == kept_pids
        assert kinds(processes_for(rsettings.data_dir, kept)) == ["marimo", "sail"]
    finally:
        await rt.delete(foreign)
        await rt.close()


async def test_a_notebook_created_while_the_sweep_runs_is_not_taken_for_an_orphan(rows, pool, db):
    """The runtime is listed first, the rows read after; the sweep only
    enqueues, and the pass removes only what has no row. What runs for a
    notebook this database never had is left alone."""
    orphan, foreign, created = new_id(), new_id(), new_id()
    for nid in (orphan, created):  # both ran here once: their events exist
        await db.execute(
            "insert into notebook_events (notebook_id, organization_id, to_status, actor)"
            " values (%s, %s, 'starting', 'test')",
            (nid, rows.org),
        )
    config = await rows.config()

    class CreatedWhileListing:
        """Runs all three; `created`'s row is committed while it is listed."""

        deleted: list[str] = []

        async def active_ids(self) -> set[str]:
            await db.execute(
                "insert into notebooks (id, organization_id, member_id, workload_config_id,"
                " name, created_by, updated_by) values (%s, %s, %s, %s, 'nb', %s, %s)",
                (created, rows.org, rows.member, config, rows.member, rows.member),
            )
            return {orphan, foreign, created}

        async def observe(self, notebook_id: str) -> Observation:
            return Observation(session_id=None)

        async def delete(self, notebook_id: str) -> None:
            self.deleted.append(notebook_id)

    runtime = CreatedWhileListing()
    await db.execute("delete from pgqueuer")
    # The new row is `stopped` yet listed as running, so it gets a look too
    # (what runs for a settled row is stopped); its pass finds nothing to do.
    assert await sweep_once(pool, runtime=runtime) == 2  # type: ignore[arg-type]
    cur = await db.execute("select convert_from(payload, 'utf8') as id from pgqueuer")
    queued = sorted(r["id"] for r in await cur.fetchall())
    assert queued == sorted([orphan, created])
    deps = Deps(pool=pool, runtime=runtime, clock=FakeClock())  # type: ignore[arg-type]
    for nid in queued:
        await reconcile_once(deps, nid)
    assert runtime.deleted == [orphan]
    row = await rows.get(created)
    assert row is not None and row["status"] == "stopped"


@pytest.mark.slow
async def test_the_sweep_stops_what_runs_for_a_notebook_whose_row_says_stopped(
    rows, db, worker, rsettings: Settings
):
    """A row settled where nothing should run (a database restored from a
    backup taken before the start, a teardown given up on) is on no sweep
    page; the runtime's list finds its processes and the pass stops them."""
    nid = await rows.notebook()
    shutdown = await worker()
    await rows.start(nid)
    await rows.wait_running(nid)
    await shutdown()
    await db.execute(
        "update notebooks set desired_state = 'stopped', status = 'stopped',"
        " runtime_state = '{}', session_id = null, session_token = null where id = %s",
        (nid,),
    )
    await db.execute("delete from pgqueuer")
    assert kinds(processes_for(rsettings.data_dir, nid)) == ["marimo", "sail"]

    await worker()

    async def moves() -> list[tuple[str, str, str]]:
        return [(e["from_status"], e["to_status"], e["reason"]) for e in await rows.events(nid)]

    # The row was `stopped` all along: done once it went through `stopping`.
    loop = asyncio.get_running_loop()
    until = loop.time() + 60
    while ("stopping", "stopped", LEFT_RUNNING) not in await moves():
        assert loop.time() < until, await moves()
        await asyncio.sleep(0.05)
    assert ("stopped", "stopping", LEFT_RUNNING) in await moves()  # said, and on record
    assert processes_for(rsettings.data_dir, nid) == []
    assert not (rsettings.data_dir / "run" / nid / "state.json").exists()

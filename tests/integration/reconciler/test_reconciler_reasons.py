"""A reason outlives a teardown that fails: an auto-stop's reason and a failed
start's real reason are committed before anything is torn down, so a
transient error (or a worker dying) during the teardown cannot lose them, and
what is left over is still removed by a later pass (which the sweep
enqueues). Real database, injected clock; the runtime is a fake named by its
behaviour."""

from __future__ import annotations

from typing import Any

import pytest
from reconciler_helpers import NoFile

from common.clock import FakeClock
from reconciler.reconcile import Deps, reconcile_once
from reconciler.runtime.base import Component, Observation, Phase, SessionSpec
from reconciler.sweep import sweep_once

READY = Component(Phase.READY)
SAIL_DIED = Component(Phase.FAILED, "Sail exited with code 2: unknown SAIL_MODE")


class TeardownFailsOnce(NoFile):
    """Shows `shown` until torn down; the first teardown fails (a transient
    error, as if the worker died in the middle of it)."""

    def __init__(self, shown: Observation) -> None:
        self.shown = shown
        self.up = True
        self.teardowns = 0

    async def observe(self, notebook_id: str) -> Observation:
        return self.shown if self.up else Observation(session_id=None)

    async def ensure_running(self, spec: SessionSpec) -> Observation:
        raise AssertionError("nothing is started in these tests")

    async def ensure_stopped(self, notebook_id: str) -> None:
        self.teardowns += 1
        if self.teardowns == 1:
            raise ConnectionResetError("teardown cut short")
        self.up = False

    async def delete(self, notebook_id: str) -> None:
        await self.ensure_stopped(notebook_id)

    async def close(self) -> None:
        pass


def _shown(session: str, sail: Component) -> Observation:
    return Observation(
        session,
        sail=sail,
        marimo=READY,
        runtime_state={"runtime": "test", "marimo_url": "http://127.0.0.1:1"},
    )


async def _queued(db: Any) -> set[str]:
    cur = await db.execute("select convert_from(payload, 'utf8') as id from pgqueuer")
    return {r["id"] for r in await cur.fetchall()}


async def test_auto_stop_reason_is_committed_with_the_stop_before_the_teardown(rows, pool):
    clock = FakeClock()
    nid = await rows.notebook()
    await rows.start(nid, now=clock.now())
    runtime = TeardownFailsOnce(_shown((await rows.get(nid))["session_id"], READY))
    deps = Deps(pool=pool, runtime=runtime, clock=clock)
    assert (await reconcile_once(deps, nid)).outcome == "ready"
    changed = {k: (await rows.get(nid))[k] for k in ("updated_at", "updated_by")}

    clock.advance(3600)  # nobody came back since the start: idle for the whole timeout
    with pytest.raises(ConnectionResetError):
        await reconcile_once(deps, nid)
    row = await rows.get(nid)
    assert (row["desired_state"], row["status"]) == ("stopped", "stopping")
    # "Updated … by" stays the member's last change: the stop is the platform's (its event).
    assert {k: row[k] for k in changed} == changed
    assert row["status_message"] == "idle for 1 h"

    # The next passes finish the teardown; the reason stays the auto-stop's.
    assert (await reconcile_once(deps, nid)).outcome == "stopping"
    assert (await reconcile_once(deps, nid)).outcome == "stopped"
    events = [(e["to_status"], e["reason"], e["actor"]) for e in await rows.events(nid)]
    assert [e for e in events if e[0] == "stopping"] == [("stopping", "idle for 1 h", "reconciler")]
    assert events[-1][0] == "stopped"


async def test_failed_start_reason_is_recorded_before_the_teardown_and_leftovers_go_later(
    rows, pool, db
):
    clock = FakeClock()
    nid = await rows.notebook()
    await rows.start(nid, now=clock.now(), deadline=60)
    runtime = TeardownFailsOnce(_shown((await rows.get(nid))["session_id"], SAIL_DIED))
    deps = Deps(pool=pool, runtime=runtime, clock=clock)

    with pytest.raises(ConnectionResetError):
        await reconcile_once(deps, nid)
    row = await rows.get(nid)
    assert (row["status"], row["status_message"]) == ("failed", SAIL_DIED.detail)
    assert row["runtime_state"] != {}  # something is left, as the sweep sees it

    # The job may be lost with its worker: the sweep still finds the leftovers.
    await db.execute("delete from pgqueuer")
    assert await sweep_once(pool) is not None
    assert nid in await _queued(db)

    clock.advance(120)  # long past the start deadline: the reason must not turn into that
    assert (await reconcile_once(deps, nid)).outcome == "cleanup"
    row = await rows.get(nid)
    assert (row["status"], row["status_message"]) == ("failed", SAIL_DIED.detail)
    assert row["runtime_state"] == {} and not runtime.up
    failed = [e["reason"] for e in await rows.events(nid) if e["to_status"] == "failed"]
    assert failed == [SAIL_DIED.detail]

    # Nothing left: the sweep no longer looks at it.
    await db.execute("delete from pgqueuer")
    await sweep_once(pool)
    assert nid not in await _queued(db)


async def test_sweep_looks_at_failed_notebooks_only_while_something_is_left(rows, pool, db):
    leftovers = await rows.notebook(
        desired_state="running", status="failed", runtime_state='{"runtime": "local"}'
    )
    clean = await rows.notebook(desired_state="running", status="failed")
    await db.execute("delete from pgqueuer")
    await sweep_once(pool)
    queued = await _queued(db)
    assert leftovers in queued and clean not in queued


class PatchedWhileObserving(TeardownFailsOnce):
    """As a member's PATCH of the idle timeout lands between the reconciler's
    read of the row and its auto-stop write: during the observation."""

    def __init__(self, shown: Observation, db: Any, nid: str) -> None:
        super().__init__(shown)
        self.db, self.nid, self.patch = db, nid, False

    async def observe(self, notebook_id: str) -> Observation:
        if self.patch:
            self.patch = False
            await self.db.execute(
                "update notebooks set idle_timeout_seconds = 0 where id = %s", (self.nid,)
            )
        return await super().observe(notebook_id)


async def test_an_idle_timeout_turned_off_during_a_pass_is_not_auto_stopped_by_it(rows, pool, db):
    clock = FakeClock()
    nid = await rows.notebook()
    await rows.start(nid, now=clock.now())
    runtime = PatchedWhileObserving(_shown((await rows.get(nid))["session_id"], READY), db, nid)
    deps = Deps(pool=pool, runtime=runtime, clock=clock)
    assert (await reconcile_once(deps, nid)).outcome == "ready"

    clock.advance(3600)  # idle for the whole (old) timeout, as the pass reads it
    runtime.patch = True
    await reconcile_once(deps, nid)
    row = await rows.get(nid)
    assert row["desired_state"] == "running" and row["idle_timeout_seconds"] == 0
    assert runtime.teardowns == 0
    # The next pass reads the new timeout (never): still nothing stops it.
    await reconcile_once(deps, nid)
    assert (await rows.get(nid))["desired_state"] == "running"

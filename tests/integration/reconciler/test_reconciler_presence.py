"""running ↔ idle ↔ detached and auto-stop, driven by an injected clock, on a
real database. The runtime here is a fake named by its behaviour (always
healthy; `executing` set by the test): what is under test is the reconcile
pass, its status writes, events and the sweep that enqueues it."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY
from psycopg_pool import AsyncConnectionPool
from reconciler_helpers import NoFile

from common.clock import FakeClock
from common.db import open_pool
from common.settings import Settings
from common.statuses import SAVE_WINDOW_SECONDS, STOP_REQUESTED
from reconciler.reconcile import Deps, reconcile_once
from reconciler.runtime.base import Component, Observation, Phase, SessionSpec
from reconciler.sweep import sweep_once


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class HealthyRuntime(NoFile):
    """Sail and Marimo always ready; tests flip `executing` and watch stops."""

    def __init__(self) -> None:
        self.executing = False
        self.up = True
        self.stopped: list[str] = []

    async def observe(self, notebook_id: str) -> Observation:
        if not self.up:
            return Observation(session_id=None)
        ready = Component(Phase.READY)
        return Observation(
            session_id=self.session,
            sail=ready,
            marimo=ready,
            executing=self.executing,
            marimo_url="http://127.0.0.1:1",
            sail_url="sc://127.0.0.1:2",
            runtime_state={"marimo_url": "http://127.0.0.1:1", "sail_url": "sc://127.0.0.1:2"},
        )

    async def ensure_running(self, spec: SessionSpec) -> Observation:
        self.up = True
        return await self.observe(spec.notebook_id)

    async def ensure_stopped(self, notebook_id: str) -> None:
        self.up = False
        self.stopped.append(notebook_id)

    async def delete(self, notebook_id: str) -> None:
        await self.ensure_stopped(notebook_id)

    async def close(self) -> None:
        pass

    session: str | None = None


async def _setup(rows, rsettings: Settings, clock: FakeClock, **cols):  # type: ignore[no-untyped-def]
    nid = await rows.notebook(**cols)
    await rows.start(nid, now=clock.now())
    row = await rows.get(nid)
    runtime = HealthyRuntime()
    runtime.session = row["session_id"]
    pool: AsyncConnectionPool = await open_pool(rsettings.database_url, min_size=1, max_size=2)
    deps = Deps(pool=pool, runtime=runtime, clock=clock, presence_window_seconds=150)
    return nid, runtime, deps


async def test_presence_moves_running_idle_detached_and_idle_timer_auto_stops(
    rows, rsettings: Settings
):
    clock = FakeClock()
    nid, runtime, deps = await _setup(rows, rsettings, clock)
    try:
        started_before = _sample("notebooks_start_running_seconds_count")
        assert (await reconcile_once(deps, nid)).outcome == "ready"
        assert _sample("notebooks_start_running_seconds_count") == started_before + 1
        assert (await rows.get(nid))["status"] == "running"

        # No ping within the presence window (the start counted as one) → idle.
        clock.advance(151)
        await reconcile_once(deps, nid)
        assert (await rows.get(nid))["status"] == "idle"

        # A ping → running again.
        await rows.ping(nid, clock.now())
        await reconcile_once(deps, nid)
        assert (await rows.get(nid))["status"] == "running"

        # Nobody there but a cell is executing → detached.
        clock.advance(151)
        runtime.executing = True
        await reconcile_once(deps, nid)
        row = await rows.get(nid)
        assert (row["status"], row["executing"]) == ("detached", True)

        # Work ends → idle; the idle timer counts from then.
        clock.advance(1000)
        runtime.executing = False
        await reconcile_once(deps, nid)
        row = await rows.get(nid)
        assert row["status"] == "idle" and row["last_active_at"] == clock.now()

        clock.advance(3599)
        await reconcile_once(deps, nid)
        assert (await rows.get(nid))["status"] == "idle"

        # Idle for the whole timeout → auto-stop with the reason, then stopped.
        clock.advance(1)
        stops_before = _sample("notebooks_autostops_triggered_total", reason="idle")
        result = await reconcile_once(deps, nid)
        assert _sample("notebooks_autostops_triggered_total", reason="idle") == stops_before + 1
        assert result.outcome == "auto_stop" and runtime.stopped == [nid]
        row = await rows.get(nid)
        assert (row["status"], row["desired_state"]) == ("stopping", "stopped")
        assert row["status_message"] == "idle for 1 h"
        await reconcile_once(deps, nid)
        row = await rows.get(nid)
        assert row["status"] == "stopped" and row["session_id"] is None

        events = [(e["to_status"], e["reason"], e["actor"]) for e in await rows.events(nid)]
        # Every change says why (DESIGN §4), also those whose status message,
        # shown on the notebook, stays empty.
        assert rsettings.presence_window_seconds == 150
        absent = "no member present for 150 s"  # not a whole number of minutes
        assert [(to, why) for to, why, _ in events[1:-1]] == [
            ("running", "Sail and Marimo are ready"),
            ("idle", absent),
            ("running", "a member is present"),
            ("detached", f"{absent}; a cell is running"),
            ("idle", f"the running cells finished; {absent}"),
            ("stopping", "idle for 1 h"),
        ]
        assert [e[0] for e in events] == [
            "starting",
            "running",
            "idle",
            "running",
            "detached",
            "idle",
            "stopping",
            "stopped",
        ]
        assert ("stopping", "idle for 1 h", "reconciler") in events
    finally:
        await deps.pool.close()


async def test_detached_timer_auto_stops_unattended_work(rows, rsettings: Settings):
    clock = FakeClock()
    nid, runtime, deps = await _setup(rows, rsettings, clock, detached_timeout_seconds=600)
    try:
        await reconcile_once(deps, nid)
        runtime.executing = True
        clock.advance(151)
        await reconcile_once(deps, nid)
        assert (await rows.get(nid))["status"] == "detached"
        clock.advance(600 - 151)
        await reconcile_once(deps, nid)
        row = await rows.get(nid)
        assert (row["status"], row["status_message"]) == ("stopping", "detached for 10 min")
    finally:
        await deps.pool.close()


async def test_the_organizations_cap_stops_a_notebook_set_to_never(rows, rsettings: Settings):
    """An org admin's cap (migration 0019) bounds a notebook whose member
    chose "never" before it was set: read with the notebook on every pass."""
    clock = FakeClock()
    nid, _runtime, deps = await _setup(rows, rsettings, clock, idle_timeout_seconds=0)
    try:
        await reconcile_once(deps, nid)
        clock.advance(1800)
        await reconcile_once(deps, nid)
        assert (await rows.get(nid))["status"] == "idle"  # no cap yet: never
        await rows.conn.execute(
            "update organizations set max_idle_timeout_seconds = 1800 where id = %s", (rows.org,)
        )
        assert (await reconcile_once(deps, nid)).outcome == "auto_stop"
        row = await rows.get(nid)
        assert (row["status"], row["desired_state"]) == ("stopping", "stopped")
        assert row["status_message"] == "idle for 30 min (the organization's limit)"
        assert row["idle_timeout_seconds"] == 0  # the member's own is kept
    finally:
        await deps.pool.close()


async def test_a_cap_raised_during_a_pass_is_not_overridden_by_the_old_one(
    rows, rsettings: Settings
):
    """The auto-stop holds only if the cap it read is still the cap, as it
    holds only if the notebook's own timeouts are (an admin who just raised
    it keeps the notebooks it would have stopped running)."""
    clock = FakeClock()
    nid, runtime, deps = await _setup(rows, rsettings, clock)
    await rows.conn.execute(
        "update organizations set max_idle_timeout_seconds = 600 where id = %s", (rows.org,)
    )
    try:
        await reconcile_once(deps, nid)
        clock.advance(600)

        class RaiseDuringObserve(HealthyRuntime):
            async def observe(self, notebook_id: str) -> Observation:
                await rows.conn.execute(
                    "update organizations set max_idle_timeout_seconds = 0 where id = %s",
                    (rows.org,),
                )
                return await super().observe(notebook_id)

        racing = RaiseDuringObserve()
        racing.session = runtime.session
        deps = Deps(pool=deps.pool, runtime=racing, clock=clock)
        assert (await reconcile_once(deps, nid)).outcome == "conflict"
        assert racing.stopped == []
        await reconcile_once(deps, nid)  # the next pass reads the raised cap
        row = await rows.get(nid)
        assert (row["status"], row["desired_state"]) == ("idle", "running")
    finally:
        await deps.pool.close()


async def test_a_secret_value_in_a_failure_is_blanked_out_of_the_status_and_history(
    rows, rsettings: Settings
):
    """Members read status messages and the history, kept after a password
    is rotated: a Marimo that died printing its workload config's secret
    value (its connection string, say) is recorded without it."""
    secret = "postgres://app:hunter2-rotated@db/warehouse"
    config = await rows.config()
    await rows.conn.execute(
        "update workload_configs set secret_env = %s where id = %s",
        (json.dumps({"WAREHOUSE_URL": secret, "SHORT": "abc"}), config),
    )
    clock = FakeClock()
    nid, runtime, deps = await _setup(rows, rsettings, clock, workload_config_id=config)

    class DiesSayingIt(HealthyRuntime):
        async def observe(self, notebook_id: str) -> Observation:
            died = Component(Phase.FAILED, f"Marimo exited with code 1: cannot reach {secret} abc")
            seen = await super().observe(notebook_id)
            return replace(seen, marimo=died)

    dying = DiesSayingIt()
    dying.session = runtime.session
    try:
        await reconcile_once(Deps(pool=deps.pool, runtime=dying, clock=clock), nid)
        row = await rows.get(nid)
        assert row["status"] == "failed"
        assert row["status_message"] == "Marimo exited with code 1: cannot reach *** abc"
        assert all(secret not in (e["reason"] or "") for e in await rows.events(nid))
    finally:
        await deps.pool.close()


async def test_sweep_enqueues_unsettled_and_provisioned_notebooks_only(
    rows, db, rsettings: Settings
):
    stopped = await rows.notebook()
    starting = await rows.notebook()
    await rows.start(starting)
    running = await rows.notebook(status="running", desired_state="running")
    await db.execute("delete from pgqueuer")
    pool = await open_pool(rsettings.database_url, min_size=1, max_size=2)
    try:
        assert await sweep_once(pool) == 2
        cur = await db.execute("select convert_from(payload, 'utf8') as id from pgqueuer")
        queued = {r["id"] for r in await cur.fetchall()}
        assert queued == {starting, running} and stopped not in queued
        # One sweeper at a time: while another holds the lock, this round is skipped.
        async with pool.connection() as other, other.transaction():
            await other.execute("select pg_advisory_xact_lock(7310003)")
            assert await sweep_once(pool) is None
    finally:
        await pool.close()


async def test_start_deadline_fails_and_tears_down(rows, rsettings: Settings):
    clock = FakeClock()
    nid, runtime, deps = await _setup(rows, rsettings, clock)

    class NeverReady(HealthyRuntime):
        async def observe(self, notebook_id: str) -> Observation:
            if not self.up:
                return Observation(session_id=None)
            return Observation(
                session_id=self.session,
                sail=Component(Phase.READY),
                marimo=Component(Phase.STARTING),
            )

    slow = NeverReady()
    slow.session = runtime.session
    deps = Deps(pool=deps.pool, runtime=slow, clock=clock, start_deadline_seconds=60)
    try:
        assert (await reconcile_once(deps, nid)).outcome == "starting"  # arms the deadline
        assert (await rows.get(nid))["status_message"] == "waiting for Marimo"
        clock.advance(timedelta(seconds=60).total_seconds())
        assert (await reconcile_once(deps, nid)).outcome == "deadline"
        row = await rows.get(nid)
        assert row["status"] == "failed" and "start deadline passed" in row["status_message"]
        assert slow.stopped == [nid]
    finally:
        await deps.pool.close()


async def test_a_ping_landing_during_a_pass_is_not_overwritten(rows, rsettings: Settings):
    clock = FakeClock()
    nid, runtime, deps = await _setup(rows, rsettings, clock)
    try:
        await reconcile_once(deps, nid)
        clock.advance(151)
        await reconcile_once(deps, nid)
        assert (await rows.get(nid))["status"] == "idle"

        class PingDuringObserve(HealthyRuntime):
            async def observe(self, notebook_id: str) -> Observation:
                if not self.pinged:
                    # What the API's ping does: presence, activity, idle → running.
                    self.pinged = True
                    await rows.ping(nid, clock.now())
                    await rows._status(nid, "running", clock.now())
                return await super().observe(notebook_id)

            pinged = False

        racing = PingDuringObserve()
        racing.session = runtime.session
        racing.executing = True  # the pass would otherwise decide `detached`
        deps = Deps(pool=deps.pool, runtime=racing, clock=clock)
        assert (await reconcile_once(deps, nid)).outcome == "conflict"
        assert (await rows.get(nid))["status"] == "running"
        await reconcile_once(deps, nid)  # the next pass sees the ping
        assert (await rows.get(nid))["status"] == "running"
    finally:
        await deps.pool.close()


async def test_a_ping_on_a_running_notebook_during_a_pass_is_not_undone_by_idle(
    rows, rsettings: Settings
):
    """A ping on a `running` notebook moves no status, only presence and
    last_active_at; a pass that read the row before it and decided `idle`
    must not write that (a spurious running → idle → running)."""
    clock = FakeClock()
    nid, runtime, deps = await _setup(rows, rsettings, clock)
    try:
        assert (await reconcile_once(deps, nid)).outcome == "ready"
        clock.advance(151)  # the start's presence window is over; nobody pinged yet

        class PingDuringObserve(HealthyRuntime):
            async def observe(self, notebook_id: str) -> Observation:
                if not self.pinged:
                    self.pinged = True  # the API's ping: presence and activity, no status
                    await rows.ping(nid, clock.now())
                return await super().observe(notebook_id)

            pinged = False

        racing = PingDuringObserve()
        racing.session = runtime.session
        deps = Deps(pool=deps.pool, runtime=racing, clock=clock)
        assert (await reconcile_once(deps, nid)).outcome == "conflict"
        assert (await rows.get(nid))["status"] == "running"
        assert (await reconcile_once(deps, nid)).outcome == "noop"  # the next pass sees it
        assert [e["to_status"] for e in await rows.events(nid)] == ["starting", "running"]

        # Without a ping the same pass goes idle (what the ping prevented).
        clock.advance(151)
        assert (await reconcile_once(deps, nid)).outcome == "idle"
    finally:
        await deps.pool.close()


async def test_a_presence_only_ping_during_a_pass_is_not_undone_by_idle(
    rows, db, rsettings: Settings
):
    """A second member's first ping writes presence only (last_active_at is
    written at most once per 15 s, and was just written): still seen."""
    clock = FakeClock()
    nid, runtime, deps = await _setup(rows, rsettings, clock)
    try:
        await reconcile_once(deps, nid)
        clock.advance(151)
        other = "OTHERMEMBER1"
        await db.execute(
            "insert into members (id, organization_id, email, name) values (%s, %s, 'b@x', 'B')",
            (other, rows.org),
        )

        class PresenceDuringObserve(HealthyRuntime):
            async def observe(self, notebook_id: str) -> Observation:
                if not self.pinged:
                    self.pinged = True
                    await db.execute(
                        "insert into notebook_presence (notebook_id, member_id, last_seen_at)"
                        " values (%s, %s, %s)",
                        (nid, other, clock.now()),
                    )
                return await super().observe(notebook_id)

            pinged = False

        racing = PresenceDuringObserve()
        racing.session = runtime.session
        deps = Deps(pool=deps.pool, runtime=racing, clock=clock)
        assert (await reconcile_once(deps, nid)).outcome == "conflict"
        assert (await reconcile_once(deps, nid)).outcome == "noop"
        assert (await rows.get(nid))["status"] == "running"
    finally:
        await deps.pool.close()


async def test_a_members_stop_waits_out_the_save_window_when_someone_is_present(
    rows, rsettings: Settings
):
    """The editor saves what was typed last about 1 s after the last
    keystroke, while its socket is open: Marimo is stopped only once the
    save window from the Stop is over, when a member was present. Nobody
    present, it stops at once (the next test's first half)."""
    clock = FakeClock()
    nid, runtime, deps = await _setup(rows, rsettings, clock)
    try:
        assert (await reconcile_once(deps, nid)).outcome == "ready"
        await rows.ping(nid, clock.now())
        clock.advance(1)
        await rows.stop(nid, message=STOP_REQUESTED, now=clock.now())
        clock.advance(1)
        waited = await reconcile_once(deps, nid)
        assert waited.outcome == "saving" and runtime.stopped == []
        assert waited.requeue_after == pytest.approx(SAVE_WINDOW_SECONDS - 1)
        row = await rows.get(nid)
        assert (row["status"], row["status_message"]) == ("stopping", STOP_REQUESTED)
        clock.advance(SAVE_WINDOW_SECONDS - 1)
        assert (await reconcile_once(deps, nid)).outcome == "stopping"
        assert runtime.stopped == [nid]
        await reconcile_once(deps, nid)
        assert (await rows.get(nid))["status"] == "stopped"
    finally:
        await deps.pool.close()


async def test_a_members_stop_with_nobody_present_stops_at_once(rows, rsettings: Settings):
    clock = FakeClock()
    nid, runtime, deps = await _setup(rows, rsettings, clock)
    try:
        assert (await reconcile_once(deps, nid)).outcome == "ready"
        await rows.ping(nid, clock.now())
        clock.advance(150)  # the ping is a presence window old
        await rows.stop(nid, message=STOP_REQUESTED, now=clock.now())
        assert (await reconcile_once(deps, nid)).outcome == "stopping"
        assert runtime.stopped == [nid]
    finally:
        await deps.pool.close()

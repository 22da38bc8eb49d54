"""The start deadline measures a start's attempt, not the wait for a worker:
a start queued while no worker ran is tried when one comes, however long
that took, and once tried it still ends within the deadline (injected clock,
real database, a fake runtime named by its behaviour)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from reconciler_helpers import NoFile

from common.clock import FakeClock
from reconciler.plan import Action
from reconciler.reconcile import Deps, reconcile_once
from reconciler.runtime.base import Component, Observation, Phase, SessionSpec

DEADLINE = 120  # NOTEBOOKS_START_DEADLINE_SECONDS' default, the API's and the workers'


class StartsWhenAsked(NoFile):
    """Nothing runs until `ensure_running`; then Sail and Marimo are starting,
    and ready at the next look (or never, with `ready=False`). `error`: every
    start raises it (a runtime whose API keeps failing)."""

    def __init__(self, *, ready: bool = True, error: Exception | None = None) -> None:
        self.ready, self.error = ready, error
        self.session: str | None = None
        self.starts = 0
        self.stopped = 0

    async def observe(self, notebook_id: str) -> Observation:
        if self.session is None:
            return Observation(session_id=None)
        phase = Phase.READY if self.ready else Phase.STARTING
        return Observation(self.session, sail=Component(phase), marimo=Component(phase))

    async def ensure_running(self, spec: SessionSpec) -> Observation:
        self.starts += 1
        if self.error is not None:
            raise self.error
        self.session = spec.session_id
        starting = Component(Phase.STARTING)
        return Observation(spec.session_id, sail=starting, marimo=starting)

    async def ensure_stopped(self, notebook_id: str) -> None:
        self.stopped += 1
        self.session = None

    async def delete(self, notebook_id: str) -> None:
        await self.ensure_stopped(notebook_id)

    async def close(self) -> None:
        pass


def _deps(pool, runtime, clock: FakeClock) -> Deps:  # type: ignore[no-untyped-def]
    return Deps(pool=pool, runtime=runtime, clock=clock, start_deadline_seconds=DEADLINE)


async def test_a_start_no_worker_took_for_ten_minutes_is_started_not_failed(rows, pool):
    clock = FakeClock()
    nid = await rows.notebook()
    await rows.start(nid, now=clock.now(), deadline=DEADLINE)  # as the API writes it
    clock.advance(600)  # every worker down, or the queue backed up
    runtime = StartsWhenAsked()
    deps = _deps(pool, runtime, clock)

    result = await reconcile_once(deps, nid)
    assert result.outcome == "starting", (await rows.get(nid))["status_message"]
    assert result.actions == (Action.ARM_DEADLINE, Action.ENSURE_RUNNING)
    assert runtime.starts == 1 and runtime.stopped == 0
    row = await rows.get(nid)
    assert row["status"] == "starting"
    # The deadline now counts from this attempt.
    assert row["start_deadline_at"] == clock.now() + timedelta(seconds=DEADLINE)
    assert row["start_deadline_session_id"] == row["session_id"]

    assert (await reconcile_once(deps, nid)).outcome == "ready"
    assert (await rows.get(nid))["status"] == "running"
    assert [e["to_status"] for e in await rows.events(nid)] == ["starting", "running"]


async def test_a_start_whose_attempts_keep_failing_still_fails_at_its_deadline(rows, pool):
    """Armed before the attempt: a start that raises every time (and so never
    gets to write anything after it) is still bounded by the deadline."""
    clock = FakeClock()
    nid = await rows.notebook()
    await rows.start(nid, now=clock.now(), deadline=DEADLINE)
    clock.advance(600)
    runtime = StartsWhenAsked(error=ConnectionResetError("API server unavailable"))
    deps = _deps(pool, runtime, clock)

    with pytest.raises(ConnectionResetError):
        await reconcile_once(deps, nid)
    armed_at = clock.now()
    clock.advance(DEADLINE - 1)
    with pytest.raises(ConnectionResetError):  # retried, with the same deadline
        await reconcile_once(deps, nid)
    assert runtime.starts == 2
    row = await rows.get(nid)
    assert row["status"] == "starting"
    assert row["start_deadline_at"] == armed_at + timedelta(seconds=DEADLINE)

    clock.advance(1)
    assert (await reconcile_once(deps, nid)).outcome == "deadline"
    row = await rows.get(nid)
    assert row["status"] == "failed"
    assert row["status_message"] == (  # the last attempt's error first
        "start deadline passed: ConnectionResetError: API server unavailable"
        " (Sail absent; Marimo absent)"
    )
    assert runtime.starts == 2 and runtime.stopped == 1  # torn down, not tried again


async def test_a_start_never_ready_fails_a_deadline_after_its_first_attempt(rows, pool):
    clock = FakeClock()
    nid = await rows.notebook()
    await rows.start(nid, now=clock.now(), deadline=DEADLINE)
    clock.advance(600)
    runtime = StartsWhenAsked(ready=False)
    deps = _deps(pool, runtime, clock)
    assert (await reconcile_once(deps, nid)).outcome == "starting"
    clock.advance(DEADLINE - 1)
    assert (await reconcile_once(deps, nid)).actions == ()  # armed once, started once
    clock.advance(1)
    assert (await reconcile_once(deps, nid)).outcome == "deadline"
    row = await rows.get(nid)
    assert (row["status"], row["status_message"]) == (
        "failed",
        "start deadline passed (Sail starting; Marimo starting)",
    )


async def test_a_start_stopped_while_its_first_pass_looked_is_not_attempted(rows, pool):
    clock = FakeClock()
    nid = await rows.notebook()
    await rows.start(nid, now=clock.now(), deadline=DEADLINE)

    class StoppedWhileObserving(StartsWhenAsked):
        async def observe(self, notebook_id: str) -> Observation:
            if not self.stopped_once:
                self.stopped_once = True
                await rows.stop(nid)  # a member's stop lands after the pass read the row
            return await super().observe(notebook_id)

        stopped_once = False

    runtime = StoppedWhileObserving()
    result = await reconcile_once(_deps(pool, runtime, clock), nid)
    assert (result.outcome, result.requeue_after) == ("conflict", 0)  # plan again at once
    assert runtime.starts == 0
    row = await rows.get(nid)
    assert row["start_deadline_session_id"] is None and row["desired_state"] == "stopped"

"""A repair whose restart keeps raising (a transient error every time: the
API server or the disk refusing, a spawn raising OSError) ends `failed`
within the start deadline counted from its first attempt, torn down, with a
reason naming the repair and its last error; meanwhile the status message
says the restart is failing. Injected clock, real database; fakes named by
behaviour, the real worker and pgqueuer, and real Sail and Marimo."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from reconciler_helpers import NoFile, processes_for

from common.clock import FakeClock
from common.db import open_pool
from common.jobs import enqueue_reconcile
from common.settings import Settings
from reconciler.plan import Action
from reconciler.reconcile import Deps, RepairRefused, reconcile_once
from reconciler.runtime.base import Component, Observation, Phase, SessionSpec, TerminalError
from reconciler.runtime.local import LocalRuntime
from reconciler.worker import run_worker

DEADLINE = 120
KILLED = "Marimo exited with code -9: killed"
DISK_FULL = OSError(errno.ENOSPC, "No space left on device")
RETRYING = "restarting Marimo failed, retrying: OSError: [Errno 28] No space left on device"


class MarimoDiesAndCannotRestart(NoFile):
    """Sail and Marimo start and get ready; `kill()` makes Marimo a dead
    process (not terminal: a restart may help); while `refusing`, every
    `ensure_running` raises it (a runtime whose API or disk keeps refusing)."""

    def __init__(self) -> None:
        self.session: str | None = None
        self.marimo = Component(Phase.READY)
        self.refusing: Exception | None = None
        self.starts = 0
        self.stopped = 0

    def kill(self, refusing: Exception | None = DISK_FULL) -> None:
        self.marimo = Component(Phase.FAILED, KILLED)
        self.refusing = refusing

    async def observe(self, notebook_id: str) -> Observation:
        if self.session is None:
            return Observation(session_id=None)
        if self.marimo.phase is Phase.STARTING:
            self.marimo = Component(Phase.READY)  # ready at the next look
        return Observation(self.session, sail=Component(Phase.READY), marimo=self.marimo)

    async def ensure_running(self, spec: SessionSpec) -> Observation:
        self.starts += 1
        if self.refusing is not None:
            raise self.refusing
        self.session = spec.session_id
        if self.marimo.phase is not Phase.READY:
            self.marimo = Component(Phase.STARTING)
        return Observation(spec.session_id, sail=Component(Phase.READY), marimo=self.marimo)

    async def ensure_stopped(self, notebook_id: str) -> None:
        self.stopped += 1
        self.session = None

    async def delete(self, notebook_id: str) -> None:
        await self.ensure_stopped(notebook_id)

    async def active_ids(self) -> set[str]:
        return set() if self.session is None else {"?"}

    async def close(self) -> None:
        pass


async def _running(rows, deps: Deps, clock: FakeClock) -> str:  # type: ignore[no-untyped-def]
    nid = await rows.notebook()
    await rows.start(nid, now=clock.now(), deadline=DEADLINE)
    assert (await reconcile_once(deps, nid)).outcome == "starting"
    assert (await reconcile_once(deps, nid)).outcome == "ready"
    assert (await rows.get(nid))["status"] == "running"
    return nid


def _starts_timed() -> float:
    return REGISTRY.get_sample_value("notebooks_start_running_seconds_count") or 0.0


async def test_a_repair_is_not_timed_as_a_start(rows, pool):
    """The start-time histogram (and NotebooksStartSlow on it) measures a
    start request to running; a repair hours later is no start, and timed
    from the request it would add the session's age."""
    clock = FakeClock()
    runtime = MarimoDiesAndCannotRestart()
    deps = Deps(pool=pool, runtime=runtime, clock=clock, start_deadline_seconds=DEADLINE)
    before = _starts_timed()
    nid = await _running(rows, deps, clock)
    assert _starts_timed() == before + 1
    clock.advance(5 * 3600)
    runtime.kill(refusing=None)
    assert (await reconcile_once(deps, nid)).outcome == "repair"
    assert (await rows.get(nid))["status"] == "starting"
    assert (await reconcile_once(deps, nid)).outcome == "ready"
    assert (await rows.get(nid))["status"] == "running"
    assert _starts_timed() == before + 1


def _start_seconds_sum() -> float:
    return REGISTRY.get_sample_value("notebooks_start_running_seconds_sum") or 0.0


async def test_a_workers_clock_behind_the_apis_times_neither_a_negative_start_nor_a_repair(
    rows, pool
):
    """The API's host runs 10 minutes ahead of the worker's: the start is
    timed as no less than nothing, and the repair hours later is still no
    start (its events are stamped after the request the API wrote)."""
    clock = FakeClock()
    runtime = MarimoDiesAndCannotRestart()
    deps = Deps(pool=pool, runtime=runtime, clock=clock, start_deadline_seconds=DEADLINE)
    api_now = clock.now() + timedelta(minutes=10)
    nid = await rows.notebook()
    await rows.start(nid, now=api_now, deadline=DEADLINE)
    await rows.conn.execute("update notebooks set updated_at = %s where id = %s", (api_now, nid))
    count, total = _starts_timed(), _start_seconds_sum()
    assert (await reconcile_once(deps, nid)).outcome == "starting"
    assert (await reconcile_once(deps, nid)).outcome == "ready"
    assert (_starts_timed(), _start_seconds_sum()) == (count + 1, total)
    clock.advance(5 * 3600)
    runtime.kill(refusing=None)
    assert (await reconcile_once(deps, nid)).outcome == "repair"
    assert (await reconcile_once(deps, nid)).outcome == "ready"
    assert _starts_timed() == count + 1


async def test_a_repair_refused_as_terminal_is_retried_until_its_deadline(rows, pool):
    """A repair's restart refused with what a start would fail on at once (a
    namespace quota full while a drained node's pods still terminate) does
    not fail a running notebook at once: retried within the repair's
    deadline, saying why, then failed with it."""
    clock = FakeClock()
    runtime = MarimoDiesAndCannotRestart()
    deps = Deps(pool=pool, runtime=runtime, clock=clock, start_deadline_seconds=DEADLINE)
    nid = await _running(rows, deps, clock)
    quota = TerminalError("pods are forbidden: exceeded quota: notebooks, requested: cpu=1")
    runtime.kill(refusing=quota)
    with pytest.raises(RepairRefused):
        await reconcile_once(deps, nid)
    row = await rows.get(nid)
    assert row["status"] == "starting" and runtime.stopped == 0  # nothing torn down
    assert "exceeded quota" in row["status_message"]
    runtime.refusing = None  # the quota frees up: the next attempt restarts Marimo
    assert (await reconcile_once(deps, nid)).outcome == "repair"
    assert (await reconcile_once(deps, nid)).outcome == "ready"
    assert (await rows.get(nid))["status"] == "running"

    runtime.kill(refusing=quota)  # and one that never frees up: failed at the deadline
    with pytest.raises(RepairRefused):
        await reconcile_once(deps, nid)
    clock.advance(DEADLINE)
    assert (await reconcile_once(deps, nid)).outcome == "deadline"
    row = await rows.get(nid)
    assert row["status"] == "failed" and "exceeded quota" in row["status_message"]


async def test_a_repair_whose_restart_keeps_raising_fails_at_its_deadline(rows, pool):
    clock = FakeClock()
    runtime = MarimoDiesAndCannotRestart()
    deps = Deps(pool=pool, runtime=runtime, clock=clock, start_deadline_seconds=DEADLINE)
    nid = await _running(rows, deps, clock)
    clock.advance(3000)
    runtime.kill()

    first = clock.now()
    with pytest.raises(OSError):
        await reconcile_once(deps, nid)
    row = await rows.get(nid)
    # Never `running` with Marimo down: `starting`, with a message that says
    # what goes on (and tells the next pass that the dead Marimo is still
    # the one to restart, not the restart's own failure).
    assert (row["status"], row["status_message"]) == ("starting", RETRYING)
    assert row["start_deadline_at"] == first + timedelta(seconds=DEADLINE)

    clock.advance(DEADLINE - 1)
    with pytest.raises(OSError):  # retried within the deadline of the first attempt
        await reconcile_once(deps, nid)
    row = await rows.get(nid)
    assert row["start_deadline_at"] == first + timedelta(seconds=DEADLINE)  # armed once
    assert row["status"] == "starting" and runtime.starts == 2 + 1  # + the start's

    clock.advance(1)
    result = await reconcile_once(deps, nid)
    assert (result.outcome, result.actions) == ("deadline", (Action.ENSURE_STOPPED,))
    row = await rows.get(nid)
    assert row["status"] == "failed"
    assert row["status_message"] == (
        f"restarting Marimo failed until the start deadline passed:"
        f" OSError: [Errno 28] No space left on device ({KILLED})"
    )
    assert runtime.starts == 3 and runtime.stopped == 1  # torn down, not tried again
    events = await rows.events(nid)
    moves = [(e["from_status"], e["to_status"]) for e in events[-2:]]
    assert moves == [("running", "starting"), ("starting", "failed")]
    assert events[-1]["actor"] == "reconciler"


async def test_a_repair_that_raised_then_restarts_runs_and_a_later_one_has_a_fresh_deadline(
    rows, pool
):
    clock = FakeClock()
    runtime = MarimoDiesAndCannotRestart()
    deps = Deps(pool=pool, runtime=runtime, clock=clock, start_deadline_seconds=DEADLINE)
    nid = await _running(rows, deps, clock)
    # Healthy: the start's deadline no longer counts (a repair arms its own).
    assert (await rows.get(nid))["start_deadline_session_id"] is None
    runtime.kill()
    with pytest.raises(OSError):
        await reconcile_once(deps, nid)
    assert (await rows.get(nid))["status_message"] == RETRYING

    clock.advance(DEADLINE - 10)
    runtime.refusing = None  # the disk has room again
    result = await reconcile_once(deps, nid)
    assert (result.outcome, result.actions) == ("repair", (Action.ENSURE_RUNNING,))
    row = await rows.get(nid)
    assert (row["status"], row["status_message"]) == ("starting", f"restarting after {KILLED}")
    assert (await reconcile_once(deps, nid)).outcome == "ready"
    row = await rows.get(nid)
    assert (row["status"], row["status_message"]) == ("running", "")
    assert row["start_deadline_session_id"] is None  # the episode is over

    # Long after, Marimo dies again: a new repair, with a deadline of its own.
    clock.advance(10 * DEADLINE)
    runtime.kill()
    with pytest.raises(OSError):
        await reconcile_once(deps, nid)
    row = await rows.get(nid)
    assert (row["status"], row["status_message"]) == ("starting", RETRYING)
    assert row["start_deadline_at"] == clock.now() + timedelta(seconds=DEADLINE)
    assert row["start_deadline_session_id"] == row["session_id"]


async def test_a_restart_error_is_shown_without_the_session_token_and_cut_short(rows, pool):
    """A runtime's error may echo what it was sent (a Kubernetes API error
    carries the whole response): Marimo's token is never shown to members."""
    clock = FakeClock()
    runtime = MarimoDiesAndCannotRestart()
    deps = Deps(pool=pool, runtime=runtime, clock=clock, start_deadline_seconds=DEADLINE)
    nid = await _running(rows, deps, clock)
    token = (await rows.get(nid))["session_token"]
    runtime.kill(refusing=RuntimeError(f"422 Unprocessable: token={token} {'x' * 1000}"))
    with pytest.raises(RuntimeError):
        await reconcile_once(deps, nid)
    message = (await rows.get(nid))["status_message"]
    assert message.startswith("restarting Marimo failed, retrying: RuntimeError: 422 Unprocessable")
    assert token not in message and "token=***" in message
    assert len(message) < 400


async def test_a_failing_repair_is_failed_through_the_worker_and_its_retries(rows, db, rsettings):
    """The same through the real worker and pgqueuer: the raising passes go
    back to the queue with back-off, and the first retry past the deadline
    fails the notebook and stops retrying."""
    clock = FakeClock()
    runtime = MarimoDiesAndCannotRestart()
    settings = Settings(**{**rsettings.__dict__, "heartbeat_timeout_seconds": 1})
    pool = await open_pool(rsettings.database_url, min_size=1, max_size=2)
    deadline = settings.start_deadline_seconds
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    try:
        deps = Deps(pool=pool, runtime=runtime, clock=clock, start_deadline_seconds=deadline)
        nid = await _running(rows, deps, clock)
        runtime.kill()
        task = asyncio.create_task(run_worker(settings, stop=stop, clock=clock, runtime=runtime))
        async with db.transaction():
            await enqueue_reconcile(db, [nid])  # as the sweep or the watch would

        await rows.wait_for(nid, lambda r: r is not None and r["status_message"] == RETRYING)
        assert (await rows.get(nid))["status"] == "starting"
        clock.advance(deadline)
        row = await rows.wait_status(nid, "failed")
        assert row["status_message"].startswith("restarting Marimo failed until the start")
        assert runtime.stopped == 1
    finally:
        stop.set()
        if task is not None:
            await asyncio.wait_for(task, 20)
        await pool.close()


class SpawnRefused(LocalRuntime):
    """The local runtime, whose spawns raise `refusing` while it is set (a
    host out of file descriptors or processes: transient)."""

    refusing: Exception | None = None

    async def _spawn(self, *args: Any, **kw: Any) -> Any:
        if self.refusing is not None:
            raise self.refusing
        return await super()._spawn(*args, **kw)


@pytest.mark.slow
async def test_a_real_marimo_that_cannot_be_respawned_fails_and_is_torn_down(
    rows, rsettings: Settings
):
    clock = FakeClock()
    nid = await rows.notebook()
    await rows.start(nid, now=clock.now())
    runtime = SpawnRefused(rsettings.data_dir, stop_grace_seconds=5)
    pool = await open_pool(rsettings.database_url, min_size=1, max_size=2)
    deps = Deps(pool=pool, runtime=runtime, clock=clock, start_deadline_seconds=DEADLINE)
    loop = asyncio.get_running_loop()

    async def passes_until(done: Any, timeout: float = 60) -> dict[str, Any]:
        until = loop.time() + timeout  # a condition with a deadline, not a sleep
        while not done(row := await rows.get(nid)):
            assert loop.time() < until, (row["status"], row["status_message"])
            with contextlib.suppress(OSError):
                await reconcile_once(deps, nid)
            await asyncio.sleep(0.05)
        return row

    try:
        row = await passes_until(lambda r: r["status"] in ("running", "failed"))
        assert row["status"] == "running", row["status_message"]
        runtime.refusing = OSError(errno.EMFILE, "Too many open files")
        os.killpg(row["runtime_state"]["marimo_pid"], signal.SIGKILL)

        row = await passes_until(lambda r: "retrying" in r["status_message"])
        assert row["status"] == "starting"
        assert row["status_message"] == (
            "restarting Marimo failed, retrying: OSError: [Errno 24] Too many open files"
        )
        clock.advance(DEADLINE)
        row = await passes_until(lambda r: r["status"] == "failed", timeout=30)
        message = row["status_message"]
        assert message.startswith(
            "restarting Marimo failed until the start deadline passed:"
            " OSError: [Errno 24] Too many open files (Marimo exited with code -9"
        ), message
        assert row["session_token"] not in message
        assert processes_for(rsettings.data_dir, nid) == []  # Sail torn down too
    finally:
        await runtime.close()
        await pool.close()


class StartRefusedTeardownFailsOnce(NoFile):
    """A start the backend refuses (TerminalError) with nothing observed
    afterwards (pods refused, yet a Secret and Services made), whose first
    teardown raises (the API server briefly unavailable)."""

    def __init__(self) -> None:
        self.teardowns = 0

    async def observe(self, notebook_id: str) -> Observation:
        return Observation(session_id=None)

    async def ensure_running(self, spec: SessionSpec) -> Observation:
        raise TerminalError("pods are forbidden: exceeded quota: notebooks")

    async def ensure_stopped(self, notebook_id: str) -> None:
        self.teardowns += 1
        if self.teardowns == 1:
            raise OSError(errno.ECONNRESET, "connection reset by the API server")

    async def delete(self, notebook_id: str) -> None:
        await self.ensure_stopped(notebook_id)

    async def active_ids(self) -> set[str]:
        return set()

    async def close(self) -> None:
        pass


async def test_a_failed_starts_teardown_that_raises_is_finished_by_the_next_pass(rows, pool):
    """`failed` is written before the teardown (the reason survives it); a
    teardown that then raises left the row saying nothing was left, and
    what the start made stayed until the next start or delete."""
    clock = FakeClock()
    runtime = StartRefusedTeardownFailsOnce()
    deps = Deps(pool=pool, runtime=runtime, clock=clock, start_deadline_seconds=DEADLINE)
    nid = await rows.notebook()
    await rows.start(nid, now=clock.now(), deadline=DEADLINE)
    with pytest.raises(OSError):
        await reconcile_once(deps, nid)
    row = await rows.get(nid)
    assert row["status"] == "failed" and "exceeded quota" in row["status_message"]
    assert row["runtime_state"] == {"teardown_pending": True}
    assert (await reconcile_once(deps, nid)).outcome == "cleanup"
    assert runtime.teardowns == 2
    row = await rows.get(nid)
    assert row["status"] == "failed" and row["runtime_state"] == {}
    assert (await reconcile_once(deps, nid)).outcome == "noop"  # settled


async def test_a_start_whose_attempts_keep_raising_says_why_and_fails_with_it(rows, pool):
    """A first start the runtime refuses every time (a Kubernetes namespace
    that does not exist, a quota full): the member reads the error while it
    is retried, and the failure at the deadline names it."""
    clock = FakeClock()
    runtime = MarimoDiesAndCannotRestart()
    runtime.refusing = DISK_FULL
    deps = Deps(pool=pool, runtime=runtime, clock=clock, start_deadline_seconds=DEADLINE)
    nid = await rows.notebook()
    await rows.start(nid, now=clock.now(), deadline=DEADLINE)
    error = "OSError: [Errno 28] No space left on device"
    with pytest.raises(OSError):
        await reconcile_once(deps, nid)
    row = await rows.get(nid)
    assert (row["status"], row["status_message"]) == (
        "starting",
        f"start attempt failed, retrying: {error}",
    )
    clock.advance(DEADLINE)
    assert (await reconcile_once(deps, nid)).outcome == "deadline"
    row = await rows.get(nid)
    assert row["status"] == "failed"
    assert row["status_message"] == (f"start deadline passed: {error} (Sail absent; Marimo absent)")
    assert runtime.starts == 1 and runtime.stopped == 1

"""Errors: terminal ones end in `failed` with the reason and are not retried;
transient ones go back to the queue with capped exponential backoff."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import SimpleNamespace

import pytest
import structlog.testing
from pgqueuer.errors import RetryRequested
from reconciler_helpers import NoFile

from common.clock import FakeClock
from common.jobs import enqueue_reconcile
from reconciler import metrics
from reconciler.plan import Action
from reconciler.reconcile import Deps, reconcile_once
from reconciler.runtime.base import Observation, SessionSpec, TerminalError
from reconciler.worker import MAX_BACKOFF_SECONDS, backoff, handle_reconcile


class BrokenRuntime(NoFile):
    """Nothing runs; starting raises `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.stopped = 0

    async def observe(self, notebook_id: str) -> Observation:
        return Observation(session_id=None)

    async def ensure_running(self, spec: SessionSpec) -> Observation:
        raise self.error

    async def ensure_stopped(self, notebook_id: str) -> None:
        self.stopped += 1

    async def delete(self, notebook_id: str) -> None:
        pass

    async def close(self) -> None:
        pass


async def test_terminal_error_fails_the_start_with_its_reason(rows, pool):
    clock = FakeClock()
    nid = await rows.notebook()
    await rows.start(nid, now=clock.now())
    runtime = BrokenRuntime(TerminalError("cannot start: no such file: sail"))
    result = await reconcile_once(Deps(pool=pool, runtime=runtime, clock=clock), nid)
    assert (result.outcome, result.requeue_after) == ("failed", None)
    assert result.actions == (Action.ENSURE_STOPPED,)  # what the job's log line names
    row = await rows.get(nid)
    assert row["status"] == "failed"
    assert row["status_message"] == "cannot start: no such file: sail"
    assert runtime.stopped == 1


async def test_transient_error_is_requeued_with_capped_backoff(rows, pool):
    clock = FakeClock()
    nid = await rows.notebook()
    await rows.start(nid, now=clock.now())
    runtime = BrokenRuntime(ConnectionResetError("blip"))
    deps = Deps(pool=pool, runtime=runtime, clock=clock)
    # Two failed passes in a row before (the count the job's headers carry).
    job = SimpleNamespace(payload=nid.encode(), attempts=5, id=1, headers={"reconcile_errors": 2})
    errors = metrics.RECONCILES.labels("error")._value.get()
    with pytest.raises(RetryRequested) as caught:
        await handle_reconcile(deps, job)  # type: ignore[arg-type]
    assert caught.value.delay == timedelta(seconds=backoff(2)) == timedelta(seconds=2)
    assert metrics.RECONCILES.labels("error")._value.get() == errors + 1  # alerts count it
    assert (await rows.get(nid))["status"] == "starting"  # not failed: it may pass
    assert backoff(50) == MAX_BACKOFF_SECONDS


async def test_one_canonical_log_line_per_reconcile_job(rows, pool):
    nid = await rows.notebook()  # stopped, nothing runs: one pass, nothing to do
    deps = Deps(pool=pool, runtime=BrokenRuntime(ConnectionResetError()), clock=FakeClock())
    job = SimpleNamespace(payload=nid.encode(), attempts=0, id=1)
    with structlog.testing.capture_logs() as logs:
        assert await handle_reconcile(deps, job) == 1  # type: ignore[arg-type]
    lines = [entry for entry in logs if entry["event"] == "reconcile"]
    assert len(lines) == 1
    line = lines[0]
    assert (line["notebook_id"], line["generation"], line["action"], line["outcome"]) == (
        nid,
        1,
        "none",
        "noop",
    )
    assert line["passes"] == 1 and line["duration_ms"] >= 0


async def test_terminal_error_does_not_tear_down_a_session_restarted_meanwhile(rows, pool):
    clock = FakeClock()
    nid = await rows.notebook()
    await rows.start(nid, now=clock.now())

    class RestartedWhileStarting(BrokenRuntime):
        async def ensure_running(self, spec: SessionSpec) -> Observation:
            # A member stops and starts again while this start is under way
            # (e.g. a job retaken after a stalled heartbeat finished the stop).
            await rows.stop(nid)
            await rows._status(nid, "stopped", clock.now())
            await rows.start(nid, now=clock.now())
            raise TerminalError("cannot start: no such file: sail")

    runtime = RestartedWhileStarting(TerminalError("unused"))
    result = await reconcile_once(Deps(pool=pool, runtime=runtime, clock=clock), nid)
    assert (result.outcome, result.requeue_after) == ("conflict", 0)  # plan again at once
    assert runtime.stopped == 0  # the new session is left alone
    row = await rows.get(nid)
    assert (row["status"], row["desired_state"]) == ("starting", "running")


async def test_a_worker_shutting_down_hands_a_polling_job_back_at_once(rows, pool, monkeypatch):
    """A start being polled (a pass every half second for up to 30 s) goes
    back to the queue on the worker's shutdown instead of holding it past
    the grace its supervisor gives (10 s for `notebooks up`)."""
    from reconciler import worker
    from reconciler.reconcile import Result

    nid = await rows.notebook()
    stop = asyncio.Event()
    passes = 0

    async def waiting_for_readiness(_deps, _nid):  # type: ignore[no-untyped-def]
        nonlocal passes
        passes += 1
        if passes == 2:
            stop.set()  # SIGTERM arrives between passes
        return Result("waiting for Marimo", 0.01, 1)

    monkeypatch.setattr(worker, "reconcile_once", waiting_for_readiness)
    deps = Deps(pool=pool, runtime=BrokenRuntime(ConnectionResetError()), clock=FakeClock())
    job = SimpleNamespace(payload=nid.encode(), attempts=0, id=1)
    with pytest.raises(RetryRequested) as caught:
        await asyncio.wait_for(handle_reconcile(deps, job, stop), 5)  # type: ignore[arg-type]
    assert passes == 2 and caught.value.delay == timedelta(seconds=0.01)


async def test_slices_requeued_are_not_failures_for_the_backoff(rows, db, worker, monkeypatch):
    """pgqueuer counts every RetryRequested in `attempts`, the requeue of a
    long start's 30 s slice included: the first real error after several
    slices still backs off 0.5 s, and errors in a row double it. Through the
    real worker and pgqueuer (its log records each retry's delay)."""
    from reconciler import worker as worker_module
    from reconciler.reconcile import Result

    nid = await rows.notebook()
    calls = 0
    done = asyncio.Event()

    async def passes(_deps, _nid):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls <= 6:
            return Result("starting", 0.01, 1)  # a slice over: requeued (not a failure)
        if calls <= 8:
            raise ConnectionResetError("blip")
        if calls == 9:
            return Result("starting", 0.01, 1)  # a pass goes through: the count starts over
        if calls == 10:
            raise ConnectionResetError("blip")
        done.set()
        return Result("noop", None, 1)

    monkeypatch.setattr(worker_module, "reconcile_once", passes)
    monkeypatch.setattr(worker_module, "JOB_SLICE_SECONDS", 0.0)
    # pgqueuer polls for a delayed retry every min(5 s, heartbeat timeout).
    await worker(heartbeat_timeout_seconds=1)
    async with db.transaction():
        await enqueue_reconcile(db, [nid])

    async def delays() -> list[str]:
        cur = await db.execute(
            "select traceback from pgqueuer_log"
            " where entrypoint = 'reconcile' and traceback is not null order by id"
        )
        return [r["traceback"]["additional_context"]["retry_delay"] for r in await cur.fetchall()]

    slice_, first = str(timedelta(seconds=0.01)), str(timedelta(seconds=backoff(0)))
    loop = asyncio.get_running_loop()
    until = loop.time() + 20
    while len(await delays()) < 7:  # the first error's retry is logged
        assert loop.time() < until, await delays()
        await asyncio.sleep(0.02)
    assert (await delays())[:7] == [*[slice_] * 6, first]  # 0.5 s, not backoff(6) = 32 s
    await asyncio.wait_for(done.wait(), 20)
    assert await delays() == [
        *[slice_] * 6,
        first,
        str(timedelta(seconds=backoff(1))),  # errors in a row still double
        slice_,
        first,  # after a pass that went through, the count starts over
    ]
    assert backoff(0) == 0.5 and backoff(1) == 1

"""The worker's queue under faults, with the real worker, pgqueuer and
database and a runtime named by its behaviour:

- a database restart or failover ends the queue's connection: the worker
  connects again and goes on working, instead of ending (and with it its
  sweep, its watch and, locally, the warm pool) for a supervisor to restart;
- a member's stop made while a failing pass holds the notebook's job (its
  enqueue deduplicated into that job) runs at once, not after the failing
  pass's back-off of up to a minute."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from reconciler_helpers import NoFile

from common.settings import Settings
from reconciler.runtime.base import Component, Observation, Phase, SessionSpec
from reconciler.worker import run_worker

READY = Component(Phase.READY)


class ReadyAtOnce(NoFile):
    """Sail and Marimo ready as soon as they are asked for."""

    def __init__(self) -> None:
        self.sessions: dict[str, str] = {}

    async def observe(self, notebook_id: str) -> Observation:
        session = self.sessions.get(notebook_id)
        if session is None:
            return Observation(session_id=None)
        return Observation(session, sail=READY, marimo=READY, marimo_url="http://127.0.0.1:9")

    async def ensure_running(self, spec: SessionSpec) -> Observation:
        self.sessions[spec.notebook_id] = spec.session_id
        return await self.observe(spec.notebook_id)

    async def ensure_stopped(self, notebook_id: str) -> None:
        self.sessions.pop(notebook_id, None)

    async def delete(self, notebook_id: str) -> None:
        await self.ensure_stopped(notebook_id)

    async def active_ids(self) -> set[str]:
        return set(self.sessions)

    async def close(self) -> None:
        pass


class StartFailsWhenReleased(ReadyAtOnce):
    """A start that hangs until released, then raises (a disk or an API
    server refusing, after a while)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def ensure_running(self, spec: SessionSpec) -> Observation:
        self.entered.set()
        await self.release.wait()
        raise OSError("the runtime refused")


async def _stop_worker(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    stop.set()
    await asyncio.wait_for(task, 20)


async def test_the_worker_outlives_its_database_connections(rsettings: Settings, rows, db) -> None:  # type: ignore[no-untyped-def]
    runtime = ReadyAtOnce()
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(rsettings, stop=stop, runtime=runtime))  # type: ignore[arg-type]
    try:
        first = await rows.notebook()
        await rows.start(first)
        await rows.wait_status(first, "running")

        # What a PostgreSQL restart or a failover does to every client.
        await db.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity"
            " where datname = current_database() and pid <> pg_backend_pid()"
            " and backend_type = 'client backend'"
        )

        second = await rows.notebook()
        await rows.start(second)
        await rows.wait_status(second, "running")
        assert not task.done(), task
    finally:
        await _stop_worker(stop, task)


async def test_a_stop_does_not_wait_out_the_back_off_of_the_failing_pass_it_met(
    rsettings: Settings, rows, db
) -> None:  # type: ignore[no-untyped-def]
    runtime = StartFailsWhenReleased()
    nid = await rows.notebook()
    await rows.start(nid)
    # The job has failed seven passes in a row: its next failure backs off 60 s.
    await db.execute(
        "update pgqueuer set headers = %s where dedupe_key = %s",
        (json.dumps({"reconcile_errors": 7}), f"reconcile:{nid}"),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(rsettings, stop=stop, runtime=runtime))  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(runtime.entered.wait(), 30)  # the failing pass holds the job
        await rows.stop(nid)  # deduplicated into the held job
        runtime.release.set()  # the pass fails now
        row: dict[str, Any] = await rows.wait_status(nid, "stopped", timeout=20)
        assert row["desired_state"] == "stopped"
        assert nid not in runtime.sessions
    finally:
        await _stop_worker(stop, task)

"""A change the runtime's watch announces while that notebook's job is held
(pgqueuer then skips the enqueue as a duplicate) still gets a reconcile once
the job is released, without waiting for the sweep."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from common.settings import Settings
from reconciler.runtime.base import Observation
from reconciler.runtime.local import LocalRuntime


class AnnouncingRuntime(LocalRuntime):
    """The local runtime plus a watch the test drives; its first observe waits
    for the test, so the test can announce while the job is held."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.data_dir)
        self.on_change: Callable[[str], Awaitable[None]] | None = None
        self.watching = asyncio.Event()
        self.observing = asyncio.Event()
        self.release = asyncio.Event()
        self.observed = 0

    async def run_watch(self, on_change: Callable[[str], Awaitable[None]]) -> None:
        self.on_change = on_change
        self.watching.set()
        await asyncio.Event().wait()  # until cancelled, like a real watch

    async def observe(self, notebook_id: str) -> Observation:
        self.observed += 1
        if self.observed == 1:
            self.observing.set()
            await self.release.wait()
        return await super().observe(notebook_id)


async def test_change_announced_while_job_is_held_is_reconciled_after(
    rsettings: Settings,
    rows,
    db,  # type: ignore[no-untyped-def]
) -> None:
    from reconciler.worker import run_worker

    settings = Settings(**{**rsettings.__dict__, "sweep_interval_seconds": 3600})
    runtime = AnnouncingRuntime(settings)
    nid = await rows.notebook()
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(settings, stop=stop, runtime=runtime))
    try:
        await asyncio.wait_for(runtime.watching.wait(), 10)
        async with db.transaction():
            from common.jobs import enqueue_reconcile

            await enqueue_reconcile(db, [nid])
        await asyncio.wait_for(runtime.observing.wait(), 10)  # the job is held now
        assert runtime.on_change is not None
        await runtime.on_change(nid)  # skipped by pgqueuer's dedupe: the job is picked
        runtime.release.set()
        loop = asyncio.get_running_loop()
        until = loop.time() + 10
        while runtime.observed < 2:
            assert loop.time() < until, "the announced change was never reconciled"
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
        await runtime.close()

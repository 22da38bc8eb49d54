"""A FakeClock whose sleeps end only when a test advances it past them."""

from __future__ import annotations

import asyncio
from datetime import datetime

from common.clock import FakeClock


class SteppingClock(FakeClock):
    """`sleep` (what `common.clock.sleeper` hands the runtime's timers, the
    pod watch's back-off among them) waits until `advance` moves the
    monotonic reading past it: a timer never fires on its own, so a test
    sees exactly what happens before and after each wait, and how long each
    wait asked for (`asleep`)."""

    def __init__(self, start: datetime | None = None) -> None:
        super().__init__(start)
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self.slept: list[float] = []  # every wait asked for, in order

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        entry = (self.monotonic() + seconds, asyncio.get_running_loop().create_future())
        self._sleepers.append(entry)
        try:
            await entry[1]
        finally:
            self._sleepers.remove(entry)

    @property
    def asleep(self) -> list[float]:
        """When the timers now asleep are due (monotonic readings), soonest first."""
        return sorted(due for due, woken in self._sleepers if not woken.done())

    def advance(self, seconds: float) -> datetime:
        now = super().advance(seconds)
        for due, woken in self._sleepers:
            if due <= self.monotonic() and not woken.done():
                woken.set_result(None)
        return now

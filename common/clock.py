"""The clock is injected so time-based behaviour is tested without sleeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    # Seconds on a clock that never steps (NTP, an operator): for measuring
    # how long something took or has lasted; `now()` is for dates.
    def monotonic(self) -> float: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock tests move by hand: `advance` moves both readings."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._monotonic = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        self._monotonic += seconds
        return self._now


class SteppingClock(FakeClock):
    """A FakeClock whose sleeps end only when `advance` moves its monotonic
    reading past them (`sleeper` hands a clock's own `sleep` to timers): a
    timer never fires on its own, so a test sees exactly what happens before
    and after each wait (`asleep`) and how long each asked for (`slept`).
    Advance by sums exactly representable in binary (whole seconds): a timer
    due at 30 s wakes at 30, not 29.999…"""

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


def monotonic_reader(clock: Clock) -> Callable[[], float]:
    """`clock.monotonic`, for where every request passes: for the system
    clock `time.monotonic` itself, so injecting the clock adds no Python call
    to a hot path (the proxy's express lane)."""
    return time.monotonic if type(clock) is SystemClock else clock.monotonic


def sleeper(clock: Clock) -> Callable[[float], Awaitable[None]]:
    """How timers wait `seconds` of `clock`: the event loop's sleep, or the
    clock's own when it has one (a test's, which ends sleeps as it is moved,
    so tests of timers advance time instead of waiting for it)."""
    sleep: Callable[[float], Awaitable[None]] = getattr(clock, "sleep", asyncio.sleep)
    return sleep

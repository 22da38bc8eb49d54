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

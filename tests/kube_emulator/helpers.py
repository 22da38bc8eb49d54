"""Waiting on conditions (with a deadline) and recording watch callbacks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    """Wait for a condition with a deadline (never a fixed sleep)."""
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout
    while not await check():
        if loop.time() > until:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


class Changes:
    """Records on_change calls from the watch."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.event = asyncio.Event()

    async def __call__(self, notebook_id: str) -> None:
        self.calls.append(notebook_id)
        self.event.set()

    def count(self, notebook_id: str) -> int:
        return self.calls.count(notebook_id)

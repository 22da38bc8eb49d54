"""How a service process learns it should stop."""

from __future__ import annotations

import asyncio
import signal


def stop_on_signals() -> asyncio.Event:
    """An event SIGTERM (Kubernetes, the supervisor of `notebooks up`) or
    SIGINT (Ctrl-C) sets, for the running loop to stop in order on."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop

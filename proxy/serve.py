"""The proxy process: the express lane on the socket, the aiohttp app behind it.

Both the `proxy` process and the tests serve through `start()`, so every
test request meets the same front door as production."""

from __future__ import annotations

import asyncio
import signal

import structlog
import uvloop
from aiohttp import web

from common.logging import configure_logging
from common.settings import Settings
from proxy.app import BEFORE_SCRAPE, CACHE, COOKIES, PROXY, create_app
from proxy.express import Lane
from proxy.handoff import handlers

log = structlog.get_logger("proxy")


class Served:
    """A proxy listening on `port` (chosen by the OS when 0 was asked)."""

    def __init__(self, runner: web.AppRunner, server: asyncio.Server, lane: Lane) -> None:
        self.runner = runner
        self.app = runner.app
        self._server = server
        self.lane = lane
        self.port: int = server.sockets[0].getsockname()[1]
        self._closed = False

    async def close(self, grace_seconds: float = 10.0) -> None:
        if self._closed:
            return
        self._closed = True
        self._server.close()  # no new connections
        await self.lane.close(grace_seconds)
        await self.runner.cleanup()  # aiohttp's connections, then the app's resources


async def start(app: web.Application, host: str, port: int) -> Served:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()  # runs the app's startup: pool, cache, listener
    assert runner.server is not None
    handler = handlers(runner.server, app[PROXY].settings.frame_ancestors)
    lane = Lane(handler, app[PROXY], app[COOKIES], app[CACHE])
    app[BEFORE_SCRAPE].append(lane.tally.flush)
    server = await asyncio.get_running_loop().create_server(
        lane, host, port, reuse_address=True, backlog=1024
    )
    return Served(runner, server, lane)


async def serve_forever(app: web.Application, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT, then close in order."""
    served = await start(app, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await served.close()


def main(settings: Settings) -> None:
    configure_logging(settings.log_format, settings.log_level)
    log.info("proxy.starting", host=settings.proxy_host, port=settings.proxy_port)
    uvloop.run(serve_forever(create_app(settings), settings.proxy_host, settings.proxy_port))

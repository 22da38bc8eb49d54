"""The proxy process: the express lane on the socket, the aiohttp app behind it.

Both the `proxy` process and the tests serve through `start()`, so every
test request meets the same front door as production."""

from __future__ import annotations

import asyncio

import structlog
import uvloop
from aiohttp import web

from common.logging import configure_logging
from common.metrics import bound_port, serve_metrics
from common.settings import Settings
from common.signals import stop_on_signals
from proxy.app import BEFORE_SCRAPE, CACHE, COOKIES, PROXY, create_app, prepare_scrape
from proxy.express import Lane
from proxy.handoff import handlers

log = structlog.get_logger("proxy")

# On SIGTERM: the lane's exchanges in flight get this long, then aiohttp's
# handlers (WebSockets are ended at once with 1012) get it twice at most
# (wait, then cancel and wait). ops/k8s's grace period covers it.
SHUTDOWN_GRACE_SECONDS = 10.0
SHUTDOWN_SECONDS_AT_MOST = 3 * SHUTDOWN_GRACE_SECONDS
# aiohttp's limit on one header's value (8190 by default), within the lane's
# MAX_HEAD for a whole head.
MAX_HEADER_FIELD = 32 * 1024


class Served:
    """A proxy listening on `port` (chosen by the OS when 0 was asked), and
    its metrics listener on `metrics_port` (None when it has none)."""

    def __init__(
        self,
        runner: web.AppRunner,
        server: asyncio.Server,
        lane: Lane,
        metrics: web.AppRunner | None = None,
    ) -> None:
        self.runner = runner
        self.app = runner.app
        self._server = server
        self.lane = lane
        self.port: int = server.sockets[0].getsockname()[1]
        self._metrics = metrics
        self.metrics_port = bound_port(metrics) if metrics is not None else None
        self._closed = False

    async def close(self, grace_seconds: float = SHUTDOWN_GRACE_SECONDS) -> None:
        if self._closed:
            return
        self._closed = True
        self._server.close()  # no new connections
        try:
            await self.lane.close(grace_seconds)
            await self.runner.cleanup()  # aiohttp's connections, then the app's resources
        finally:
            if self._metrics is not None:
                await self._metrics.cleanup()


async def start(
    app: web.Application,
    host: str,
    port: int,
    *,
    metrics_host: str = "127.0.0.1",
    metrics_port: int | None = None,
) -> Served:
    """The lane on host:port; /metrics only on metrics_host:metrics_port
    (never on the public port, which answers it 404 like any unknown path)."""
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
        # A Cookie header grows with every cookie of the parent domain; one
        # the lane relays must also pass a hand-off (a WebSocket's handshake).
        max_field_size=MAX_HEADER_FIELD,
    )
    await runner.setup()  # runs the app's startup: pool, cache, listener
    assert runner.server is not None
    handler = handlers(runner.server, app[PROXY].settings.frame_ancestors)
    lane = Lane(handler, app[PROXY], app[COOKIES], app[CACHE])
    app[BEFORE_SCRAPE].append(lane.tally.flush)
    metrics = None
    try:
        if metrics_port is not None:
            metrics = await serve_metrics(metrics_host, metrics_port, lambda: prepare_scrape(app))
        server = await asyncio.get_running_loop().create_server(
            lane, host, port, reuse_address=True, backlog=1024
        )
    except BaseException:
        # A port taken: nothing of this proxy is left listening or open.
        if metrics is not None:
            await metrics.cleanup()
        await runner.cleanup()
        raise
    return Served(runner, server, lane, metrics)


async def serve_forever(app: web.Application, settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then close in order."""
    served = await start(
        app,
        settings.proxy_host,
        settings.proxy_port,
        metrics_host=settings.proxy_metrics_host,
        metrics_port=settings.proxy_metrics_port,
    )
    log.info("proxy.metrics_serving", host=settings.proxy_metrics_host, port=served.metrics_port)
    stop = stop_on_signals()
    try:
        await stop.wait()
    finally:
        await served.close()


def main(settings: Settings) -> None:
    configure_logging(settings.log_format, settings.log_level)
    log.info("proxy.starting", host=settings.proxy_host, port=settings.proxy_port)
    uvloop.run(serve_forever(create_app(settings), settings))

"""Prometheus exposition shared by every process (each package defines its
own metrics in its own `metrics.py`)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Gauge, generate_latest
from psycopg_pool import AsyncConnectionPool

DB_POOL_CONNECTIONS = Gauge(
    "notebooks_db_pool_connections",
    "Database pool connections by state.",
    ["process", "state"],
)


def observe_pool(process: str, pool: AsyncConnectionPool) -> None:
    stats = pool.get_stats()
    size = stats.get("pool_size", 0)
    available = stats.get("pool_available", 0)
    DB_POOL_CONNECTIONS.labels(process, "size").set(size)
    DB_POOL_CONNECTIONS.labels(process, "in_use").set(size - available)
    DB_POOL_CONNECTIONS.labels(process, "waiting").set(stats.get("requests_waiting", 0))
    DB_POOL_CONNECTIONS.labels(process, "max").set(pool.max_size)


async def metrics_response(_: web.Request | None = None) -> web.Response:
    body = generate_latest(REGISTRY)
    resp = web.Response(body=body)
    resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    resp.charset = "utf-8"
    return resp


async def serve_metrics(host: str, port: int, before_scrape: Callable[[], None]) -> web.AppRunner:
    """A listener of its own that serves /metrics and nothing else.

    Kept off the public API and proxy ports (whose routes all check who is
    asking) and on loopback unless configured: the counters name routes,
    outcomes and pool sizes. `before_scrape` brings figures Prometheus does
    not hold itself (pool gauges, tallies) up to date first. Port 0 lets the
    OS choose; `bound_port(runner)` says which it chose."""

    async def handler(request: web.Request) -> web.Response:
        before_scrape()
        return await metrics_response(request)

    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    return int(runner.addresses[0][1])

"""Concurrent start/stop on one notebook: the row lock makes exactly one win;
the others see the new status and get a 409. No lost update, one job."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from api_factories import Factory, World

from api.app import create_app
from common.clock import FakeClock
from common.settings import Settings

NB = "/api/v1/workloads/notebooks"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


async def race(client: TestClient, world: World, url: str, n: int = 8) -> list[int]:
    callers = [world.owner, world.admin, world.team_admin, world.editor] * (n // 4)
    responses = await asyncio.gather(*(client.post(url, headers=c.auth) for c in callers))
    return sorted(r.status for r in responses)


async def test_concurrent_starts_exactly_one_wins(
    client: TestClient, world: World, factory: Factory
) -> None:
    statuses = await race(client, world, f"{NB}/{world.notebook}/start")
    assert statuses == [202] + [409] * 7
    assert (
        factory.value(
            "select count(*) from notebook_events where notebook_id = %s"
            " and to_status = 'starting'",
            world.notebook,
        )
        == 1
    )
    assert factory.value("select generation from notebooks where id = %s", world.notebook) == 2
    assert factory.jobs(world.notebook) == 1


async def test_concurrent_stops_exactly_one_wins(
    client: TestClient, world: World, factory: Factory
) -> None:
    nb = factory.notebook(world.owner, world.config, status="running", teams=(world.team,))
    statuses = await race(client, world, f"{NB}/{nb}/stop")
    assert statuses == [202] + [409] * 7
    assert (
        factory.value(
            "select count(*) from notebook_events where notebook_id = %s"
            " and to_status = 'stopping'",
            nb,
        )
        == 1
    )
    assert factory.value("select generation from notebooks where id = %s", nb) == 2


async def test_slow_uploads_do_not_hold_the_database_pool(settings: Settings, world: World) -> None:
    """Bodies still arriving hold no pooled connection: as many slow uploads
    as the pool has connections leave every other request answered at once."""
    app = create_app(dataclasses.replace(settings, db_pool_max=2), clock=FakeClock(NOW))
    entered, all_in = 0, asyncio.Event()

    @web.middleware
    async def count_entries(request: web.Request, handler):  # type: ignore[no-untyped-def]
        nonlocal entered
        entered += 1
        if entered == 3:
            all_in.set()
        return await handler(request)

    app.middlewares.append(count_entries)  # innermost: entered just before the endpoint
    async with TestClient(TestServer(app)) as client:
        head = (
            f"POST {NB} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {world.owner.token}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        ).encode()
        slow = []
        for _ in range(3):
            reader, writer = await asyncio.open_connection(client.host, client.port)
            writer.write(head)  # and never the rest of the body
            slow.append(writer)
        await asyncio.wait_for(all_in.wait(), 5)  # the three heads are being handled
        try:
            resp = await asyncio.wait_for(client.get("/api/v1/me", headers=world.owner.auth), 5)
            assert resp.status == 200
        finally:
            for writer in slow:
                writer.close()

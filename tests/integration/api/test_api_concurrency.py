"""Concurrent start/stop on one notebook: the row lock makes exactly one win;
the others see the new status and get a 409. No lost update, one job."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient
from api_factories import Factory, World

NB = "/api/v1/workloads/notebooks"


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

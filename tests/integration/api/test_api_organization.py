"""An organization's own running limits (GET/PATCH /organization): every
member reads what applies; its org admins set them, within the operator's
(the tighter applies, 0 is none); starts and hand-overs keep to them."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from api_factories import Factory, Member, World, body_of, refused

from api.app import create_app
from api.notebooks import tighter
from common.clock import FakeClock
from common.settings import Settings

V1 = "/api/v1"
NB = V1 + "/workloads/notebooks"


async def organization(client: TestClient, who: Member) -> Any:
    resp = await client.get(V1 + "/organization", headers=who.auth)
    assert resp.status == 200, await resp.text()
    return await body_of(resp)


async def set_limits(client: TestClient, who: Member, **limits: int) -> Any:
    return await client.patch(V1 + "/organization", json=limits, headers=who.auth)


async def start(client: TestClient, nb: str, who: Member) -> Any:
    return await client.post(f"{NB}/{nb}/start", headers=who.auth)


@pytest.mark.parametrize(
    ("platform", "own", "applies"),
    [(0, 0, 0), (5, 0, 5), (0, 3, 3), (5, 3, 3), (2, 3, 2)],
)
def test_the_tighter_limit_applies(platform: int, own: int, applies: int) -> None:
    assert tighter(platform, own) == applies


async def test_every_member_reads_the_limits_and_only_org_admins_set_them(
    client: TestClient, world: World, clock: FakeClock, factory: Factory
) -> None:
    body = await organization(client, world.viewer)
    assert body == {
        "id": world.org,
        "name": f"org {world.org}",
        "maxRunningPerMember": 0,
        "maxRunning": 0,
        "maxIdleTimeoutSeconds": 0,
        "maxDetachedTimeoutSeconds": 0,
        "defaultIdleTimeoutSeconds": None,  # the platform's (docs/api.md "Timeout caps")
        "defaultDetachedTimeoutSeconds": None,
        "platformDefaultIdleTimeoutSeconds": 3600,
        "platformDefaultDetachedTimeoutSeconds": 14400,
        "platformMaxRunningPerMember": 0,
        "platformMaxRunning": 0,
        "trashDays": 30,  # NOTEBOOKS_TRASH_DAYS: how long a delete can be undone
        "createdAt": body["createdAt"],
        "updatedAt": None,
        "updatedBy": None,
        "updatedByName": None,
    }
    for who in (world.owner, world.team_admin):
        await refused(await set_limits(client, who, maxRunning=1), 403, "forbidden")
    assert (await organization(client, world.viewer))["maxRunning"] == 0

    resp = await set_limits(client, world.admin, maxRunningPerMember=2, maxRunning=10)
    assert resp.status == 200, await resp.text()
    body = await body_of(resp)
    assert (body["maxRunningPerMember"], body["maxRunning"]) == (2, 10)
    assert body["updatedBy"] == world.admin.id
    assert body["updatedAt"] == clock.now().isoformat()
    admin_name = factory.value("select name from members where id = %s", world.admin.id)
    assert body["updatedByName"] == admin_name  # who to ask, by name
    # One limit at a time: the other stays.
    resp = await set_limits(client, world.admin, maxRunning=0)
    body = await body_of(resp)
    assert (body["maxRunningPerMember"], body["maxRunning"]) == (2, 0)
    # Another organization's are its own.
    assert (await organization(client, world.stranger))["maxRunningPerMember"] == 0
    assert (await organization(client, world.viewer))["maxRunningPerMember"] == 2


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"maxRunning": -1}, "out_of_range", "maxRunning"),
        ({"maxRunningPerMember": 10001}, "out_of_range", "maxRunningPerMember"),
        ({"maxRunning": "5"}, "wrong_type", "maxRunning"),
        ({"maxRunning": 2.5}, "wrong_type", "maxRunning"),
        ({"maxRunning": None}, "wrong_type", "maxRunning"),
        ({"maxRunning": True}, "wrong_type", "maxRunning"),
        ({"name": "renamed"}, "unknown_field", "name"),
    ],
)
async def test_bad_limits_are_refused_and_nothing_changes(
    client: TestClient, world: World, body: dict[str, Any], code: str, field: str
) -> None:
    resp = await client.patch(V1 + "/organization", json=body, headers=world.admin.auth)
    await refused(resp, 400, code, field)
    after = await organization(client, world.admin)
    assert (after["maxRunningPerMember"], after["maxRunning"], after["updatedAt"]) == (0, 0, None)


async def test_the_organizations_limits_hold_starts_where_the_operator_sets_none(
    client: TestClient, world: World, factory: Factory
) -> None:
    await set_limits(client, world.admin, maxRunningPerMember=1)
    factory.notebook(world.owner, world.config, status="running")
    await refused(await start(client, world.notebook, world.owner), 409, "running_limit_reached")
    assert factory.jobs(world.notebook) == 0
    # Another member has their own slot.
    theirs = factory.notebook(world.outsider, world.config)
    assert (await start(client, theirs, world.outsider)).status == 202

    await set_limits(client, world.admin, maxRunningPerMember=0, maxRunning=1)
    problem = await refused(
        await start(client, world.notebook, world.owner), 409, "running_limit_reached"
    )
    assert problem["detail"] == (
        "Your organization may run at most 1 notebook at once; stop one first."
    )
    # Raised again: the start goes through.
    await set_limits(client, world.admin, maxRunning=3)
    assert (await start(client, world.notebook, world.owner)).status == 202


async def test_the_operators_limit_stays_the_ceiling(
    settings: Settings, clock: FakeClock, world: World, factory: Factory
) -> None:
    limits = dataclasses.replace(settings, max_running_per_member=1, trash_days=0)
    async with TestClient(TestServer(create_app(limits, clock=clock))) as client:
        body = await organization(client, world.owner)
        assert body["platformMaxRunningPerMember"] == 1
        assert body["trashDays"] == 0  # the console says a delete cannot be undone
        # An organization cannot loosen the operator's limit by setting a higher one.
        await set_limits(client, world.admin, maxRunningPerMember=5)
        factory.notebook(world.owner, world.config, status="idle")
        problem = await refused(
            await start(client, world.notebook, world.owner), 409, "running_limit_reached"
        )
        assert problem["detail"] == "You may run at most 1 notebook at once; stop one first."


async def test_a_hand_over_keeps_to_the_organizations_limit(
    client: TestClient, world: World, factory: Factory
) -> None:
    await set_limits(client, world.admin, maxRunningPerMember=1)
    factory.notebook(world.outsider, world.config, status="running")
    running = factory.notebook(world.owner, world.config, status="running")
    resp = await client.patch(
        f"{NB}/{running}", json={"memberId": world.outsider.id}, headers=world.admin.auth
    )
    await refused(resp, 409, "running_limit_reached")


async def test_racing_starts_at_the_organizations_limit_of_one_exactly_one_wins(
    client: TestClient, world: World, factory: Factory
) -> None:
    await set_limits(client, world.admin, maxRunning=1)
    members = [factory.member(world.org) for _ in range(6)]
    notebooks = [factory.notebook(m, world.config) for m in members]
    responses = await asyncio.gather(
        *(start(client, nb, m) for nb, m in zip(notebooks, members, strict=True))
    )
    assert sorted(r.status for r in responses) == [202] + [409] * 5
    assert sum(factory.jobs(nb) for nb in notebooks) == 1

"""Who may use a workload config (`teamIds`, docs/api.md "Who may use a
config"): a config kept for some teams serves their members and org admins;
a create, a change of config and a start are refused (403
config_not_allowed) for a notebook whose owner is neither, and nothing is
written; null is everyone, [] org admins only; a team deleted never opens
a config to everyone."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from api_factories import Factory, Member, World, body_of, refused

V1 = "/api/v1"
CONFIGS = V1 + "/workloads/configs"
NB = V1 + "/workloads/notebooks"


async def restrict(client: TestClient, world: World, config: str, team_ids: Any) -> Any:
    resp = await client.patch(
        f"{CONFIGS}/{config}", json={"teamIds": team_ids}, headers=world.admin.auth
    )
    assert resp.status == 200, await resp.text()
    return await body_of(resp)


async def create_on(client: TestClient, who: Member, config: str) -> Any:
    body = {"name": "on it", "workloadConfigId": config}
    return await client.post(NB, json=body, headers=who.auth)


async def test_a_config_kept_for_a_team_serves_its_members_and_org_admins(
    client: TestClient, world: World, factory: Factory
) -> None:
    resp = await client.post(
        CONFIGS, json={"name": "gpu", "teamIds": [world.team]}, headers=world.admin.auth
    )
    assert resp.status == 201, await resp.text()
    gpu = await body_of(resp)
    assert gpu["teamIds"] == [world.team]
    plain = await body_of(await client.get(f"{CONFIGS}/{world.config}", headers=world.owner.auth))
    assert plain["teamIds"] is None  # everyone

    for who in (world.viewer, world.editor, world.admin):  # any role in the team; an org admin
        resp = await create_on(client, who, gpu["id"])
        assert resp.status == 201, await resp.text()
    before = factory.value("select count(*) from notebooks")
    problem = await refused(
        await create_on(client, world.outsider, gpu["id"]), 403, "config_not_allowed"
    )
    assert problem["detail"] == (
        "The workload config “gpu” is only for members of its teams (data) and org admins."
        " You are not one; an org admin can add them, or pick another config."
    )
    assert factory.value("select count(*) from notebooks") == before


async def test_a_start_or_a_change_of_config_for_an_owner_outside_is_refused(
    client: TestClient, world: World, factory: Factory
) -> None:
    # world.notebook is the owner's (in no team), shared with the team.
    other = factory.team(world.org, "ml")
    await restrict(client, world, world.config, [other])
    resp = await client.post(f"{NB}/{world.notebook}/start", headers=world.owner.auth)
    problem = await refused(resp, 403, "config_not_allowed")
    assert "You are not one" in problem["detail"]
    # A team editor starting it: the cost is its owner's, who may not use it.
    resp = await client.post(f"{NB}/{world.notebook}/start", headers=world.editor.auth)
    problem = await refused(resp, 403, "config_not_allowed")
    assert "This notebook's owner is not one" in problem["detail"]
    assert factory.jobs(world.notebook) == 0
    assert factory.value("select status from notebooks where id = %s", world.notebook) == "stopped"

    factory.join(other, world.owner, "viewer")
    resp = await client.post(f"{NB}/{world.notebook}/start", headers=world.owner.auth)
    assert resp.status == 202, await resp.text()

    # A change of config to one kept from its owner.
    kept = await body_of(
        await client.post(CONFIGS, json={"name": "kept", "teamIds": []}, headers=world.admin.auth)
    )
    stopped = factory.notebook(world.owner, world.config)
    resp = await client.patch(
        f"{NB}/{stopped}", json={"workloadConfigId": kept["id"]}, headers=world.owner.auth
    )
    await refused(resp, 403, "config_not_allowed")
    row = factory.value("select workload_config_id from notebooks where id = %s", stopped)
    assert row == world.config


async def test_null_is_everyone_an_empty_list_org_admins_and_a_deleted_team_narrows(
    client: TestClient, world: World, factory: Factory
) -> None:
    other = factory.team(world.org, "ml")
    body = await restrict(client, world, world.config, [other, world.team])
    assert body["teamIds"] == sorted([other, world.team])
    resp = await client.delete(f"{V1}/teams/{world.team}", headers=world.admin.auth)
    assert resp.status == 204, await resp.text()
    body = await body_of(await client.get(f"{CONFIGS}/{world.config}", headers=world.admin.auth))
    assert body["teamIds"] == [other]
    resp = await client.delete(f"{V1}/teams/{other}", headers=world.admin.auth)
    body = await body_of(await client.get(f"{CONFIGS}/{world.config}", headers=world.admin.auth))
    assert body["teamIds"] == []  # org admins only: never everyone by a team's deletion
    await refused(await create_on(client, world.editor, world.config), 403, "config_not_allowed")
    assert (await create_on(client, world.admin, world.config)).status == 201
    body = await restrict(client, world, world.config, None)
    assert body["teamIds"] is None
    assert (await create_on(client, world.editor, world.config)).status == 201


@pytest.mark.parametrize(
    ("team_ids", "code", "field"),
    [
        (["NOSUCHTEAM"], "unknown_reference", "teamIds[0]"),
        ("data", "wrong_type", "teamIds"),
        ([1], "wrong_type", "teamIds[0]"),
        (["bad id"], "invalid_id", "teamIds[0]"),
    ],
)
async def test_bad_team_ids_are_refused_and_nothing_changes(
    client: TestClient, world: World, team_ids: Any, code: str, field: str
) -> None:
    resp = await client.patch(
        f"{CONFIGS}/{world.config}", json={"teamIds": team_ids}, headers=world.admin.auth
    )
    await refused(resp, 400, code, field)
    body = await body_of(await client.get(f"{CONFIGS}/{world.config}", headers=world.admin.auth))
    assert body["teamIds"] is None


async def test_another_organizations_team_is_unknown_and_only_org_admins_restrict(
    client: TestClient, world: World, factory: Factory
) -> None:
    foreign = factory.team(world.stranger.org, "theirs")
    resp = await client.patch(
        f"{CONFIGS}/{world.config}", json={"teamIds": [foreign]}, headers=world.admin.auth
    )
    await refused(resp, 400, "unknown_reference", "teamIds[0]")
    resp = await client.patch(
        f"{CONFIGS}/{world.config}", json={"teamIds": []}, headers=world.team_admin.auth
    )
    await refused(resp, 403, "forbidden")

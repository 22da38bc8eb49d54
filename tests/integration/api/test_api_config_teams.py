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
        " You are not one; an org admin can change that, or pick another config."
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
    problem = await refused(resp, 403, "config_not_allowed")
    assert problem["detail"].startswith("The workload config “kept” is only for org admins.")
    row = factory.value("select workload_config_id from notebooks where id = %s", stopped)
    assert row == world.config


async def test_a_change_of_config_with_a_hand_over_is_judged_for_the_new_owner(
    client: TestClient, world: World, factory: Factory
) -> None:
    """One edit that hands a notebook on and moves it to a config: the owner
    it leaves is the one who must be allowed, and a refusal undoes both."""
    ml = factory.team(world.org, "ml")
    gpu = await body_of(
        await client.post(CONFIGS, json={"name": "gpu", "teamIds": [ml]}, headers=world.admin.auth)
    )
    insider = factory.member(world.org)
    factory.join(ml, insider, "viewer")
    nb = factory.notebook(world.owner, world.config)  # its owner: in no team
    url = f"{NB}/{nb}"
    both = {"workloadConfigId": gpu["id"]}
    resp = await client.patch(
        url, json={**both, "memberId": world.outsider.id}, headers=world.admin.auth
    )
    await refused(resp, 403, "config_not_allowed")
    row = factory.value(
        "select row(member_id, workload_config_id)::text from notebooks where id = %s", nb
    )
    assert row == f"({world.owner.id},{world.config})"  # the hand-over undone too
    resp = await client.patch(url, json={**both, "memberId": insider.id}, headers=world.admin.auth)
    assert resp.status == 200, await resp.text()


async def test_an_offer_of_a_running_notebook_on_a_kept_config_stays_within_its_teams(
    client: TestClient, world: World, factory: Factory
) -> None:
    """Accepting takes its running session, at the accepter's cost: on a
    config they may not use, refused, and it stays the owner's."""
    ml = factory.team(world.org, "ml")
    factory.join(ml, world.owner, "viewer")
    await restrict(client, world, world.config, [ml])
    running = factory.notebook(world.owner, world.config, status="running")
    resp = await client.put(
        f"{NB}/{running}/offer", json={"memberId": world.outsider.id}, headers=world.owner.auth
    )
    assert resp.status in (200, 201), await resp.text()
    resp = await client.post(f"{NB}/{running}/offer/accept", headers=world.outsider.auth)
    await refused(resp, 403, "config_not_allowed")
    owner = factory.value("select member_id from notebooks where id = %s", running)
    assert owner == world.owner.id


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

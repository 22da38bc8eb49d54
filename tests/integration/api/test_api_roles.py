"""The roles table: owner, org admin, team admin/editor/viewer, a member
without access, and another organization's admin. 404 for what one may not
see, 403 for what one may see but not do."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient
from api_factories import Factory, World, body_of

NB = "/api/v1/workloads/notebooks"
CALLERS = ["owner", "admin", "team_admin", "editor", "viewer", "outsider", "stranger"]


def expect(allowed: set[str], ok: int) -> dict[str, int]:
    seers = {"owner", "admin", "team_admin", "editor", "viewer"}
    return {c: ok if c in allowed else 403 if c in seers else 404 for c in CALLERS}


VIEW = {"owner", "admin", "team_admin", "editor", "viewer"}
MANAGE = {"owner", "admin", "team_admin", "editor"}
ADMINISTER = {"owner", "admin", "team_admin"}


@pytest.mark.parametrize("caller", CALLERS)
async def test_role_matrix(client: TestClient, world: World, factory: Factory, caller: str) -> None:
    who = getattr(world, caller)
    url = f"{NB}/{world.notebook}"
    other_team = factory.team(world.org)
    got = {
        "view": (await client.get(url, headers=who.auth)).status,
        "teams": (await client.get(url + "/teams", headers=who.auth)).status,
        "update": (await client.patch(url, json={"description": "d"}, headers=who.auth)).status,
        "share": (
            await client.post(url + "/teams", json={"teamIds": [other_team]}, headers=who.auth)
        ).status,
        "unshare": (await client.delete(f"{url}/teams/{other_team}", headers=who.auth)).status,
        "start": (await client.post(url + "/start", headers=who.auth)).status,
    }
    running = factory.notebook(world.owner, world.config, status="running", teams=(world.team,))
    got["ping"] = (await client.post(f"{NB}/{running}/ping", headers=who.auth)).status
    got["open"] = (await client.post(f"{NB}/{running}/open", headers=who.auth)).status
    got["stop"] = (await client.post(f"{NB}/{running}/stop", headers=who.auth)).status
    got["delete"] = (await client.delete(url, headers=who.auth)).status
    want = {
        "view": expect(VIEW, 200)[caller],
        "teams": expect(VIEW, 200)[caller],
        "update": expect(MANAGE, 200)[caller],
        "share": expect(ADMINISTER, 200)[caller],
        "unshare": expect(ADMINISTER, 204)[caller],
        "start": expect(MANAGE, 202)[caller],
        "ping": expect(VIEW, 204)[caller],
        "open": expect(VIEW, 200)[caller],
        "stop": expect(MANAGE, 202)[caller],
        "delete": expect(ADMINISTER, 204)[caller],
    }
    assert got == want


@pytest.mark.parametrize(
    ("caller", "seen"),
    [
        ("owner", 1),
        ("admin", 2),
        ("team_admin", 1),
        ("editor", 1),
        ("viewer", 1),
        ("outsider", 1),
        ("stranger", 0),
    ],
)
async def test_list_shows_own_shared_and_all_for_org_admins(
    client: TestClient, world: World, factory: Factory, caller: str, seen: int
) -> None:
    # The outsider owns one unshared notebook; only it and org admins see that one.
    factory.notebook(world.outsider, world.config)
    who = getattr(world, caller)
    body = await body_of(await client.get(NB, headers=who.auth))
    assert body["total"] == seen == len(body["items"])


@pytest.mark.parametrize(
    ("caller", "status"),
    [
        ("team_admin", 200),
        ("viewer", 200),
        ("admin", 200),
        ("outsider", 403),
        ("owner", 403),
        ("stranger", 404),
    ],
)
async def test_team_notebooks_for_members_and_org_admins(
    client: TestClient, world: World, caller: str, status: int
) -> None:
    who = getattr(world, caller)
    resp = await client.get(f"/api/v1/workloads/teams/{world.team}/notebooks", headers=who.auth)
    assert resp.status == status
    if status == 200:
        body = await body_of(resp)
        assert [i["notebookId"] for i in body["items"]] == [world.notebook]


async def test_open_mode_follows_owner_presence(
    client: TestClient, world: World, factory: Factory, clock
) -> None:
    nb = factory.notebook(world.owner, world.config, status="running", teams=(world.team,))
    url = f"{NB}/{nb}/open"

    async def mode(who) -> str:  # type: ignore[no-untyped-def]
        resp = await client.post(url, headers=who.auth)
        assert resp.status == 200, await resp.text()
        return (await body_of(resp))["mode"]

    assert await mode(world.owner) == "edit"
    assert await mode(world.viewer) == "view"
    assert await mode(world.editor) == "edit"  # owner not present
    assert await mode(world.admin) == "edit"
    assert (await client.post(f"{NB}/{nb}/ping", headers=world.owner.auth)).status == 204
    assert await mode(world.editor) == "view"  # owner active: others view
    assert await mode(world.team_admin) == "view"
    assert await mode(world.admin) == "view"
    assert await mode(world.owner) == "edit"
    clock.advance(151)  # past the presence window
    assert await mode(world.editor) == "edit"


async def test_an_owner_present_in_an_earlier_session_is_not_present_in_the_next(
    client: TestClient, world: World, factory: Factory, clock
) -> None:
    """The owner pinged, stopped the notebook and left; a team editor starts
    it again at once: they edit, rather than view for the rest of the
    owner's presence window."""
    nb = factory.notebook(world.owner, world.config, status="running", teams=(world.team,))
    assert (await client.post(f"{NB}/{nb}/ping", headers=world.owner.auth)).status == 204
    assert (await client.post(f"{NB}/{nb}/stop", headers=world.owner.auth)).status == 202
    factory.conn.execute("update notebooks set status = 'stopped' where id = %s", (nb,))
    clock.advance(10)
    assert (await client.post(f"{NB}/{nb}/start", headers=world.editor.auth)).status == 202
    factory.conn.execute("update notebooks set status = 'running' where id = %s", (nb,))
    resp = await client.post(f"{NB}/{nb}/open", headers=world.editor.auth)
    assert resp.status == 200 and (await body_of(resp))["mode"] == "edit"
    # The owner comes back within the 15 s that coalesce pings: this session's
    # first ping is written all the same.
    assert (await client.post(f"{NB}/{nb}/ping", headers=world.owner.auth)).status == 204
    resp = await client.post(f"{NB}/{nb}/open", headers=world.editor.auth)
    assert (await body_of(resp))["mode"] == "view"  # present in this session: view


# A write by a caller who may not make it, with a body that is wrong too.
# `who` makes the request; what it may not know is what a validation answer
# would tell (a config's allowed images, a schema's fields).
UNAUTHORIZED_WRITES = [
    ("editor", "POST", "/api/v1/teams", 403),
    ("editor", "POST", "/api/v1/members", 403),
    ("editor", "POST", "/api/v1/workloads/configs", 403),
    ("editor", "PATCH", "/api/v1/workloads/configs/{config}", 403),
    ("editor", "POST", "/api/v1/members/{admin}/tokens", 403),
    ("editor", "PUT", "/api/v1/teams/{team}/members/{viewer}", 403),
    ("viewer", "PATCH", NB + "/{notebook}", 403),
    ("viewer", "POST", NB + "/{notebook}/teams", 403),
    ("viewer", "POST", NB + "/{notebook}/start", 403),
    ("viewer", "POST", NB + "/{notebook}/stop", 403),
    ("stranger", "PATCH", NB + "/{notebook}", 404),
    ("stranger", "POST", NB + "/{notebook}/open", 404),
    ("stranger", "POST", NB + "/{notebook}/ping", 404),
]


@pytest.mark.parametrize(("caller", "method", "path", "status"), UNAUTHORIZED_WRITES)
async def test_a_write_one_may_not_make_is_refused_before_its_body_is_judged(
    client: TestClient, world: World, caller: str, method: str, path: str, status: int
) -> None:
    ids = {k: getattr(world, k) for k in ("config", "team", "notebook")}
    ids |= {k: getattr(world, k).id for k in ("admin", "viewer")}
    body = {"bogus": 1, "name": "", "sail": {"image": "evil.example.com/miner"}}
    resp = await client.request(
        method, path.format(**ids), json=body, headers=getattr(world, caller).auth
    )
    assert resp.status == status, await resp.text()

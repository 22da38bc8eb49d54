"""Finding notebooks by name (`?q=`): a plain substring, however
capitalised, among those the caller may see, with the list's other filters
and its pages; a marker belongs to its own search."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from api_factories import Factory, Member, World, body_of

NB = "/api/v1/workloads/notebooks"


def named(factory: Factory, owner: Member, config: str, name: str, **kw: Any) -> str:
    nb = factory.notebook(owner, config, **kw)
    factory.conn.execute("update notebooks set name = %s where id = %s", (name, nb))
    return nb


async def found(client: TestClient, who: Member, query: str, path: str = NB) -> dict[str, Any]:
    resp = await client.get(f"{path}?{query}", headers=who.auth)
    assert resp.status == 200, await resp.text()
    return await body_of(resp)


def names(page: dict[str, Any]) -> list[str]:
    by_id = {n["id"]: n["name"] for n in page["included"]["notebooks"]}
    return [by_id[i["notebookId"]] for i in page["items"]]


async def test_a_name_is_found_however_capitalised_among_what_the_caller_sees(
    client: TestClient, world: World, factory: Factory
) -> None:
    owner, config = world.owner, world.config
    named(factory, owner, config, "Churn model")
    named(factory, owner, config, "Customer CHURN, weekly", teams=(world.team,))
    named(factory, owner, config, "Revenue")
    named(factory, world.outsider, config, "Outsider's churn")  # theirs alone
    page = await found(client, owner, "q=churn")
    assert sorted(names(page)) == ["Churn model", "Customer CHURN, weekly"]
    assert page["total"] == 2
    # A team's member finds only what is shared with the team; an org admin all.
    assert names(await found(client, world.viewer, "q=Churn")) == ["Customer CHURN, weekly"]
    assert (await found(client, world.admin, "q=churn"))["total"] == 3
    # The team's own list, and the list of one owner's, search too.
    team = await found(
        client, world.viewer, "q=weekly", f"/api/v1/workloads/teams/{world.team}/notebooks"
    )
    assert names(team) == ["Customer CHURN, weekly"]
    assert (await found(client, world.admin, f"q=churn&owner={owner.id}"))["total"] == 2
    # With the Status filter: none of them is running.
    assert (await found(client, owner, "q=churn&status=running"))["total"] == 0
    # Blank is no search.
    assert (await found(client, owner, "q=%20"))["total"] == (await found(client, owner, ""))[
        "total"
    ]


async def test_percent_and_underscore_are_plain_characters(
    client: TestClient, world: World, factory: Factory
) -> None:
    named(factory, world.owner, world.config, "Growth 100%_sure")
    named(factory, world.owner, world.config, "Growth 100 sure")
    assert names(await found(client, world.owner, "q=%25_")) == ["Growth 100%_sure"]
    assert names(await found(client, world.owner, "q=0_s")) == []


async def test_a_search_pages_and_its_marker_is_its_own(
    client: TestClient, world: World, factory: Factory
) -> None:
    for i in range(3):
        named(factory, world.owner, world.config, f"Forecast {i}")
    first = await found(client, world.owner, "q=forecast&limit=2")
    assert first["total"] == 3 and len(first["items"]) == 2
    rest = await found(client, world.owner, f"q=forecast&limit=2&marker={first['marker']}")
    assert len(rest["items"]) == 1 and "marker" not in rest
    resp = await client.get(
        f"{NB}?q=fore&limit=2&marker={first['marker']}", headers=world.owner.auth
    )
    assert resp.status == 400 and (await body_of(resp))["code"] == "invalid_marker"


async def test_a_search_too_long_is_refused(client: TestClient, world: World) -> None:
    resp = await client.get(f"{NB}?q={'x' * 129}", headers=world.owner.auth)
    assert resp.status == 400
    body = await body_of(resp)
    assert (body["code"], body["field"]) == ("validation_failed", "q")
    resp = await client.get(f"{NB}?q=a&q=b", headers=world.owner.auth)
    assert resp.status == 400 and (await body_of(resp))["code"] == "repeated_parameter"

"""Keyset pagination: newest first, stable while rows are inserted and deleted
between pages, opaque HMAC-signed markers (forged or foreign = 400)."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient
from api_factories import Factory, Member, World, body_of

NB = "/api/v1/workloads/notebooks"


async def page(
    client: TestClient, who: Member, url: str, marker: str | None = None, limit: int = 10
) -> dict:
    query = f"?limit={limit}" + (f"&marker={marker}" if marker else "")
    resp = await client.get(url + query, headers=who.auth)
    assert resp.status == 200, await resp.text()
    return await body_of(resp)


async def walk(client: TestClient, who: Member, url: str, limit: int = 10) -> list[str]:
    seen: list[str] = []
    marker = None
    while True:
        body = await page(client, who, url, marker, limit)
        seen += [i["notebookId"] for i in body["items"]]
        marker = body.get("marker")
        if marker is None:
            return seen


def seed(factory: Factory, world: World, n: int, clock) -> list[str]:  # type: ignore[no-untyped-def]
    """n notebooks, some sharing a timestamp; returns them newest first."""
    made = []
    for i in range(n):
        if i % 3 == 0:
            clock.advance(1)
        made.append((clock.now(), factory.notebook(world.owner, world.config)))
    made.append((world_created(factory, world), world.notebook))
    return [nb for _, nb in sorted(made, reverse=True)]


def world_created(factory: Factory, world: World):  # type: ignore[no-untyped-def]
    return factory.value("select created_at from notebooks where id = %s", world.notebook)


async def test_pages_are_newest_first_and_complete(
    client: TestClient, world: World, factory: Factory, clock
) -> None:
    expected = seed(factory, world, 24, clock)
    first = await page(client, world.owner, NB)
    assert first["total"] == 25 and len(first["items"]) == 10 and "marker" in first
    assert len(first["included"]["notebooks"]) == 10
    assert await walk(client, world.owner, NB) == expected
    assert await walk(client, world.owner, NB, limit=1) == expected
    last = await page(client, world.owner, NB, limit=100)
    assert "marker" not in last and len(last["items"]) == 25


async def test_limit_zero_gives_total_only(client: TestClient, world: World) -> None:
    body = await page(client, world.owner, NB, limit=0)
    assert body["total"] == 1 and body["items"] == [] and body["included"]["notebooks"] == []


async def test_stable_under_inserts_and_deletes_between_pages(
    client: TestClient, world: World, factory: Factory, clock
) -> None:
    expected = seed(factory, world, 20, clock)
    first = await page(client, world.owner, NB, limit=7)
    shown = [i["notebookId"] for i in first["items"]]
    # Between pages: newer notebooks arrive, one already shown and one not yet
    # shown are deleted.
    clock.advance(5)
    for _ in range(3):
        resp = await client.post(
            NB, json={"name": "new", "workloadConfigId": world.config}, headers=world.owner.auth
        )
        assert resp.status == 201
    deleted_unseen = expected[10]
    for nb in (shown[2], deleted_unseen):
        assert (await client.delete(f"{NB}/{nb}", headers=world.owner.auth)).status == 204
    marker = first["marker"]
    while marker:
        body = await page(client, world.owner, NB, marker, 7)
        shown += [i["notebookId"] for i in body["items"]]
        marker = body.get("marker")
    assert shown == [nb for nb in expected if nb != deleted_unseen]


async def test_concurrent_inserts_never_duplicate_or_skip(
    client: TestClient, world: World, factory: Factory, clock
) -> None:
    expected = seed(factory, world, 30, clock)
    clock.advance(60)  # everything created during the walk is newer

    async def insert_many() -> None:
        for _ in range(15):
            await client.post(
                NB, json={"name": "c", "workloadConfigId": world.config}, headers=world.owner.auth
            )
            clock.advance(0.001)

    inserter = asyncio.create_task(insert_many())
    walked = await walk(client, world.owner, NB, limit=4)
    await inserter
    assert walked[-len(expected) :] == expected
    assert len(walked) == len(set(walked))


async def test_forged_and_foreign_markers_are_400(
    client: TestClient, world: World, factory: Factory, clock
) -> None:
    seed(factory, world, 5, clock)
    marker = (await page(client, world.owner, NB, limit=2))["marker"]
    body_part, mac = marker.split(".")
    for forged in (
        marker[:-2] + ("AA" if not marker.endswith("AA") else "BB"),
        "x" + marker,
        "garbage",
        f"{body_part}.",
        "",
        "." + mac,
    ):
        resp = await client.get(f"{NB}?marker={forged}", headers=world.owner.auth)
        assert resp.status == 400, forged
        assert (await body_of(resp))["code"] == "invalid_marker"
    # Someone else's marker, another list's, another organization's: refused.
    for who, url in (
        (world.editor, NB),
        (world.stranger, NB),
        (world.team_admin, f"/api/v1/workloads/teams/{world.team}/notebooks"),
        (world.owner, "/api/v1/teams"),
    ):
        resp = await client.get(f"{url}?marker={marker}", headers=who.auth)
        assert resp.status == 400, (who, url)
        assert (await body_of(resp))["field"] == "marker"


async def test_supporting_lists_paginate(
    client: TestClient, world: World, factory: Factory, clock
) -> None:
    for _ in range(4):
        clock.advance(1)
        factory.team(world.org)
    teams: list[str] = []
    marker = None
    while True:
        query = "?limit=2" + (f"&marker={marker}" if marker else "")
        body = await body_of(await client.get("/api/v1/teams" + query, headers=world.viewer.auth))
        assert body["total"] == 5
        teams += [t["id"] for t in body["items"]]
        marker = body.get("marker")
        if not marker:
            break
    assert len(teams) == len(set(teams)) == 5
    assert teams[-1] == world.team  # oldest last


async def test_concurrent_deletes_never_duplicate_or_skip_survivors(
    client: TestClient, world: World, factory: Factory, clock
) -> None:
    expected = seed(factory, world, 30, clock)
    doomed = expected[3::4]

    async def delete_some() -> None:
        for nb in doomed:
            resp = await client.delete(f"{NB}/{nb}", headers=world.owner.auth)
            assert resp.status == 204

    deleter = asyncio.create_task(delete_some())
    walked = await walk(client, world.owner, NB, limit=3)
    await deleter
    assert len(walked) == len(set(walked))
    survivors = [nb for nb in expected if nb not in doomed]
    assert [nb for nb in walked if nb in survivors] == survivors  # all, in order
    assert set(walked) <= set(expected)


async def test_a_members_pages_count_a_notebook_shared_with_two_of_its_teams_once(
    client: TestClient, world: World, factory: Factory, clock
) -> None:
    """A member's list is their own notebooks and those of their teams: one
    shared with two of their teams (and one they own that is also shared)
    is one row, and no page comes up short or skips one."""
    member = factory.member(world.org)
    teams = (factory.team(world.org), factory.team(world.org))
    for team in teams:
        factory.join(team, member, "viewer")
    made = []
    for i in range(12):
        clock.advance(1)
        if i % 4 == 0:  # their own, every fourth also shared
            nb = factory.notebook(member, world.config, teams=teams[:1] if i % 8 == 0 else ())
        else:
            nb = factory.notebook(world.owner, world.config, teams=teams)
        made.append((clock.now(), nb))
    factory.notebook(world.owner, world.config)  # not theirs, not shared: never listed
    expected = [nb for _, nb in sorted(made, reverse=True)]
    first = await page(client, member, NB, limit=5)
    assert first["total"] == 12 and len(first["items"]) == 5 and "marker" in first
    for limit in (1, 3, 5, 100):
        assert await walk(client, member, NB, limit=limit) == expected, limit

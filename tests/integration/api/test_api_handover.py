"""Handing a notebook on (PATCH `memberId`): an org admin gives it to another
active member of the organization, recorded in its history; a running one's
slot moves to the new owner, under their running limit; a refusal changes
nothing. Its owner may not (its cost would move to a colleague who never
agreed, while the owner kept using it through a team)."""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from api_factories import Factory, Member, World, body_of, refused

from api.app import create_app
from common.clock import FakeClock
from common.settings import Settings

NB = "/api/v1/workloads/notebooks"


async def hand_on(client: TestClient, nb: str, who: Member, to: str, **headers: str) -> Any:
    return await client.patch(f"{NB}/{nb}", json={"memberId": to}, headers={**who.auth, **headers})


def owner_of(factory: Factory, nb: str) -> str:
    return str(factory.value("select member_id from notebooks where id = %s", nb))


def events(factory: Factory, nb: str) -> list[tuple[str, str, str, str]]:
    rows = factory.conn.execute(
        "select from_status, to_status, reason, actor from notebook_events"
        " where notebook_id = %s order by id",
        (nb,),
    ).fetchall()
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_an_org_admin_hands_it_on_and_its_history_says_so(
    client: TestClient, world: World, factory: Factory
) -> None:
    nb = world.notebook
    resp = await hand_on(client, nb, world.admin, world.outsider.id)
    assert resp.status == 200, await resp.text()
    body = await body_of(resp)
    described = body["included"]["notebooks"][0]
    assert described["memberId"] == world.outsider.id
    assert described["updatedBy"] == world.admin.id
    assert {m["id"] for m in body["included"]["members"]} >= {world.outsider.id}
    assert owner_of(factory, nb) == world.outsider.id
    assert events(factory, nb) == [
        (
            "stopped",
            "stopped",
            f"Handed on from Member {world.owner.id} ({world.owner.id.lower()}@example.com) to"
            f" Member {world.outsider.id} ({world.outsider.id.lower()}@example.com)",
            world.admin.id,
        )
    ]
    # The previous owner, in none of its teams, no longer sees it.
    assert (await client.get(f"{NB}/{nb}", headers=world.owner.auth)).status == 404
    # The new owner has every right an owner has: a delete, for one.
    assert (await client.get(f"{NB}/{nb}", headers=world.outsider.auth)).status == 200
    assert (await client.delete(f"{NB}/{nb}", headers=world.outsider.auth)).status == 204


async def test_an_org_admin_hands_on_a_disabled_members_notebook(
    client: TestClient, world: World, factory: Factory, clock: FakeClock
) -> None:
    factory.conn.execute(
        "update members set disabled_at = %s where id = %s", (clock.now(), world.owner.id)
    )
    resp = await hand_on(client, world.notebook, world.admin, world.editor.id)
    assert resp.status == 200, await resp.text()
    assert owner_of(factory, world.notebook) == world.editor.id
    # The status and its message stay as they were: only the history moved.
    row = factory.conn.execute(
        "select status, status_message from notebooks where id = %s", (world.notebook,)
    ).fetchone()
    assert row == ("stopped", "")
    assert [e[3] for e in events(factory, world.notebook)] == [world.admin.id]


async def test_nobody_else_may_hand_it_on_and_a_refusal_changes_nothing(
    client: TestClient, world: World, factory: Factory
) -> None:
    nb = world.notebook
    # Its owner may not give it away (to a teammate, keeping access through
    # the team, it would run on their slots); team admins and editors manage
    # it, but giving it away is not managing it.
    for who in (world.owner, world.team_admin, world.editor):
        body = await refused(await hand_on(client, nb, who, world.editor.id), 403, "forbidden")
        assert body["detail"] == (
            "Only organization admins hand a notebook on; its owner may offer it to a colleague,"
            " who accepts it."
        )
    await refused(await hand_on(client, nb, world.viewer, world.viewer.id), 403, "forbidden")
    await refused(await hand_on(client, nb, world.outsider, world.outsider.id), 404, "not_found")
    await refused(await hand_on(client, nb, world.stranger, world.stranger.id), 404, "not_found")
    assert owner_of(factory, nb) == world.owner.id
    assert events(factory, nb) == []


async def test_only_an_active_member_of_the_organization_receives_it(
    client: TestClient, world: World, factory: Factory, clock: FakeClock
) -> None:
    nb = world.notebook
    gone = factory.member(world.org)
    factory.conn.execute(
        "update members set disabled_at = %s where id = %s", (clock.now(), gone.id)
    )
    for to in (gone.id, world.stranger.id, "NOSUCHMEMBER"):
        body = await refused(
            await hand_on(client, nb, world.admin, to), 400, "unknown_reference", "memberId"
        )
        assert body["detail"] == "The new owner is not an active member of this organization."
    await refused(
        await hand_on(client, nb, world.admin, "ann@example.com"), 400, "invalid_id", "memberId"
    )
    assert owner_of(factory, nb) == world.owner.id
    assert events(factory, nb) == []


async def test_handing_it_to_its_owner_changes_nothing(
    client: TestClient, world: World, factory: Factory
) -> None:
    # Sent by anyone who may edit it: no hand-over, so no refusal either.
    for who in (world.admin, world.owner, world.editor):
        resp = await hand_on(client, world.notebook, who, world.owner.id)
        assert resp.status == 200
    assert events(factory, world.notebook) == []


async def test_a_stale_etag_hands_nothing_on(
    client: TestClient, world: World, factory: Factory
) -> None:
    resp = await hand_on(
        client, world.notebook, world.admin, world.editor.id, **{"If-Match": '"x"'}
    )
    await refused(resp, 412, "etag_mismatch", "If-Match")
    assert owner_of(factory, world.notebook) == world.owner.id


async def test_a_running_notebook_goes_only_to_whom_its_slot_fits(
    settings: Settings, clock: FakeClock, world: World, factory: Factory
) -> None:
    limits = dataclasses.replace(settings, max_running_per_member=1, max_running_per_org=2)
    running = factory.notebook(world.owner, world.config, status="running")
    factory.notebook(world.editor, world.config, status="idle")  # the editor's one slot
    async with TestClient(TestServer(create_app(limits, clock=clock))) as client:
        body = await refused(
            await hand_on(client, running, world.admin, world.editor.id),
            409,
            "running_limit_reached",
        )
        assert body["detail"] == (
            f"Member {world.editor.id} may run at most 1 notebook at once; stop one first."
        )
        assert owner_of(factory, running) == world.owner.id
        assert events(factory, running) == []
        # A stopped one holds no slot: it goes; and the organization, at its
        # limit of two, is not asked (the slot only moves within it).
        assert (await hand_on(client, world.notebook, world.admin, world.editor.id)).status == 200
        assert (await hand_on(client, running, world.admin, world.outsider.id)).status == 200
        assert owner_of(factory, running) == world.outsider.id
        assert events(factory, running)[0][:2] == ("running", "running")


async def hand_on_all(client: TestClient, of: str, who: Member, to: str) -> Any:
    return await client.post(
        f"/api/v1/members/{of}/handover", json={"memberId": to}, headers=who.auth
    )


async def test_an_org_admin_hands_on_everything_a_leaving_member_owns(
    settings: Settings, clock: FakeClock, world: World, factory: Factory
) -> None:
    """Someone leaving owns many: one request, each in its history, their
    running slots moving together under the new owner's limit."""
    limits = dataclasses.replace(settings, max_running_per_member=2)
    running = factory.notebook(world.owner, world.config, status="running")
    idle = factory.notebook(world.owner, world.config, status="idle")
    theirs = factory.notebook(world.editor, world.config, status="running")
    async with TestClient(TestServer(create_app(limits, clock=clock))) as client:
        # The editor runs one already: two more would pass their limit of two.
        body = await refused(
            await hand_on_all(client, world.owner.id, world.admin, world.editor.id),
            409,
            "running_limit_reached",
        )
        assert "may run at most 2 notebooks at once" in body["detail"]
        assert {owner_of(factory, n) for n in (world.notebook, running, idle)} == {world.owner.id}
        assert events(factory, running) == []
        # The outsider runs none: all three go, their owner disabled meanwhile
        # (someone leaving is, often first).
        factory.conn.execute(
            "update members set disabled_at = %s where id = %s", (clock.now(), world.owner.id)
        )
        resp = await hand_on_all(client, world.owner.id, world.admin, world.outsider.id)
        assert resp.status == 200, await resp.text()
        assert await body_of(resp) == {"handedOn": 3}
        for nb in (world.notebook, running, idle):
            assert owner_of(factory, nb) == world.outsider.id
            (event,) = events(factory, nb)
            assert event[2].startswith(f"Handed on from Member {world.owner.id} (")
            assert event[3] == world.admin.id
        assert owner_of(factory, theirs) == world.editor.id
        # Nothing left: nothing handed on, nothing refused.
        again = await hand_on_all(client, world.owner.id, world.admin, world.outsider.id)
        assert await body_of(again) == {"handedOn": 0}


async def test_handing_on_everything_is_an_org_admins_to_an_active_member(
    client: TestClient, world: World, factory: Factory, clock: FakeClock
) -> None:
    for who in (world.owner, world.team_admin):
        await refused(await hand_on_all(client, world.owner.id, who, who.id), 403, "forbidden")
    gone = factory.member(world.org)
    factory.conn.execute(
        "update members set disabled_at = %s where id = %s", (clock.now(), gone.id)
    )
    for to in (gone.id, world.stranger.id):
        await refused(
            await hand_on_all(client, world.owner.id, world.admin, to),
            400,
            "unknown_reference",
            "memberId",
        )
    await refused(
        await hand_on_all(client, world.owner.id, world.admin, world.owner.id),
        400,
        "validation_failed",
        "memberId",
    )
    for of in (world.stranger.id, "NOSUCHMEMBER"):
        await refused(
            await hand_on_all(client, of, world.admin, world.editor.id), 404, "not_found", "member"
        )
    assert owner_of(factory, world.notebook) == world.owner.id
    assert events(factory, world.notebook) == []

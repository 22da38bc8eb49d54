"""Offering a notebook: its owner offers it to a colleague, who accepts it
(the notebook, and its running slot under their own limit, become theirs)
or declines it; the owner may withdraw it. Each step is in the notebook's
history. An offer is void once it expires, or once its maker no longer owns
the notebook (an org admin handed it on) or the notebook is being deleted."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import psycopg
from aiohttp.test_utils import TestClient, TestServer
from api_factories import Factory, Member, World, body_of, refused, until_waiting_on_locks

from api.app import create_app
from common.clock import FakeClock
from common.settings import Settings

NB = "/api/v1/workloads/notebooks"


async def offer(client: TestClient, nb: str, who: Member, to: str) -> Any:
    return await client.put(f"{NB}/{nb}/offer", json={"memberId": to}, headers=who.auth)


async def accept(client: TestClient, nb: str, who: Member) -> Any:
    return await client.post(f"{NB}/{nb}/offer/accept", headers=who.auth)


async def drop(client: TestClient, nb: str, who: Member) -> Any:
    return await client.delete(f"{NB}/{nb}/offer", headers=who.auth)


async def offers_to(client: TestClient, who: Member, query: str = "") -> Any:
    resp = await client.get(f"/api/v1/me/offers{query}", headers=who.auth)
    assert resp.status == 200, await resp.text()
    return await body_of(resp)


def owner_of(factory: Factory, nb: str) -> str:
    return str(factory.value("select member_id from notebooks where id = %s", nb))


def reasons(factory: Factory, nb: str) -> list[tuple[str, str]]:
    rows = factory.conn.execute(
        "select reason, actor from notebook_events where notebook_id = %s order by id", (nb,)
    ).fetchall()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def label(m: Member) -> str:
    return f"Member {m.id} ({m.id.lower()}@example.com)"


async def test_an_owner_offers_and_the_colleague_accepts(
    client: TestClient, world: World, factory: Factory, clock: FakeClock
) -> None:
    nb, ann, bob = world.notebook, world.owner, world.outsider  # bob cannot see it yet
    resp = await offer(client, nb, ann, bob.id)
    assert resp.status == 200, await resp.text()
    made = await body_of(resp)
    assert made == {
        "notebookId": nb,
        "notebookName": f"nb {nb}",
        "notebookStatus": "stopped",
        "fromMember": {
            "id": ann.id,
            "name": f"Member {ann.id}",
            "email": f"{ann.id.lower()}@example.com",
        },
        "toMember": {
            "id": bob.id,
            "name": f"Member {bob.id}",
            "email": f"{bob.id.lower()}@example.com",
        },
        "offeredAt": made["offeredAt"],
        "expiresAt": made["expiresAt"],
    }
    assert made["offeredAt"].startswith("2026-11-01T12:00:00")
    assert made["expiresAt"].startswith("2026-11-15T12:00:00")  # fourteen days
    # The recipient finds it, and may read it, though not the notebook.
    listed = await offers_to(client, bob)
    assert listed["total"] == 1 and listed["items"] == [made]
    assert (await client.get(f"{NB}/{nb}/offer", headers=bob.auth)).status == 200
    assert (await client.get(f"{NB}/{nb}", headers=bob.auth)).status == 404
    # Whoever sees the notebook sees its offer; nobody else.
    assert (await client.get(f"{NB}/{nb}/offer", headers=world.viewer.auth)).status == 200
    await refused(
        await client.get(f"{NB}/{nb}/offer", headers=world.stranger.auth), 404, "not_found"
    )
    assert (await offers_to(client, ann))["total"] == 0

    clock.advance(300)
    resp = await accept(client, nb, bob)
    assert resp.status == 200, await resp.text()
    described = (await body_of(resp))["included"]["notebooks"][0]
    assert described["memberId"] == bob.id and described["updatedBy"] == bob.id
    assert owner_of(factory, nb) == bob.id
    assert reasons(factory, nb) == [
        (f"Offered to {label(bob)}", ann.id),
        (f"Handed on from {label(ann)} to {label(bob)}, who accepted the offer", bob.id),
    ]
    # Done: the offer is gone, and Ann (in none of its teams) no longer sees it.
    assert (await offers_to(client, bob))["total"] == 0
    await refused(await client.get(f"{NB}/{nb}/offer", headers=bob.auth), 404, "not_found", "offer")
    await refused(await accept(client, nb, bob), 404, "not_found", "offer")
    assert (await client.get(f"{NB}/{nb}", headers=ann.auth)).status == 404


async def test_only_its_owner_offers_it(client: TestClient, world: World, factory: Factory) -> None:
    nb = world.notebook
    for who in (world.admin, world.team_admin, world.editor, world.viewer):
        await refused(await offer(client, nb, who, world.outsider.id), 403, "forbidden")
    for who in (world.outsider, world.stranger):
        await refused(await offer(client, nb, who, world.editor.id), 404, "not_found", "id")
    assert factory.value("select count(*) from notebook_offers") == 0
    assert reasons(factory, nb) == []


async def test_it_is_offered_only_to_another_active_member_of_the_organization(
    client: TestClient, world: World, factory: Factory, clock: FakeClock
) -> None:
    nb, ann = world.notebook, world.owner
    gone = factory.member(world.org)
    factory.conn.execute(
        "update members set disabled_at = %s where id = %s", (clock.now(), gone.id)
    )
    for to in (gone.id, world.stranger.id, "NOSUCHMEMBER"):
        await refused(await offer(client, nb, ann, to), 400, "unknown_reference", "memberId")
    await refused(await offer(client, nb, ann, ann.id), 400, "validation_failed", "memberId")
    await refused(await offer(client, nb, ann, "bob@example.com"), 400, "invalid_id", "memberId")
    resp = await client.put(f"{NB}/{nb}/offer", json={}, headers=ann.auth)
    await refused(resp, 400, "missing_field", "memberId")
    # By email too (who is not an org admin may not list members), never both.
    for email in (f"{gone.id.lower()}@example.com", "nobody@example.com"):
        resp = await client.put(f"{NB}/{nb}/offer", json={"email": email}, headers=ann.auth)
        await refused(resp, 400, "unknown_reference", "email")
    resp = await client.put(
        f"{NB}/{nb}/offer", json={"email": f"{ann.id.lower()}@example.com"}, headers=ann.auth
    )
    await refused(resp, 400, "validation_failed", "email")
    both = {"memberId": world.editor.id, "email": f"{world.editor.id.lower()}@example.com"}
    resp = await client.put(f"{NB}/{nb}/offer", json=both, headers=ann.auth)
    await refused(resp, 400, "validation_failed", "memberId")
    resp = await client.put(f"{NB}/{nb}/offer", json={"email": "not an address"}, headers=ann.auth)
    await refused(resp, 400, "invalid_value", "email")
    assert factory.value("select count(*) from notebook_offers") == 0


async def test_a_colleague_is_named_by_email_however_capitalised(
    client: TestClient, world: World, factory: Factory
) -> None:
    bob = world.outsider
    resp = await client.put(
        f"{NB}/{world.notebook}/offer",
        json={"email": f"{bob.id.upper()}@Example.COM"},
        headers=world.owner.auth,
    )
    assert resp.status == 200, await resp.text()
    assert (await body_of(resp))["toMember"]["id"] == bob.id
    assert (await accept(client, world.notebook, bob)).status == 200
    assert owner_of(factory, world.notebook) == bob.id


async def test_the_recipient_declines_and_the_owner_withdraws(
    client: TestClient, world: World, factory: Factory
) -> None:
    nb, ann, bob = world.notebook, world.owner, world.outsider
    assert (await offer(client, nb, ann, bob.id)).status == 200
    # Neither a team admin nor someone outside may drop it.
    await refused(await drop(client, nb, world.team_admin), 403, "forbidden")
    await refused(await drop(client, nb, world.stranger), 404, "not_found", "offer")
    assert (await drop(client, nb, bob)).status == 204
    assert owner_of(factory, nb) == ann.id
    await refused(await accept(client, nb, bob), 404, "not_found", "offer")
    await refused(await drop(client, nb, bob), 404, "not_found", "offer")

    assert (await offer(client, nb, ann, bob.id)).status == 200
    assert (await drop(client, nb, ann)).status == 204
    assert (await offers_to(client, bob))["total"] == 0
    await refused(await accept(client, nb, bob), 404, "not_found", "offer")
    assert owner_of(factory, nb) == ann.id
    assert reasons(factory, nb) == [
        (f"Offered to {label(bob)}", ann.id),
        (f"{label(bob)} declined the offer", bob.id),
        (f"Offered to {label(bob)}", ann.id),
        (f"Offer to {label(bob)} withdrawn", ann.id),
    ]


async def test_an_org_admin_withdraws_an_offer(
    client: TestClient, world: World, factory: Factory
) -> None:
    assert (await offer(client, world.notebook, world.owner, world.editor.id)).status == 200
    assert (await drop(client, world.notebook, world.admin)).status == 204
    assert reasons(factory, world.notebook)[-1] == (
        f"Offer to {label(world.editor)} withdrawn",
        world.admin.id,
    )


async def test_a_new_offer_replaces_the_pending_one_and_the_same_one_changes_nothing(
    client: TestClient, world: World, factory: Factory, clock: FakeClock
) -> None:
    nb, ann, bob, cat = world.notebook, world.owner, world.outsider, world.editor
    first = await body_of(await offer(client, nb, ann, bob.id))
    clock.advance(86400)
    assert await body_of(await offer(client, nb, ann, bob.id)) == first  # not made again
    assert (await offer(client, nb, ann, cat.id)).status == 200
    assert (await offers_to(client, bob))["total"] == 0
    assert [i["notebookId"] for i in (await offers_to(client, cat))["items"]] == [nb]
    await refused(await accept(client, nb, bob), 404, "not_found", "offer")
    assert (await accept(client, nb, cat)).status == 200
    assert [r for r, _ in reasons(factory, nb)][:2] == [
        f"Offered to {label(bob)}",
        f"Offered to {label(cat)}",
    ]


async def test_an_offer_expires_after_fourteen_days(
    client: TestClient, world: World, factory: Factory, clock: FakeClock
) -> None:
    nb, bob = world.notebook, world.outsider
    assert (await offer(client, nb, world.owner, bob.id)).status == 200
    clock.advance(14 * 86400 - 1)
    assert (await offers_to(client, bob))["total"] == 1
    clock.advance(1)
    assert (await offers_to(client, bob))["total"] == 0
    await refused(await accept(client, nb, bob), 404, "not_found", "offer")
    assert owner_of(factory, nb) == world.owner.id
    # Made again, it runs fourteen days from then.
    assert (await offer(client, nb, world.owner, bob.id)).status == 200
    assert (await accept(client, nb, bob)).status == 200


async def test_a_running_notebook_is_accepted_only_within_the_recipients_limit(
    settings: Settings, clock: FakeClock, world: World, factory: Factory
) -> None:
    limits = dataclasses.replace(settings, max_running_per_member=1, max_running_per_org=2)
    running = factory.notebook(world.owner, world.config, status="running")
    mine = factory.notebook(world.editor, world.config, status="idle")  # the editor's one slot
    async with TestClient(TestServer(create_app(limits, clock=clock))) as client:
        assert (await offer(client, running, world.owner, world.editor.id)).status == 200
        body = await refused(
            await accept(client, running, world.editor), 409, "running_limit_reached"
        )
        assert body["detail"] == "You may run at most 1 notebook at once; stop one first."
        assert owner_of(factory, running) == world.owner.id
        assert (await offers_to(client, world.editor))["total"] == 1  # still there
        # With their own stopped, it fits; the organization's count does not move.
        factory.conn.execute(
            "update notebooks set status = 'stopped', desired_state = 'stopped' where id = %s",
            (mine,),
        )
        assert (await accept(client, running, world.editor)).status == 200
        assert owner_of(factory, running) == world.editor.id


async def test_a_hand_over_or_a_deletion_voids_the_offer(
    client: TestClient, world: World, factory: Factory
) -> None:
    nb, ann, bob = world.notebook, world.owner, world.outsider
    assert (await offer(client, nb, ann, bob.id)).status == 200
    resp = await client.patch(
        f"{NB}/{nb}", json={"memberId": world.editor.id}, headers=world.admin.auth
    )
    assert resp.status == 200, await resp.text()
    assert (await offers_to(client, bob))["total"] == 0
    await refused(await accept(client, nb, bob), 404, "not_found", "offer")
    # Handed back, its old offer does not come back to life.
    resp = await client.patch(f"{NB}/{nb}", json={"memberId": ann.id}, headers=world.admin.auth)
    assert resp.status == 200, await resp.text()
    assert (await offers_to(client, bob))["total"] == 0
    assert factory.value("select count(*) from notebook_offers") == 0

    assert (await offer(client, nb, ann, bob.id)).status == 200
    resp = await client.post(
        f"/api/v1/members/{ann.id}/handover",
        json={"memberId": world.editor.id},
        headers=world.admin.auth,
    )
    assert resp.status == 200, await resp.text()
    assert factory.value("select count(*) from notebook_offers") == 0

    other = factory.notebook(ann, world.config)
    assert (await offer(client, other, ann, bob.id)).status == 200
    assert (await client.delete(f"{NB}/{other}", headers=ann.auth)).status == 204
    assert (await offers_to(client, bob))["total"] == 0
    await refused(await accept(client, other, bob), 404, "not_found", "offer")


async def test_an_accept_waiting_on_a_withdrawal_sees_it(
    client: TestClient, world: World, factory: Factory, settings: Settings
) -> None:
    """The offer is read after the notebook's lock: an accept that waited
    for a withdrawal in flight finds no offer, instead of taking the
    notebook on the one it read before."""
    nb, bob = world.notebook, world.outsider
    assert (await offer(client, nb, world.owner, bob.id)).status == 200
    connect = psycopg.AsyncConnection.connect(settings.database_url)
    async with await connect as holder:
        async with holder.transaction():
            await holder.execute("select 1 from notebooks where id = %s for update", (nb,))
            accepting = asyncio.ensure_future(accept(client, nb, bob))
            await until_waiting_on_locks(factory, 1, accepting, "the accept did not wait")
            await holder.execute("delete from notebook_offers where notebook_id = %s", (nb,))
        await refused(await accepting, 404, "not_found", "offer")
    assert owner_of(factory, nb) == world.owner.id


async def test_the_offers_to_a_member_come_newest_first_in_pages(
    client: TestClient, world: World, factory: Factory, clock: FakeClock
) -> None:
    made = []
    for _ in range(3):
        nb = factory.notebook(world.owner, world.config)
        assert (await offer(client, nb, world.owner, world.editor.id)).status == 200
        made.append(nb)
        clock.advance(60)
    first = await offers_to(client, world.editor, "?limit=2")
    assert first["total"] == 3
    assert [i["notebookId"] for i in first["items"]] == made[:0:-1]
    rest = await offers_to(client, world.editor, f"?limit=2&marker={first['marker']}")
    assert [i["notebookId"] for i in rest["items"]] == made[:1] and "marker" not in rest
    # Another member's marker is refused.
    resp = await client.get(
        f"/api/v1/me/offers?marker={first['marker']}", headers=world.viewer.auth
    )
    await refused(resp, 400, "invalid_marker")


async def test_who_may_not_see_the_notebook_learns_nothing_of_its_offer(
    client: TestClient, world: World, factory: Factory
) -> None:
    """The same 404 whether or not an offer is pending (or made to someone
    else): to a member who may not see the notebook, nothing says."""
    nb, nosy = world.notebook, factory.member(world.org)

    async def answers() -> list[tuple[int, str]]:
        out = []
        for resp in (
            await client.get(f"{NB}/{nb}/offer", headers=nosy.auth),
            await drop(client, nb, nosy),
            await accept(client, nb, nosy),
        ):
            out.append((resp.status, (await body_of(resp))["detail"]))
        return out

    before = await answers()
    assert before == [(404, "This notebook is not offered to you.")] * 3
    assert (await offer(client, nb, world.owner, world.outsider.id)).status == 200
    assert await answers() == before
    # Who sees it sees the offer; accepting someone else's is refused, not hidden.
    for who in (world.team_admin, world.viewer, world.admin):
        resp = await client.get(f"{NB}/{nb}/offer", headers=who.auth)
        assert resp.status == 200, await resp.text()
    await refused(await accept(client, nb, world.viewer), 403, "forbidden")
    await refused(await drop(client, nb, world.viewer), 403, "forbidden")
    assert owner_of(factory, nb) == world.owner.id


async def test_an_offer_outlasts_its_makers_disabling_and_waits_out_its_recipients(
    client: TestClient, world: World, factory: Factory, clock: FakeClock
) -> None:
    """Someone leaving who offered their notebooks first has done the
    hand-over; a recipient disabled meanwhile finds the offer when enabled."""
    nb, ann, bob = world.notebook, world.owner, world.outsider
    other = factory.notebook(ann, world.config)
    assert (await offer(client, nb, ann, bob.id)).status == 200
    assert (await offer(client, other, ann, world.editor.id)).status == 200
    disable = "update members set disabled_at = %s where id = %s"
    factory.conn.execute(disable, (clock.now(), ann.id))
    assert (await accept(client, nb, bob)).status == 200
    assert owner_of(factory, nb) == bob.id

    factory.conn.execute(disable, (clock.now(), world.editor.id))
    resp = await client.post(f"/api/v1/members/{world.editor.id}/enable", headers=world.admin.auth)
    assert resp.status == 200, await resp.text()
    editor = await client.post(
        f"/api/v1/members/{world.editor.id}/tokens", json={"name": "back"}, headers=world.admin.auth
    )
    assert editor.status == 201, await editor.text()
    auth = {"Authorization": f"Bearer {(await body_of(editor))['token']}"}
    resp = await client.get("/api/v1/me/offers", headers=auth)
    assert [i["notebookId"] for i in (await body_of(resp))["items"]] == [other]

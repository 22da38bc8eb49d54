"""The organization's activity (GET /events): every notebook's history in one
feed, newest first, to its org admins alone, with deleted notebooks' (named
by the name their events kept), filtered by actor and by notebook."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from api_factories import Factory, Member, World, body_of, refused

from reconciler.reconcile import DELETED
from sql import query

NB = "/api/v1/workloads/notebooks"
EVENTS = "/api/v1/events"


async def activity(client: TestClient, who: Member, query_string: str = "") -> dict:
    resp = await client.get(f"{EVENTS}{query_string}", headers=who.auth)
    assert resp.status == 200, await resp.text()
    return await body_of(resp)


async def start_and_stop(client: TestClient, factory: Factory, who: Member, notebook: str) -> None:
    assert (await client.post(f"{NB}/{notebook}/start", headers=who.auth)).status == 202
    factory.clock.advance(5)
    assert (await client.post(f"{NB}/{notebook}/stop", headers=who.auth)).status == 202
    factory.clock.advance(5)


async def test_an_org_admin_reads_every_notebooks_history_newest_first(
    client: TestClient, world: World, factory: Factory
) -> None:
    assert await activity(client, world.admin) == {
        "total": 0,
        "items": [],
        "included": {"members": [], "notebooks": []},
    }
    other = factory.notebook(world.outsider, world.config)  # shared with nobody
    await start_and_stop(client, factory, world.owner, world.notebook)
    await start_and_stop(client, factory, world.outsider, other)
    # Another organization's notebooks are not its activity.
    stranger_config = factory.config(world.stranger.org)
    theirs = factory.notebook(world.stranger, stranger_config)
    await start_and_stop(client, factory, world.stranger, theirs)

    body = await activity(client, world.admin)
    assert body["total"] == 4 and "marker" not in body
    assert [(e["notebookId"], e["toStatus"], e["actor"]) for e in body["items"]] == [
        (other, "stopping", world.outsider.id),
        (other, "starting", world.outsider.id),
        (world.notebook, "stopping", world.owner.id),
        (world.notebook, "starting", world.owner.id),
    ]
    first = body["items"][-1]
    assert first == {
        "id": first["id"],
        "notebookId": world.notebook,
        "notebookName": f"nb {world.notebook}",
        "fromStatus": "stopped",
        "toStatus": "starting",
        "reason": "Start requested",
        "actor": world.owner.id,
        "createdAt": "2026-11-01T12:00:00+00:00",
    }
    # Who acted and on what, by name: the page's members and notebooks.
    assert {m["id"] for m in body["included"]["members"]} == {world.owner.id, world.outsider.id}
    notebooks = {n["id"]: n for n in body["included"]["notebooks"]}
    assert set(notebooks) == {world.notebook, other}
    assert notebooks[other]["name"] == f"nb {other}" and notebooks[other]["status"] == "stopping"


async def test_only_org_admins_read_the_organizations_activity(
    client: TestClient, world: World
) -> None:
    for who in (world.owner, world.team_admin, world.editor, world.viewer, world.outsider):
        resp = await client.get(EVENTS, headers=who.auth)
        await refused(resp, 403, "forbidden")
    assert (await client.get(EVENTS)).status == 401


async def test_a_deleted_notebooks_history_stays_in_the_activity_by_the_name_it_had(
    client: TestClient, world: World, factory: Factory
) -> None:
    url = f"{NB}/{world.notebook}"
    resp = await client.patch(url, json={"name": "Churn"}, headers=world.owner.auth)
    assert resp.status == 200, await resp.text()
    factory.clock.advance(5)
    assert (await client.delete(url, headers=world.owner.auth)).status == 204
    # Being deleted: no longer a notebook to link to, its events all there.
    deleting = await activity(client, world.admin, f"?notebook={world.notebook}")
    assert deleting["total"] == 2 and deleting["included"]["notebooks"] == []
    # The delete finished: the reconciler removed the row (its own statement).
    factory.conn.execute(
        query("reconciler_delete_notebook"),
        {"id": world.notebook, "reason": DELETED, "now": factory.clock.now(), "trash_days": 30},
    )
    assert (await client.get(url, headers=world.admin.auth)).status == 404

    body = await activity(client, world.admin, f"?notebook={world.notebook}")
    assert [(e["reason"], e["notebookName"]) for e in body["items"]] == [
        (DELETED, "Churn"),  # the last word: gone for good, by the platform
        ("Delete requested", "Churn"),
        (f"Renamed from “nb {world.notebook}”", "Churn"),
    ]
    # Gone: no notebook to link to; the events name it.
    assert body["included"]["notebooks"] == []
    assert body["items"][0]["actor"] == "reconciler"
    assert (body["items"][0]["fromStatus"], body["items"][0]["toStatus"]) == ("stopping", "stopped")
    assert (await activity(client, world.admin))["total"] == 3


async def test_events_recorded_before_names_were_kept_have_none(
    client: TestClient, world: World, factory: Factory
) -> None:
    factory.event(world.notebook, world.org, "stopped")
    (event,) = (await activity(client, world.admin))["items"]
    assert event["notebookName"] is None


async def test_the_activity_of_one_member_or_of_the_platform(
    client: TestClient, world: World, factory: Factory
) -> None:
    other = factory.notebook(world.outsider, world.config)
    await start_and_stop(client, factory, world.owner, world.notebook)
    await start_and_stop(client, factory, world.outsider, other)
    factory.reconciler_sets(other, "stopped", "Sail and Marimo stopped")

    owners = await activity(client, world.admin, f"?actor={world.owner.id}")
    assert owners["total"] == 2
    assert {e["actor"] for e in owners["items"]} == {world.owner.id}
    assert [n["id"] for n in owners["included"]["notebooks"]] == [world.notebook]
    platform = await activity(client, world.admin, "?actor=reconciler")
    assert [(e["notebookId"], e["reason"]) for e in platform["items"]] == [
        (other, "Sail and Marimo stopped")
    ]
    assert platform["included"]["members"] == []
    # Both filters: one member's acts on one notebook.
    both = await activity(client, world.admin, f"?notebook={other}&actor={world.owner.id}")
    assert both == {"total": 0, "items": [], "included": {"members": [], "notebooks": []}}
    mine = await activity(client, world.admin, f"?notebook={other}&actor={world.outsider.id}")
    assert mine["total"] == 2
    # Another organization's notebook, by id: nothing of it.
    stranger_config = factory.config(world.stranger.org)
    theirs = factory.notebook(world.stranger, stranger_config)
    await start_and_stop(client, factory, world.stranger, theirs)
    assert (await activity(client, world.admin, f"?notebook={theirs}"))["total"] == 0


async def test_the_activity_pages_by_marker_and_a_marker_keeps_to_its_filter(
    client: TestClient, world: World, factory: Factory
) -> None:
    for i in range(6):
        body = {"description": f"take {i}"}
        resp = await client.patch(f"{NB}/{world.notebook}", json=body, headers=world.owner.auth)
        assert resp.status == 200, await resp.text()
    first = await activity(client, world.admin, "?limit=4")
    assert first["total"] == 6 and len(first["items"]) == 4
    rest = await activity(client, world.admin, f"?limit=4&marker={first['marker']}")
    assert len(rest["items"]) == 2 and "marker" not in rest
    ids = [int(e["id"]) for e in first["items"] + rest["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 6
    # A page's marker is its filter's: another list's is refused.
    for other in (f"?actor={world.owner.id}&", f"?notebook={world.notebook}&"):
        resp = await client.get(
            f"{EVENTS}{other}marker={first['marker']}", headers=world.admin.auth
        )
        await refused(resp, 400, "invalid_marker", "marker")
    history = await client.get(
        f"{NB}/{world.notebook}/events?marker={first['marker']}", headers=world.admin.auth
    )
    await refused(history, 400, "invalid_marker", "marker")


async def test_bad_filters_are_refused(client: TestClient, world: World) -> None:
    for query_string, field in (
        ("?actor=bob", "actor"),
        ("?actor=", "actor"),
        ("?notebook=../x", "notebook"),
        ("?owner=x", "owner"),
    ):
        resp = await client.get(f"{EVENTS}{query_string}", headers=world.admin.auth)
        code = "unknown_parameter" if field == "owner" else "invalid_id"
        await refused(resp, 400, code, field)


async def test_the_activity_counts_up_to_ten_thousand_then_says_so(
    client: TestClient, world: World, factory: Factory
) -> None:
    """Counting a million events cost 50 ms a page (bench/README.md): past
    10,000 `total` is a floor, and `totalCapped` says so. One notebook's
    history is counted whole."""

    factory.event(world.notebook, world.org, "stopped", times=10_000)
    for query_string in ("?limit=1", "?limit=1&actor=reconciler"):
        exact = await activity(client, world.admin, query_string)
        assert exact["total"] == 10_000 and "totalCapped" not in exact, query_string
    factory.event(world.notebook, world.org, "stopped")
    await start_and_stop(client, factory, world.owner, world.notebook)
    for query_string in ("?limit=1", "?limit=1&actor=reconciler"):
        body = await activity(client, world.admin, query_string)
        assert body["total"] == 10_000 and body["totalCapped"] is True, query_string
    assert (await activity(client, world.admin, "?actor=" + world.owner.id))["total"] == 2
    whole = await activity(client, world.admin, f"?limit=1&notebook={world.notebook}")
    assert whole["total"] == 10_003 and "totalCapped" not in whole


async def test_another_organizations_notebook_is_never_included(
    client: TestClient, world: World, factory: Factory
) -> None:
    """Defence in depth: an event of this organization naming another's
    notebook (none is ever written so) does not bring that notebook along."""
    stranger_config = factory.config(world.stranger.org)
    theirs = factory.notebook(world.stranger, stranger_config)
    factory.event(theirs, world.org, "stopped")
    body = await activity(client, world.admin)
    assert [e["notebookId"] for e in body["items"]] == [theirs]
    assert body["included"]["notebooks"] == []

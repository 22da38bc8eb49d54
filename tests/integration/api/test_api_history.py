"""A notebook's history (GET /workloads/notebooks/{id}/events): every status
change with its reason and actor, newest first, to whoever may see the
notebook, paginated with markers of the caller's and the notebook's own."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from api_factories import Factory, Member, World, body_of

from sql import query

NB = "/api/v1/workloads/notebooks"


async def history(client: TestClient, who: Member, notebook: str, query: str = "") -> dict:
    resp = await client.get(f"{NB}/{notebook}/events{query}", headers=who.auth)
    assert resp.status == 200, await resp.text()
    return await body_of(resp)


async def test_start_and_stop_are_listed_newest_first_with_reason_and_actor(
    client: TestClient, world: World, factory: Factory
) -> None:
    assert (await history(client, world.owner, world.notebook)) == {
        "total": 0,
        "items": [],
        "included": {"members": []},
    }
    url = f"{NB}/{world.notebook}"
    assert (await client.post(f"{url}/start", headers=world.owner.auth)).status == 202
    factory.clock.advance(5)
    factory.reconciler_sets(world.notebook, "running", "Sail and Marimo are healthy")
    factory.clock.advance(5)
    assert (await client.post(f"{url}/stop", headers=world.editor.auth)).status == 202

    body = await history(client, world.owner, world.notebook)
    assert body["total"] == 3 and "marker" not in body
    stop, running, start = body["items"]
    assert stop["fromStatus"] == "running" and stop["toStatus"] == "stopping"
    assert stop["actor"] == world.editor.id and stop["reason"] == "Stop requested"
    assert running["actor"] == "reconciler" and running["reason"] == "Sail and Marimo are healthy"
    assert start == {
        "id": start["id"],
        "notebookId": world.notebook,
        "notebookName": f"nb {world.notebook}",
        "fromStatus": "stopped",
        "toStatus": "starting",
        "reason": "Start requested",
        "actor": world.owner.id,
        "createdAt": "2026-11-01T12:00:00+00:00",
    }
    assert int(stop["id"]) > int(running["id"]) > int(start["id"])
    # Who acted, by name (the console showed a bare id): the members of this
    # page, not "reconciler".
    members = {m["id"]: m for m in body["included"]["members"]}
    assert set(members) == {world.owner.id, world.editor.id}
    name = factory.value("select name from members where id = %s", world.editor.id)
    assert members[world.editor.id]["name"] == name
    assert set(members[world.editor.id]) == {
        "id",
        "organizationId",
        "email",
        "name",
        "organizationAdmin",
        "disabled",
    }
    # A page names only its own actors.
    first = await history(client, world.owner, world.notebook, "?limit=1")
    assert [m["id"] for m in first["included"]["members"]] == [world.editor.id]


async def test_the_historys_times_never_run_backwards(
    client: TestClient, world: World, factory: Factory
) -> None:
    """A worker whose clock is 2 s ahead of the API's records `idle`; then a
    ping (which read its clock before waiting for the worker's row lock, or
    runs on a host behind) moves it back to `running`. Listed newest first,
    that move is not older than the one before it."""
    url = f"{NB}/{world.notebook}"
    assert (await client.post(f"{url}/start", headers=world.owner.auth)).status == 202
    started = await body_of(await client.get(url, headers=world.owner.auth))
    started_at = started["included"]["notebooks"][0]["updatedAt"]
    factory.reconciler_sets(world.notebook, "running", "Sail and Marimo are healthy")
    factory.clock.advance(2)
    factory.reconciler_sets(world.notebook, "idle", "nobody is connected")
    factory.clock.advance(-2)  # the API's clock
    assert (await client.post(f"{url}/ping", headers=world.owner.auth)).status == 204
    running, idle, *_ = (await history(client, world.owner, world.notebook))["items"]
    assert (idle["toStatus"], running["toStatus"]) == ("idle", "running")
    assert (running["reason"], running["actor"]) == ("A member is back", world.owner.id)
    assert running["createdAt"] >= idle["createdAt"]
    described = await body_of(await client.get(url, headers=world.owner.auth))
    [notebook] = described["included"]["notebooks"]
    assert notebook["status"] == "running"
    # Updated names a member's last change (the start), not the platform's
    # status changes nor this ping's: those are in the history.
    assert (notebook["updatedAt"], notebook["updatedBy"]) == (started_at, world.owner.id)
    assert notebook["statusMessage"] == ""  # running needs no explaining; its history says why
    # A stop writes the row (updated_at) on the API's clock first: still after.
    factory.clock.advance(5)
    factory.reconciler_sets(world.notebook, "idle", "nobody is connected")
    factory.clock.advance(-5)
    assert (await client.post(f"{url}/stop", headers=world.owner.auth)).status == 202
    stopping, idle, *_ = (await history(client, world.owner, world.notebook))["items"]
    assert (idle["toStatus"], stopping["toStatus"]) == ("idle", "stopping")
    assert stopping["createdAt"] >= idle["createdAt"]


async def test_whoever_may_see_the_notebook_reads_its_history_and_nobody_else(
    client: TestClient, world: World, factory: Factory
) -> None:
    factory.event(world.notebook, world.org, "starting", reason="Start requested")
    for who in (world.owner, world.admin, world.team_admin, world.editor, world.viewer):
        assert (await history(client, who, world.notebook))["total"] == 1, who
    for who in (world.outsider, world.stranger):
        resp = await client.get(f"{NB}/{world.notebook}/events", headers=who.auth)
        assert resp.status == 404 and (await body_of(resp))["code"] == "not_found"
    resp = await client.get(f"{NB}/{world.notebook}/events")
    assert resp.status == 401
    # Unsharing the team ends its members' reading at once.
    await client.delete(f"{NB}/{world.notebook}/teams/{world.team}", headers=world.owner.auth)
    resp = await client.get(f"{NB}/{world.notebook}/events", headers=world.viewer.auth)
    assert resp.status == 404


async def test_a_deleted_notebook_has_no_history_in_the_api_though_its_events_are_kept(
    client: TestClient, world: World, factory: Factory
) -> None:
    factory.event(world.notebook, world.org, "starting", reason="Start requested")
    assert (await client.delete(f"{NB}/{world.notebook}", headers=world.owner.auth)).status == 204
    resp = await client.get(f"{NB}/{world.notebook}/events", headers=world.owner.auth)
    assert resp.status == 404
    kept = "select count(*) from notebook_events where notebook_id = %s"
    assert factory.value(kept, world.notebook) == 2  # with the delete's own event


def events_of(factory: Factory, notebook: str) -> list[tuple[str | None, str, str, str]]:
    """The stored history (the API answers 404 once the notebook is deleted)."""
    rows = factory.conn.execute(query("list_events"), {"notebook_id": notebook}).fetchall()
    return [(r[2], r[3], r[4], r[5]) for r in rows]


async def test_who_deleted_a_notebook_is_kept_in_its_history(
    client: TestClient, world: World, factory: Factory
) -> None:
    url = f"{NB}/{world.notebook}"
    assert (await client.post(f"{url}/start", headers=world.owner.auth)).status == 202
    factory.reconciler_sets(world.notebook, "running", "")
    factory.clock.advance(5)
    assert (await client.delete(url, headers=world.team_admin.auth)).status == 204
    assert events_of(factory, world.notebook)[-1] == (
        "running",
        "stopping",
        "Delete requested",
        world.team_admin.id,
    )
    # The reconciler's teardown then says "deleting" without a second event.
    factory.reconciler_sets(world.notebook, "stopping", "deleting")
    assert [e[3] for e in events_of(factory, world.notebook)] == [
        world.owner.id,
        "reconciler",
        world.team_admin.id,
    ]


async def test_a_delete_during_a_stop_is_recorded_with_who_asked(
    client: TestClient, world: World, factory: Factory
) -> None:
    url = f"{NB}/{world.notebook}"
    assert (await client.post(f"{url}/start", headers=world.owner.auth)).status == 202
    factory.reconciler_sets(world.notebook, "running", "")
    assert (await client.post(f"{url}/stop", headers=world.editor.auth)).status == 202
    assert (await client.delete(url, headers=world.admin.auth)).status == 204
    assert events_of(factory, world.notebook)[-2:] == [
        ("running", "stopping", "Stop requested", world.editor.id),
        ("stopping", "stopping", "Delete requested", world.admin.id),
    ]


async def test_pages_walk_the_whole_history_and_only_this_notebooks(
    client: TestClient, world: World, factory: Factory
) -> None:
    other = factory.notebook(world.owner, world.config)
    for i in range(7):
        factory.clock.advance(1)
        factory.event(world.notebook, world.org, "starting", reason=f"step {i}")
        factory.event(other, world.org, "starting", reason=f"other {i}")
    reasons: list[str] = []
    query = "?limit=3"
    while True:
        body = await history(client, world.owner, world.notebook, query)
        assert body["total"] == 7 and len(body["items"]) <= 3
        reasons += [e["reason"] for e in body["items"]]
        if "marker" not in body:
            break
        query = f"?limit=3&marker={body['marker']}"
    assert reasons == [f"step {i}" for i in reversed(range(7))]
    counted = await history(client, world.owner, world.notebook, "?limit=0")
    assert counted["total"] == 7 and counted["items"] == []


async def test_bad_limits_and_markers_are_refused_with_the_field_named(
    client: TestClient, world: World, factory: Factory
) -> None:
    other = factory.notebook(world.owner, world.config, teams=(world.team,))
    for nb in (world.notebook, other):
        factory.event(nb, world.org, "starting", reason="a")
        factory.event(nb, world.org, "starting", reason="b")
    mine = (await history(client, world.owner, world.notebook, "?limit=1"))["marker"]
    others = (await history(client, world.owner, other, "?limit=1"))["marker"]
    editors = (await history(client, world.editor, world.notebook, "?limit=1"))["marker"]
    assert (await history(client, world.owner, world.notebook, f"?limit=1&marker={mine}"))["items"][
        0
    ]["reason"] == "a"
    cases = [
        ("?limit=101", "out_of_range", "limit"),
        ("?limit=-1", "out_of_range", "limit"),
        ("?limit=x", "out_of_range", "limit"),
        ("?marker=garbage", "invalid_marker", "marker"),
        (f"?marker={others}", "invalid_marker", "marker"),  # another notebook's
        (f"?marker={editors}", "invalid_marker", "marker"),  # another member's
    ]
    for asked, code, field in cases:
        resp = await client.get(f"{NB}/{world.notebook}/events{asked}", headers=world.owner.auth)
        problem = await body_of(resp)
        assert resp.status == 400, asked
        assert resp.content_type == "application/problem+json"
        assert (problem["code"], problem["field"]) == (code, field), asked
    resp = await client.get(f"{NB}/not-an-id/events", headers=world.owner.auth)
    assert resp.status == 400 and (await body_of(resp))["field"] == "id"


async def test_edits_shares_and_unshares_are_in_the_history_with_who_made_them(
    client: TestClient, world: World, factory: Factory
) -> None:
    """Who shared a notebook with a team, or changed its timeouts, is as much
    its history as who stopped it (an audit asks "who gave them access?")."""
    url = f"{NB}/{world.notebook}"
    other = factory.team(world.org, "ml")
    big = factory.config(world.org)
    config_name = factory.value("select name from workload_configs where id = %s", world.config)
    big_name = factory.value("select name from workload_configs where id = %s", big)
    edit = {
        "name": "Renamed",
        "description": "new words",
        "idleTimeoutSeconds": 7200,
        "detachedTimeoutSeconds": 0,
        "workloadConfigId": big,
    }
    assert (await client.patch(url, json=edit, headers=world.editor.auth)).status == 200
    # The same values again, and a share with a team it has: no change, no event.
    assert (await client.patch(url, json=edit, headers=world.editor.auth)).status == 200
    share = {"teamIds": [other, world.team]}
    assert (await client.post(f"{url}/teams", json=share, headers=world.owner.auth)).status == 200
    assert (await client.post(f"{url}/teams", json=share, headers=world.owner.auth)).status == 200
    gone = await client.delete(f"{url}/teams/{world.team}", headers=world.team_admin.auth)
    assert gone.status == 204
    assert events_of(factory, world.notebook) == [
        (
            "stopped",
            "stopped",
            "Renamed from “nb " + world.notebook + "”; description edited; idle timeout"
            f" 1 h → 2 h; detached timeout 4 h → never; workload config {config_name} →"
            f" {big_name}",
            world.editor.id,
        ),
        ("stopped", "stopped", "Shared with ml", world.owner.id),
        ("stopped", "stopped", "No longer shared with data", world.team_admin.id),
    ]
    # The status and its message stay as they were.
    row = factory.conn.execute(
        "select status, status_message from notebooks where id = %s", (world.notebook,)
    ).fetchone()
    assert row == ("stopped", "")
    # And the API lists them, with the members who made them.
    body = await body_of(await client.get(f"{url}/events", headers=world.owner.auth))
    assert [e["reason"] for e in body["items"]][0] == "No longer shared with data"
    assert {m["id"] for m in body["included"]["members"]} == {
        world.editor.id,
        world.owner.id,
        world.team_admin.id,
    }

"""Stopping every running notebook at once (`POST /organization/stop-notebooks`,
docs/api.md "Stopping everything"): an org admin stops the organization's
starting, running, idle and detached notebooks, or one member's, each as
its owner's Stop would (desired stopped, `stopping`, a reconcile asked for),
its history saying who asked and why; nothing else is touched."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from api_factories import Factory, World, body_of, refused

V1 = "/api/v1"
URL = V1 + "/organization/stop-notebooks"


def state(factory: Factory, nb: str) -> tuple[str, str]:
    row = factory.conn.execute(
        "select status, desired_state from notebooks where id = %s", (nb,)
    ).fetchone()
    assert row is not None
    return row[0], row[1]


async def test_an_org_admin_stops_everything_running_and_nothing_else(
    client: TestClient, world: World, factory: Factory
) -> None:
    up = {
        status: factory.notebook(world.owner, world.config, status=status)
        for status in ("starting", "running", "idle", "detached")
    }
    editors = factory.notebook(world.editor, world.config, status="running")
    stopped = factory.notebook(world.owner, world.config)
    failed = factory.notebook(world.owner, world.config, status="failed")
    theirs = factory.notebook(world.stranger, factory.config(world.stranger.org), status="running")
    resp = await client.post(URL, json={"reason": "maintenance at 18:00"}, headers=world.admin.auth)
    assert resp.status == 200, await resp.text()
    assert await body_of(resp) == {"stopped": 5}
    for nb in (*up.values(), editors):
        assert state(factory, nb) == ("stopping", "stopped")
        event = factory.conn.execute(
            "select to_status, reason, actor from notebook_events where notebook_id = %s"
            " order by id desc limit 1",
            (nb,),
        ).fetchone()
        assert event == (
            "stopping",
            "Stop requested for all of the organization's running notebooks: maintenance at 18:00",
            world.admin.id,
        )
        assert factory.jobs(nb) == 1
    assert state(factory, stopped) == ("stopped", "stopped")
    assert state(factory, failed) == ("failed", "stopped")
    assert state(factory, theirs) == ("running", "running")
    [entry] = (await body_of(await client.get(V1 + "/audit", headers=world.admin.auth)))["items"]
    assert entry["action"] == "organization.notebooks_stopped"
    assert entry["detail"] == {"fields": ["reason"], "reason": "maintenance at 18:00", "stopped": 5}
    # Again: nothing left to stop.
    again = await client.post(URL, headers=world.admin.auth)
    assert await body_of(again) == {"stopped": 0}


async def test_one_members_notebooks_and_who_may(
    client: TestClient, world: World, factory: Factory
) -> None:
    mine = factory.notebook(world.owner, world.config, status="running")
    other = factory.notebook(world.editor, world.config, status="running")
    resp = await client.post(URL, json={"memberId": world.owner.id}, headers=world.admin.auth)
    assert await body_of(resp) == {"stopped": 1}
    assert state(factory, mine) == ("stopping", "stopped")
    assert state(factory, other) == ("running", "running")
    name = factory.value(
        "select name || ' (' || email || ')' from members where id = %s", world.owner.id
    )
    reason = factory.value(
        "select reason from notebook_events where notebook_id = %s order by id desc limit 1", mine
    )
    assert reason == f"Stop requested for all of {name}'s running notebooks"
    for who in (world.owner, world.team_admin):
        await refused(await client.post(URL, headers=who.auth), 403, "forbidden")
    await refused(
        await client.post(URL, json={"memberId": world.stranger.id}, headers=world.admin.auth),
        400,
        "unknown_reference",
        "memberId",
    )
    await refused(
        await client.post(URL, json={"reason": "x" * 201}, headers=world.admin.auth),
        400,
        "invalid_length",
        "reason",
    )
    assert state(factory, other) == ("running", "running")

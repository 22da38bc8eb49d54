"""The organization's usage (GET /usage): how long its notebooks held servers
in a window, by owner and by notebook, read from their history; for org
admins alone."""

from __future__ import annotations

from datetime import datetime, timedelta

from aiohttp.test_utils import TestClient
from api_factories import Factory, Member, World, body_of, refused

from reconciler.reconcile import DELETED
from sql import query

NB = "/api/v1/workloads/notebooks"
USAGE = "/api/v1/usage"
T0 = datetime.fromisoformat("2026-11-01T12:00:00+00:00")  # the factory clock's start


def instant(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def at(seconds: float) -> str:
    """T0 + seconds, as a query's RFC 3339 time."""
    return instant(seconds).isoformat().replace("+00:00", "Z")


async def usage(client: TestClient, who: Member, query_string: str = "", path: str = USAGE) -> dict:
    resp = await client.get(f"{path}{query_string}", headers=who.auth)
    assert resp.status == 200, await resp.text()
    return await body_of(resp)


def seconds_of(body: dict) -> dict[str, int]:
    return {n["notebookId"]: n["seconds"] for n in body["byNotebook"]}


async def test_a_start_to_stop_counts_every_second_the_servers_were_held(
    client: TestClient, world: World, factory: Factory
) -> None:
    """Through the API and the workers' own statement: starting, running
    and stopping all hold servers; stopped does not."""
    url = f"{NB}/{world.notebook}"
    assert (await client.post(f"{url}/start", headers=world.owner.auth)).status == 202
    factory.clock.advance(10)
    factory.reconciler_sets(world.notebook, "running", "Sail and Marimo are ready")
    factory.clock.advance(3600)
    assert (await client.post(f"{url}/stop", headers=world.owner.auth)).status == 202
    factory.clock.advance(5)
    factory.reconciler_sets(world.notebook, "stopped", "Sail and Marimo stopped")
    factory.clock.advance(1000)  # stopped: not counted

    body = await usage(client, world.admin)
    assert body["from"] == "2026-11-01T00:00:00+00:00"  # this month, by default
    assert body["to"] == factory.clock.now().isoformat()  # now
    assert body["seconds"] == 3615 and body["notebooks"] == 1
    assert body["byMember"] == [{"memberId": world.owner.id, "seconds": 3615, "notebooks": 1}]
    assert body["byNotebook"] == [
        {
            "notebookId": world.notebook,
            "name": f"nb {world.notebook}",
            "memberId": world.owner.id,
            "deleted": False,
            "seconds": 3615,
        }
    ]
    assert [m["id"] for m in body["included"]["members"]] == [world.owner.id]


async def test_the_window_cuts_what_runs_across_its_edges(
    client: TestClient, world: World, factory: Factory
) -> None:
    running_before = world.notebook  # running since before the window, no event in it
    factory.event(running_before, world.org, "running", at=instant(-7200))
    crossing = factory.notebook(world.outsider, world.config)
    factory.event(crossing, world.org, "starting", at=instant(100))
    factory.event(crossing, world.org, "running", at=instant(110))
    factory.event(crossing, world.org, "stopped", at=instant(5000))
    factory.clock.advance(10_000)

    # [T0 + 1000, T0 + 4000): the first runs through it, the second too.
    body = await usage(client, world.admin, f"?from={at(1000)}&to={at(4000)}")
    assert seconds_of(body) == {running_before: 3000, crossing: 3000}
    # [T0, T0 + 200): the second started inside it.
    body = await usage(client, world.admin, f"?from={at(0)}&to={at(200)}")
    assert seconds_of(body) == {running_before: 200, crossing: 100}
    # Up to now (a `to` in the future stops at now): the first still runs.
    body = await usage(client, world.admin, f"?from={at(0)}&to={at(99_999)}")
    assert body["to"] == at(10_000).replace("Z", "+00:00")
    assert seconds_of(body) == {running_before: 10_000, crossing: 4900}
    by_member = {m["memberId"]: m["seconds"] for m in body["byMember"]}
    assert by_member == {world.owner.id: 10_000, world.outsider.id: 4900}
    assert [m["memberId"] for m in body["byMember"]] == [world.owner.id, world.outsider.id]
    # `to` alone: the month it falls in (October's end: October, before it ran).
    october = await usage(client, world.admin, "?to=2026-11-01T00:00:00Z")
    assert october["from"] == "2026-10-01T00:00:00+00:00" and october["byNotebook"] == []
    morning = await usage(client, world.admin, "?to=2026-11-01T11:00:00Z")
    assert morning["from"] == "2026-11-01T00:00:00+00:00"
    assert seconds_of(morning) == {running_before: 3600}
    # Less than half a second is not a notebook that ran.
    blink = factory.notebook(world.outsider, world.config)
    factory.event(blink, world.org, "starting", at=instant(8000.2))
    factory.event(blink, world.org, "failed", at=instant(8000.6))
    body = await usage(client, world.admin, f"?from={at(0)}")
    assert blink not in seconds_of(body) and body["notebooks"] == 2


async def test_a_notebook_deleted_for_good_counts_until_it_was_gone(
    client: TestClient, world: World, factory: Factory
) -> None:
    factory.event(world.notebook, world.org, "running", at=instant(0))
    factory.clock.advance(600)
    url = f"{NB}/{world.notebook}"
    assert (await client.delete(url, headers=world.owner.auth)).status == 204  # stopping
    factory.clock.advance(60)
    factory.conn.execute(
        query("reconciler_delete_notebook"),
        {"id": world.notebook, "reason": DELETED, "now": factory.clock.now(), "trash_days": 30},
    )
    factory.clock.advance(5000)

    body = await usage(client, world.admin)
    assert body["byNotebook"] == [
        {
            "notebookId": world.notebook,
            "name": f"nb {world.notebook}",
            "memberId": world.owner.id,  # whose it was when it went
            "deleted": True,
            "seconds": 660,
        }
    ]
    assert body["byMember"] == [{"memberId": world.owner.id, "seconds": 660, "notebooks": 1}]


async def test_a_past_window_keeps_a_notebook_deleted_after_it(
    client: TestClient, world: World, factory: Factory
) -> None:
    """Running through a window it has no event in, then deleted for good
    after it: the window still counts it, for its owner (a review: the
    month's figures shrank as notebooks were deleted later)."""
    factory.event(world.notebook, world.org, "running", at=instant(0))
    factory.clock.advance(20_000)
    url = f"{NB}/{world.notebook}"
    assert (await client.delete(url, headers=world.owner.auth)).status == 204
    factory.conn.execute(
        query("reconciler_delete_notebook"),
        {"id": world.notebook, "reason": DELETED, "now": factory.clock.now(), "trash_days": 30},
    )
    factory.clock.advance(100)
    for begins, ends in ((1000, 2000), (19_000, 19_500)):
        body = await usage(client, world.admin, f"?from={at(begins)}&to={at(ends)}")
        assert body["byMember"] == [
            {"memberId": world.owner.id, "seconds": ends - begins, "notebooks": 1}
        ], (begins, ends)
    # Until it went, and not a second after.
    assert seconds_of(await usage(client, world.admin, f"?from={at(0)}")) == {
        world.notebook: 20_000
    }


async def test_a_row_gone_before_deletions_were_recorded_stops_at_its_last_event(
    client: TestClient, world: World, factory: Factory
) -> None:
    """Deleted for good before the last event was written (migration 0014):
    its history ends `stopping`, and counts up to that event, not forever."""
    factory.event(world.notebook, world.org, "running", at=instant(0))
    factory.event(world.notebook, world.org, "stopping", at=instant(300))
    factory.conn.execute("delete from notebooks where id = %s", (world.notebook,))
    factory.clock.advance(5000)
    assert seconds_of(await usage(client, world.admin)) == {world.notebook: 300}


async def test_only_this_organizations_notebooks_and_only_for_org_admins(
    client: TestClient, world: World, factory: Factory
) -> None:
    stranger_config = factory.config(world.stranger.org)
    theirs = factory.notebook(world.stranger, stranger_config)
    factory.event(theirs, world.stranger.org, "running", at=instant(0))
    factory.event(world.notebook, world.org, "running", at=instant(0))
    factory.clock.advance(100)
    assert seconds_of(await usage(client, world.admin)) == {world.notebook: 100}
    assert seconds_of(await usage(client, world.stranger)) == {theirs: 100}
    for who in (world.owner, world.team_admin, world.editor, world.viewer, world.outsider):
        await refused(await client.get(USAGE, headers=who.auth), 403, "forbidden")
    assert (await client.get(USAGE)).status == 401


async def test_a_bad_window_is_refused(client: TestClient, world: World) -> None:
    for query_string, field in (
        ("?from=yesterday", "from"),
        ("?from=2026-11-01T00:00:00", "from"),  # no offset: whose midnight?
        ("?from=2026-11-01", "from"),
        ("?from=2026-11-01 00:00:00Z", "from"),  # what fromisoformat takes, RFC 3339 not
        ("?from=2026-W44-1T00:00:00Z", "from"),
        ("?from=20261101T000000Z", "from"),
        ("?from=2026-11-01T00:00:00%2B05:30:15", "from"),
        ("?to=2026-13-01T00:00:00Z", "to"),
        ("?to=0001-01-01T00:00:00Z", "to"),  # overflowed the month's arithmetic
        ("?to=9999-12-31T23:00:00-05:00", "to"),
        ("?from=2026-11-01T12:00:00Z&to=2026-11-01T12:00:00Z", "from"),
        ("?from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", "from"),
        ("?from=2026-11-01T12:00:01Z&to=2026-11-03T00:00:00Z", "from"),  # after now
        ("?from=2025-01-01T00:00:00Z&to=2026-11-01T00:00:00Z", "to"),
    ):
        resp = await client.get(f"{USAGE}{query_string}", headers=world.admin.auth)
        await refused(resp, 400, "validation_failed", field)
    resp = await client.get(f"{USAGE}?month=11", headers=world.admin.auth)
    await refused(resp, 400, "unknown_parameter", "month")


async def test_any_rfc_3339_offset_is_taken(client: TestClient, world: World) -> None:
    """Sent to PostgreSQL as UTC: an offset it would refuse (+20:00) and a
    lower-case z are fine; `to` past now, with a `from` 300 days back, is a
    window of 300 days, not of 400."""
    for query_string in (
        "?from=2026-11-01T20:00:00%2B20:00",
        "?from=2026-11-01t00:00:00z",
        "?from=2026-01-05T00:00:00Z&to=2027-02-10T00:00:00Z",
    ):
        body = await usage(client, world.admin, query_string)
        assert body["to"] == "2026-11-01T12:00:00+00:00", query_string
    body = await usage(client, world.admin, "?from=2026-11-01T20:00:00%2B20:00")
    assert body["from"] == "2026-11-01T00:00:00+00:00"


async def test_a_notebook_unchanged_since_before_the_window_counts_as_it_is(
    client: TestClient, world: World, factory: Factory
) -> None:
    """Its status has not changed since before the window (status_changed_at):
    its status now is its status then, read without its history (most of a
    large organization's notebooks). Running: the whole window; stopped: none."""
    stopped_early = factory.notebook(world.outsider, world.config)
    factory.reconciler_sets(world.notebook, "running", "Sail and Marimo are ready")
    factory.reconciler_sets(stopped_early, "running", "Sail and Marimo are ready")
    factory.clock.advance(500)
    factory.reconciler_sets(stopped_early, "stopped", "Sail and Marimo stopped")
    factory.clock.advance(4500)
    body = await usage(client, world.admin, f"?from={at(1000)}&to={at(2000)}")
    assert seconds_of(body) == {world.notebook: 1000}
    body = await usage(client, world.admin, f"?from={at(0)}")
    assert seconds_of(body) == {world.notebook: 5000, stopped_early: 500}


MY_USAGE = "/api/v1/me/usage"


async def my_usage(client: TestClient, who: Member, query_string: str = "") -> dict:
    return await usage(client, who, query_string, path=MY_USAGE)


async def test_a_member_reads_their_own_notebooks_usage_as_the_report_says_it(
    client: TestClient, world: World, factory: Factory
) -> None:
    """GET /me/usage: any member; only the notebooks they own now (a deleted
    one they owned when it went too), exactly as the organization's report
    says of them; a window as there."""
    mine_running = factory.notebook(world.outsider, world.config)
    mine_deleted = factory.notebook(world.outsider, world.config)
    factory.event(mine_running, world.org, "running", at=instant(0))
    factory.event(mine_deleted, world.org, "running", at=instant(0))
    factory.event(world.notebook, world.org, "running", at=instant(0))  # the owner's
    factory.clock.advance(1000)
    resp = await client.delete(f"{NB}/{mine_deleted}", headers=world.outsider.auth)
    assert resp.status == 204
    factory.conn.execute(
        query("reconciler_delete_notebook"),
        {"id": mine_deleted, "reason": DELETED, "now": factory.clock.now(), "trash_days": 30},
    )
    factory.clock.advance(500)

    mine = await my_usage(client, world.outsider)
    assert seconds_of(mine) == {mine_running: 1500, mine_deleted: 1000}
    assert mine["byMember"] == [{"memberId": world.outsider.id, "seconds": 2500, "notebooks": 2}]
    assert [m["id"] for m in mine["included"]["members"]] == [world.outsider.id]
    report = await usage(client, world.admin)
    theirs = next(m for m in report["byMember"] if m["memberId"] == world.outsider.id)
    assert theirs == mine["byMember"][0]
    # A window, as the report takes it; one with nothing of theirs.
    assert seconds_of(await my_usage(client, world.outsider, f"?from={at(100)}&to={at(200)}")) == {
        mine_running: 100,
        mine_deleted: 100,
    }
    none = await my_usage(client, world.viewer)
    assert (none["seconds"], none["byMember"], none["byNotebook"]) == (0, [], [])
    await refused(
        await client.get(f"{MY_USAGE}?from=yesterday", headers=world.viewer.auth),
        400,
        "validation_failed",
        "from",
    )
    assert (await client.get(MY_USAGE)).status == 401


async def test_a_notebook_handed_on_counts_for_its_new_owner_in_theirs(
    client: TestClient, world: World, factory: Factory
) -> None:
    factory.event(world.notebook, world.org, "running", at=instant(0))
    factory.clock.advance(300)
    resp = await client.patch(
        f"{NB}/{world.notebook}", json={"memberId": world.outsider.id}, headers=world.admin.auth
    )
    assert resp.status == 200, await resp.text()
    assert seconds_of(await my_usage(client, world.outsider)) == {world.notebook: 300}
    assert seconds_of(await my_usage(client, world.owner)) == {}


async def test_a_notebook_being_deleted_counts_alike_in_both(
    client: TestClient, world: World, factory: Factory
) -> None:
    """Running since before the window, then deleted (stopping, stopped) while
    its row waits for the workers to remove it: the member's own usage says
    what the organization's does, in the window and past it."""
    factory.event(world.notebook, world.org, "running", at=instant(-3600))
    factory.clock.advance(600)
    assert (await client.delete(f"{NB}/{world.notebook}", headers=world.owner.auth)).status == 204
    factory.clock.advance(30)
    factory.reconciler_sets(world.notebook, "stopped", "Sail and Marimo stopped")
    factory.clock.advance(1000)  # the row is still there, marked deleted
    for window in ("", f"?from={at(0)}&to={at(300)}"):
        report = await usage(client, world.admin, window)
        mine = await my_usage(client, world.owner, window)
        assert mine["byNotebook"] == report["byNotebook"] != [], window
        assert mine["byMember"] == report["byMember"], window
    assert seconds_of(await my_usage(client, world.owner)) == {world.notebook: 3600 + 630}

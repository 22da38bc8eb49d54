"""The organization's usage by whole day (migration 0026, common/usage_days.py,
docs/api.md "Usage"): a window's settled whole days come from their roll-up,
its partial edges from the history, and the answer is the one the history
alone gives (api_org_usage, the statement a window without whole days still
uses); a day rolled up is read from the history no more."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import psycopg
import pytest
from aiohttp.test_utils import TestClient
from api_factories import Factory, World
from test_api_usage import at, instant, usage

from api.usage import HELD, TOP_NOTEBOOKS
from common import usage_days
from common.settings import Settings
from reconciler.reconcile import DELETED
from sql import query

DAY = 86_400


def from_history(factory: Factory, world: World, start: datetime, until: datetime) -> dict:
    """The answer api_org_usage gives, reading the history alone."""
    row = factory.conn.execute(
        query("api_org_usage"),
        {
            "org_id": world.org,
            "member_id": world.admin.id,
            "now": factory.clock.now(),
            "from": start,
            "until": until,
            "top": TOP_NOTEBOOKS,
            "held": HELD,
        },
    ).fetchone()
    assert row is not None
    return {
        "seconds": round(row[0]),
        "notebooks": row[1],
        "byMember": json.loads(row[2]),
        "byNotebook": json.loads(row[3]),
        "included": {"members": json.loads(row[4])},
    }


def history_of_four_days(factory: Factory, world: World) -> list[str]:
    """Notebooks running across midnights, inside a day, from before the
    window, idle, and one deleted for good: T0 is 2026-11-01T12:00Z."""
    across = world.notebook
    factory.event(across, world.org, "running", at=instant(-2 * DAY))  # from before
    factory.event(across, world.org, "idle", at=instant(DAY + 3600))
    factory.event(across, world.org, "stopped", at=instant(2 * DAY + 7200))
    inside = factory.notebook(world.outsider, world.config)
    for status, seconds in (("starting", 1.5 * DAY), ("running", 1.5 * DAY + 60)):
        factory.event(inside, world.org, status, at=instant(seconds))
    factory.event(inside, world.org, "stopped", at=instant(1.5 * DAY + 4000))
    blink = factory.notebook(world.editor, world.config)
    factory.event(blink, world.org, "starting", at=instant(0.7 * DAY))
    factory.event(blink, world.org, "failed", at=instant(0.7 * DAY + 0.2))
    gone = factory.notebook(world.editor, world.config)
    factory.event(gone, world.org, "running", at=instant(0.4 * DAY))
    # Made before their history (the factory makes them now, at T0, and the
    # organization at the database's now).
    factory.conn.execute("update notebooks set created_at = %s", (instant(-5 * DAY),))
    factory.conn.execute("update organizations set created_at = %s", (instant(-10 * DAY),))
    factory.conn.execute(
        "update notebooks set desired_state = 'deleted', status = 'stopping' where id = %s",
        (gone,),
    )
    factory.conn.execute(
        query("reconciler_delete_notebook"),
        {"id": gone, "reason": DELETED, "now": instant(1.2 * DAY), "trash_days": 0},
    )
    # Each row as its last event left it, as set_status keeps it (a report
    # takes a row unchanged since a window opened at its word).
    factory.conn.execute(
        "update notebooks n set status = e.to_status, status_changed_at = e.created_at"
        "  from (select distinct on (notebook_id) notebook_id, to_status, created_at"
        "          from notebook_events order by notebook_id, created_at desc, id desc) e"
        " where e.notebook_id = n.id"
    )
    return [across, inside, blink, gone]


async def roll_up_all_but_the_last(settings: Settings, world: World, factory: Factory) -> None:
    """As the housekeeping would have, every settled day of the history but
    the last (which the report rolls up itself)."""
    end = (factory.clock.now() - usage_days.SETTLE).date() - timedelta(days=1)
    async with await psycopg.AsyncConnection.connect(
        settings.database_url, autocommit=True
    ) as conn:
        await usage_days.roll_up_missing(
            conn, world.org, instant(-4 * DAY).date(), end, factory.clock.now()
        )


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (-1.25 * DAY, 2.6 * DAY),  # partial edges both sides, three whole days between
        (-0.5 * DAY, 1.5 * DAY),  # from midnight (T0 is noon) to noon: whole days from its start
        (0.1 * DAY, 1.0 * DAY),  # no whole day: the history alone
        (-3 * DAY, 4 * DAY),  # up to now: today is not settled, nor the last hour's day
    ],
)
async def test_the_answer_is_the_historys_whatever_the_window(
    client: TestClient,
    world: World,
    factory: Factory,
    settings: Settings,
    start: float,
    end: float,
) -> None:
    history_of_four_days(factory, world)
    factory.clock.advance(3.5 * DAY)
    await roll_up_all_but_the_last(settings, world, factory)
    body = await usage(client, world.admin, f"?from={at(start)}&to={at(end)}")
    until = min(instant(end), factory.clock.now())
    expected = from_history(factory, world, instant(start), until)
    assert {k: body[k] for k in expected} == expected
    assert body["seconds"] > 0
    # Read from the roll-up wherever the window has a settled whole day.
    rolled = factory.value("select count(*) from usage_days_settled")
    span = usage_days.rolled_span(instant(start), until, factory.clock.now())
    assert rolled > 0 and (span is None or rolled >= (span[1] - span[0]).days)


async def test_a_settled_day_is_rolled_up_once_and_read_from_there(
    client: TestClient, world: World, factory: Factory
) -> None:
    notebooks = history_of_four_days(factory, world)
    factory.clock.advance(2.5 * DAY)  # 2026-11-04T00:00Z
    window = f"?from={at(0.5 * DAY)}&to={at(2.5 * DAY)}"  # Nov 2 and 3, whole days
    first = await usage(client, world.admin, window)
    days = factory.conn.execute(
        "select day from usage_days_settled where organization_id = %s order by day", (world.org,)
    ).fetchall()
    # Nov 3 ended at the window's end, less than an hour ago: not settled yet.
    assert [d[0] for d in days] == [date(2026, 11, 2)]
    factory.clock.advance(3600)
    first = await usage(client, world.admin, window)
    days = factory.conn.execute(
        "select day from usage_days_settled where organization_id = %s order by day", (world.org,)
    ).fetchall()
    assert [d[0] for d in days] == [date(2026, 11, 2), date(2026, 11, 3)]
    # The history of a settled day is not read again (it would say more now).
    factory.event(notebooks[2], world.org, "running", at=instant(0.8 * DAY))
    again = await usage(client, world.admin, window)
    assert again["byNotebook"] == first["byNotebook"]
    # Other organizations' days are their own.
    assert factory.value("select count(distinct organization_id) from usage_days_settled") == 1


def test_the_whole_settled_days_of_a_window() -> None:
    noon = datetime.fromisoformat("2026-11-01T12:00:00+00:00")
    span = usage_days.rolled_span
    later = noon + timedelta(days=10)
    assert span(noon, noon + timedelta(days=3), later) == (date(2026, 11, 2), date(2026, 11, 4))
    midnight = usage_days.midnight(date(2026, 11, 1))
    assert span(midnight, midnight + timedelta(days=1), later) == (
        date(2026, 11, 1),
        date(2026, 11, 2),
    )
    assert span(noon, noon + timedelta(hours=20), later) is None  # no whole day
    # A day ended less than SETTLE ago is read from the history still.
    just = usage_days.midnight(date(2026, 11, 3)) + timedelta(minutes=30)
    assert span(midnight, just, just) == (date(2026, 11, 1), date(2026, 11, 2))
    settled = just + usage_days.SETTLE
    assert span(midnight, just, settled) == (date(2026, 11, 1), date(2026, 11, 3))


async def test_a_report_with_many_days_missing_reads_the_history_alone(
    client: TestClient, world: World, factory: Factory
) -> None:
    """More than IN_REPORT_DAYS not rolled up yet (a fresh install's
    year): not within a request (a large organization's day costs about a
    second), the history read as before, while the housekeeping catches up."""
    history_of_four_days(factory, world)
    factory.clock.advance(60 * DAY)
    start, end = -3 * DAY, 50 * DAY  # 52 whole days, none rolled up
    body = await usage(client, world.admin, f"?from={at(start)}&to={at(end)}")
    expected = from_history(factory, world, instant(start), instant(end))
    assert {k: body[k] for k in expected} == expected
    assert factory.value("select count(*) from usage_days_settled") == 0


async def test_a_notebook_handed_on_after_its_days_are_rolled_up_counts_for_its_new_owner(
    client: TestClient, world: World, factory: Factory, settings: Settings
) -> None:
    """Days are kept by notebook, not owner: a report names owners as they
    are now, as the history's does."""
    notebooks = history_of_four_days(factory, world)
    factory.clock.advance(3.5 * DAY)
    await roll_up_all_but_the_last(settings, world, factory)
    window = f"?from={at(-0.5 * DAY)}&to={at(2.5 * DAY)}"
    factory.conn.execute(
        "update notebooks set member_id = %s where id = %s", (world.admin.id, notebooks[1])
    )
    body = await usage(client, world.admin, window)
    owners = {n["notebookId"]: n["memberId"] for n in body["byNotebook"]}
    assert owners[notebooks[1]] == world.admin.id
    expected = from_history(factory, world, instant(-0.5 * DAY), instant(2.5 * DAY))
    assert {k: body[k] for k in expected} == expected


async def test_no_day_before_deletions_left_tombstones_is_rolled_up(
    client: TestClient, world: World, factory: Factory
) -> None:
    """On a database that ran before migration 0015, a notebook deleted
    then has no tombstone and counts from its first event in a window to its
    last: such days are read from the history whole, never cut at midnight."""
    history_of_four_days(factory, world)
    factory.clock.advance(3.5 * DAY)
    applied = factory.conn.execute(
        "select version, applied_at from schema_migrations where version in (1, 15)"
    ).fetchall()
    try:
        for version, when in ((1, -30 * DAY), (15, 0.5 * DAY)):  # 0015 on Nov 2, 00:00
            factory.conn.execute(
                "update schema_migrations set applied_at = %s where version = %s",
                (instant(when), version),
            )
        window = f"?from={at(-0.5 * DAY)}&to={at(2.5 * DAY)}"  # Nov 1 to Nov 3
        body = await usage(client, world.admin, window)
        days = factory.conn.execute("select day from usage_days_settled").fetchall()
        assert [d[0] for d in days] == [date(2026, 11, 3)]
        expected = from_history(factory, world, instant(-0.5 * DAY), instant(2.5 * DAY))
        assert {k: body[k] for k in expected} == expected
    finally:
        for version, when in applied:
            factory.conn.execute(
                "update schema_migrations set applied_at = %s where version = %s", (when, version)
            )

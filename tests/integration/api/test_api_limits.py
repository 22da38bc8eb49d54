"""Running limits: NOTEBOOKS_MAX_RUNNING_PER_MEMBER (counted against the
notebook's owner) and NOTEBOOKS_MAX_RUNNING_PER_ORG. A start past either is a
409 running_limit_reached that writes and enqueues nothing; racing starts for
the last slot cannot both win; a stop frees the slot; 0 is no limit."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from aiohttp.test_utils import TestClient, TestServer
from api_factories import Factory, Member, World, body_of, until_waiting_on_locks

from api.app import create_app
from common.clock import FakeClock
from common.settings import Settings
from sql import query

NB = "/api/v1/workloads/notebooks"


@contextlib.asynccontextmanager
async def limited(
    settings: Settings, clock: FakeClock, *, member: int = 0, org: int = 0
) -> AsyncIterator[TestClient]:
    """An app whose starts are limited as given."""
    limits = dataclasses.replace(settings, max_running_per_member=member, max_running_per_org=org)
    async with TestClient(TestServer(create_app(limits, clock=clock))) as client:
        yield client


async def start(client: TestClient, nb: str, who: Member) -> Any:
    return await client.post(f"{NB}/{nb}/start", headers=who.auth)


async def refused(resp: Any, detail: str) -> None:
    assert resp.status == 409, await resp.text()
    assert resp.content_type == "application/problem+json"
    body = await body_of(resp)
    assert (body["code"], body["detail"]) == ("running_limit_reached", detail), body


def untouched(factory: Factory, nb: str) -> None:
    """A refused start wrote nothing and enqueued nothing."""
    row = factory.conn.execute(
        "select status, desired_state, generation, session_id from notebooks where id = %s",
        (nb,),
    ).fetchone()
    assert row == ("stopped", "stopped", 1, None)
    assert factory.value("select count(*) from notebook_events where notebook_id = %s", nb) == 0
    assert factory.jobs(nb) == 0


async def test_per_member_limit_refuses_the_next_start_and_writes_nothing(
    settings: Settings, clock: FakeClock, world: World, factory: Factory
) -> None:
    factory.notebook(world.owner, world.config, status="running")
    factory.notebook(world.owner, world.config, status="idle")
    async with limited(settings, clock, member=2) as client:
        resp = await start(client, world.notebook, world.owner)
        await refused(resp, "You may run at most 2 notebooks at once; stop one first.")
        untouched(factory, world.notebook)
        # Another member of the organization has slots of their own.
        theirs = factory.notebook(world.outsider, world.config)
        assert (await start(client, theirs, world.outsider)).status == 202
        assert factory.jobs(theirs) == 1


async def test_a_start_counts_against_the_owner_not_whoever_presses_it(
    settings: Settings, clock: FakeClock, world: World, factory: Factory
) -> None:
    async with limited(settings, clock, member=1) as client:
        # The editor and the org admin each run one of their own: no matter.
        for m in (world.editor, world.admin):
            assert (await start(client, factory.notebook(m, world.config), m)).status == 202
        assert (await start(client, world.notebook, world.editor)).status == 202
        # Now the owner is at the limit, for anyone starting the owner's notebooks.
        other = factory.notebook(world.owner, world.config, teams=(world.team,))
        detail = "This notebook's owner may run at most 1 notebook at once; stop one first."
        for m in (world.editor, world.admin):
            await refused(await start(client, other, m), detail)
        untouched(factory, other)


async def test_per_org_limit_spans_members_and_leaves_other_orgs_alone(
    settings: Settings, clock: FakeClock, world: World, factory: Factory
) -> None:
    factory.notebook(world.editor, world.config, status="starting")
    factory.notebook(world.viewer, world.config, status="detached")
    async with limited(settings, clock, org=2) as client:
        resp = await start(client, world.notebook, world.owner)
        await refused(
            resp, "Your organization may run at most 2 notebooks at once; stop one first."
        )
        untouched(factory, world.notebook)
        # Another organization's notebooks count only against it.
        other_config = factory.config(world.stranger.org)
        for _ in range(2):
            theirs = factory.notebook(world.stranger, other_config)
            assert (await start(client, theirs, world.stranger)).status == 202
        resp = await start(client, factory.notebook(world.stranger, other_config), world.stranger)
        await refused(
            resp, "Your organization may run at most 2 notebooks at once; stop one first."
        )


async def test_zero_means_no_limit(
    client: TestClient, settings: Settings, world: World, factory: Factory
) -> None:
    assert (settings.max_running_per_member, settings.max_running_per_org) == (0, 0)
    for _ in range(5):
        factory.notebook(world.owner, world.config, status="running")
    assert (await start(client, world.notebook, world.owner)).status == 202


async def test_failed_stopping_and_deleted_notebooks_hold_no_slot(
    settings: Settings, clock: FakeClock, world: World, factory: Factory
) -> None:
    # A failed start keeps desired state running (the reconciler leaves it
    # failed until the next start): its status, not only that, decides.
    failed = factory.notebook(world.owner, world.config, status="failed")
    factory.conn.execute("update notebooks set desired_state = 'running' where id = %s", (failed,))
    stopping = factory.notebook(world.owner, world.config, status="stopping")
    factory.conn.execute(
        "update notebooks set desired_state = 'stopped' where id = %s", (stopping,)
    )
    deleted = factory.notebook(world.owner, world.config, status="running")
    factory.conn.execute(
        "update notebooks set desired_state = 'deleted', deleted_at = now() where id = %s",
        (deleted,),
    )
    async with limited(settings, clock, member=1, org=1) as client:
        assert (await start(client, world.notebook, world.owner)).status == 202
        # And the failed one, started again, needs a free slot like any other.
        resp = await start(client, failed, world.owner)
        await refused(resp, "You may run at most 1 notebook at once; stop one first.")


async def test_starting_a_running_notebook_is_still_not_startable(
    settings: Settings, clock: FakeClock, world: World, factory: Factory
) -> None:
    running = factory.notebook(world.owner, world.config, status="running")
    async with limited(settings, clock, member=1, org=1) as client:
        resp = await start(client, running, world.owner)
        assert resp.status == 409
        assert (await body_of(resp))["code"] == "notebook_not_startable"


async def test_a_stop_a_delete_or_an_auto_stop_frees_the_slot(
    settings: Settings, clock: FakeClock, world: World, factory: Factory
) -> None:
    first, second, third, fourth = (factory.notebook(world.owner, world.config) for _ in range(4))
    detail = "You may run at most 1 notebook at once; stop one first."
    async with limited(settings, clock, member=1) as client:
        assert (await start(client, first, world.owner)).status == 202
        await refused(await start(client, second, world.owner), detail)
        stop = await client.post(f"{NB}/{first}/stop", headers=world.owner.auth)
        assert stop.status == 202
        assert (await start(client, second, world.owner)).status == 202
        await refused(await start(client, third, world.owner), detail)
        delete = await client.delete(f"{NB}/{second}", headers=world.owner.auth)
        assert delete.status == 204
        assert (await start(client, third, world.owner)).status == 202
        # The reconciler's auto-stop (idle timeout): desired stopped, then stopping.
        with factory.conn.transaction():
            generation, last_active, idle, detached = factory.conn.execute(
                "select generation, last_active_at, idle_timeout_seconds,"
                " detached_timeout_seconds from notebooks where id = %s",
                (third,),
            ).fetchone()  # type: ignore[misc]
            factory.conn.execute(
                query("reconciler_auto_stop"),  # type: ignore[arg-type]
                {
                    "id": third,
                    "generation": generation,
                    "now": clock.now(),
                    "last_active_at": last_active,
                    "idle_timeout_seconds": idle,
                    "detached_timeout_seconds": detached,
                    "idle_timeout_cap": 0,  # the organization sets none here
                    "detached_timeout_cap": 0,
                },
            )
            factory.conn.execute(
                query("set_status"),  # type: ignore[arg-type]
                {
                    "id": third,
                    "status": "stopping",
                    "status_message": "idle timeout",
                    "reason": None,
                    "actor": "reconciler",
                    "now": clock.now(),
                    "record_unchanged": False,
                },
            )
        assert (await start(client, fourth, world.owner)).status == 202


async def test_two_starts_racing_for_the_last_slot_do_not_both_win(
    settings: Settings, clock: FakeClock, world: World, factory: Factory
) -> None:
    """Both starts are in flight at once (each holding its own notebook's row)
    while another transaction holds the owner's row; once it lets go, the
    starts take the owner's row one after the other and the second counts
    the first: one 202, one 409."""
    one, two = (
        factory.notebook(world.owner, world.config),
        factory.notebook(world.owner, world.config),
    )
    async with limited(settings, clock, member=1) as client:
        connect = psycopg.AsyncConnection.connect(settings.database_url)
        async with await connect as holder, holder.transaction():
            # The lock a start takes (foreign-key checks, key share, pass it).
            await holder.execute(
                "select id from members where id = %s for no key update", (world.owner.id,)
            )
            racing = asyncio.gather(
                start(client, one, world.owner), start(client, two, world.owner)
            )
            await until_waiting_on_locks(
                factory, 2, racing, "the starts did not wait for the owner's row"
            )
        responses = await racing
    assert sorted(r.status for r in responses) == [202, 409]
    assert factory.jobs(one) + factory.jobs(two) == 1
    assert factory.value("select count(*) from notebooks where status = 'starting'") == 1


async def test_concurrent_starts_across_an_org_at_limit_one_exactly_one_wins(
    settings: Settings, clock: FakeClock, world: World, factory: Factory
) -> None:
    members = [factory.member(world.org) for _ in range(8)]
    notebooks = [factory.notebook(m, world.config) for m in members]
    async with limited(settings, clock, org=1) as client:
        responses = await asyncio.gather(
            *(start(client, nb, m) for nb, m in zip(notebooks, members, strict=True))
        )
        statuses = sorted(r.status for r in responses)
        assert statuses == [202] + [409] * 7
        codes = {(await body_of(r))["code"] for r in responses if r.status == 409}
        assert codes == {"running_limit_reached"}
    assert sum(factory.jobs(nb) for nb in notebooks) == 1
    assert factory.value("select count(*) from notebooks where status = 'starting'") == 1

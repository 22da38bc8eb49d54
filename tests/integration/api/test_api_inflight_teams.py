"""Writes in flight when their caller loses a team role (test_api_inflight.py
has the same for a disabled member or a revoked token). A change made with
a team role holds the membership that gives it locked until it commits:
removing the member from the team, demoting them or unsharing the notebook
answers only once that change has committed, and no change made with the
old role commits after it.

Each write is held mid-transaction by another transaction, after its role
was checked: a membership upsert at its foreign key to the target member,
a start at its job insert (a queued job with the same dedupe key, not yet
committed)."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient
from api_factories import Factory, World, body_of, held, until_waiting_on_locks, write_then_removal

from common.jobs import reconcile_dedupe_key
from common.settings import Settings

V1 = "/api/v1"


async def test_removing_a_team_admin_waits_for_their_membership_change_in_flight(
    client: TestClient, world: World, factory: Factory, settings: Settings
) -> None:
    team = factory.team(world.org)
    lead = factory.member(world.org)
    factory.join(team, lead, "admin")
    newcomer = factory.member(world.org)
    url = f"{V1}/teams/{team}/members"
    grant, removal = await write_then_removal(
        factory,
        settings,
        ("select 1 from members where id = %s for update", newcomer.id),
        lambda: client.put(f"{url}/{newcomer.id}", json={"role": "admin"}, headers=lead.auth),
        lambda: client.delete(f"{url}/{lead.id}", headers=world.admin.auth),
    )
    assert grant.status == 200 and removal.status == 204
    # Afterwards the former admin changes nothing.
    late = await client.put(f"{url}/{newcomer.id}", json={"role": "viewer"}, headers=lead.auth)
    assert late.status == 403, await body_of(late)


async def test_two_team_admins_removing_each_other_do_not_deadlock(
    client: TestClient, world: World, factory: Factory, settings: Settings
) -> None:
    team = factory.team(world.org)
    first, second = factory.member(world.org), factory.member(world.org)
    factory.join(team, first, "admin")
    factory.join(team, second, "admin")
    url = f"{V1}/teams/{team}/members"
    async with held(
        settings,
        "select 1 from team_memberships where team_id = %s for share",
        team,
    ):
        removals = [
            asyncio.ensure_future(client.delete(f"{url}/{b.id}", headers=a.auth))
            for a, b in ((first, second), (second, first))
        ]
        await until_waiting_on_locks(factory, 2, asyncio.gather(*removals), "none waited")
    answers = sorted([(await r).status for r in removals])
    assert answers == [204, 403], answers  # one went first; the other was no admin by then


async def test_removing_a_team_editor_waits_for_their_start_in_flight(
    client: TestClient, world: World, factory: Factory, settings: Settings
) -> None:
    team = factory.team(world.org)
    editor = factory.member(world.org)
    factory.join(team, editor, "editor")
    notebook = factory.notebook(world.owner, world.config, teams=(team,))
    job = (
        "insert into pgqueuer (priority, entrypoint, payload, status, execute_after, dedupe_key)"
        " values (0, 'reconcile', ''::bytea, 'queued', now(), %s)"
    )
    start, removal = await write_then_removal(
        factory,
        settings,
        (job, reconcile_dedupe_key(notebook)),
        lambda: client.post(f"{V1}/workloads/notebooks/{notebook}/start", headers=editor.auth),
        lambda: client.delete(f"{V1}/teams/{team}/members/{editor.id}", headers=world.admin.auth),
    )
    assert start.status == 202 and removal.status == 204
    late = await client.post(f"{V1}/workloads/notebooks/{notebook}/stop", headers=editor.auth)
    assert late.status == 404, await body_of(late)  # no longer shared with them at all

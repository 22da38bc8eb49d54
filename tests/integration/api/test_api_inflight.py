"""Writes in flight when their caller loses access. A write authenticates
inside its transaction and holds its token and member rows key-share-locked
until it commits; disabling the member or revoking the token locks them
`for update`, so it returns only once those writes have committed, and no
write made with the old access commits after it. (What already began is
finished, as in any system; what matters in an incident is that nothing
more happens once the revocation has answered.)

Each test holds the organization row in another transaction, so that the
caller's write (an insert whose foreign key checks that row) waits there,
mid-transaction, while the revocation is sent."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient
from api_factories import (
    Factory,
    Member,
    World,
    body_of,
    held,
    until_waiting_on_locks,
    write_then_removal,
)

from cli.main import main
from common.settings import Settings
from sql import query

V1 = "/api/v1"
HOLD_ORG = "select 1 from organizations where id = %s for update"


async def revoked_mid_write(
    client: TestClient,
    factory: Factory,
    settings: Settings,
    caller: Member,
    revoke: Callable[[], Awaitable[Any]],
) -> tuple[Any, Any]:
    """`caller`'s team creation waits mid-transaction (at its foreign key to
    the organization, held); `revoke` is sent meanwhile and must wait for it
    to commit. Both answers."""
    # Used just now: the write does not touch last_used_at, an update that
    # would lock the token row for a reason of its own.
    factory.conn.execute(
        "update api_tokens set last_used_at = %s where member_id = %s",
        (factory.clock.now(), caller.id),
    )
    return await write_then_removal(
        factory,
        settings,
        (HOLD_ORG, caller.org),
        lambda: client.post(f"{V1}/teams", json={"name": "made in flight"}, headers=caller.auth),
        revoke,
    )


async def test_disabling_a_member_waits_for_their_writes_in_flight(
    client: TestClient, world: World, factory: Factory, settings: Settings
) -> None:
    second = factory.member(world.org, admin=True)

    async def disable() -> Any:
        return await client.delete(f"{V1}/members/{second.id}", headers=world.admin.auth)

    write, disabled = await revoked_mid_write(client, factory, settings, second, disable)
    assert write.status == 201 and disabled.status == 204, await body_of(disabled)


async def test_revoking_a_token_waits_for_its_writes_in_flight(
    client: TestClient, world: World, factory: Factory, settings: Settings
) -> None:
    second = factory.member(world.org, admin=True)
    token_id = factory.value("select id from api_tokens where member_id = %s", second.id)

    async def revoke() -> Any:
        url = f"{V1}/members/{second.id}/tokens/{token_id}"
        return await client.delete(url, headers=world.admin.auth)

    write, revoked = await revoked_mid_write(client, factory, settings, second, revoke)
    assert write.status == 201 and revoked.status == 204, await body_of(revoked)


async def test_a_write_arriving_during_a_disabling_is_refused(
    client: TestClient, world: World, factory: Factory, settings: Settings
) -> None:
    """The other order: the member's disabling is in flight (uncommitted)
    when a write of theirs arrives: the write waits for it, then finds the
    member disabled and writes nothing (401)."""
    second = factory.member(world.org, admin=True)
    params = {
        "org_id": world.org,
        "member_id": second.id,
        "caller_id": world.admin.id,
        "now": factory.clock.now(),
    }
    connect = psycopg.AsyncConnection.connect(settings.database_url)
    async with await connect as holder, holder.transaction():
        await holder.execute(query("api_disable_member"), params)
        write = asyncio.ensure_future(
            client.post(f"{V1}/teams", json={"name": "too late"}, headers=second.auth)
        )
        await until_waiting_on_locks(factory, 1, write, "the write did not wait")
    resp = await write
    assert resp.status == 401 and (await body_of(resp))["code"] == "invalid_token"
    assert factory.value("select count(*) from teams where name = 'too late'") == 0


@pytest.mark.parametrize("verb", ["member disable", "token revoke"])
async def test_the_admin_cli_waits_for_writes_in_flight_too(
    client: TestClient,
    world: World,
    factory: Factory,
    settings: Settings,
    tmp_path: Path,
    verb: str,
) -> None:
    second = factory.member(world.org, admin=True)
    token_id = factory.value("select id from api_tokens where member_id = %s", second.id)
    target = second.id if verb == "member disable" else token_id
    argv = ["admin", *verb.split(), target, "--org", world.org, "--json"]
    environ = {"DATABASE_URL": settings.database_url, "NOTEBOOKS_DATA_DIR": str(tmp_path)}

    async def run_cli() -> int:
        return await asyncio.to_thread(main, argv, environ=environ)

    write, code = await revoked_mid_write(client, factory, settings, second, run_cli)
    assert write.status == 201 and code == 0
    assert (await client.get(f"{V1}/me", headers=second.auth)).status == 401


async def test_a_revocation_waits_for_writes_made_with_tokens_made_with_it(
    client: TestClient, world: World, factory: Factory, settings: Settings
) -> None:
    """The lineage (migration 0007) is revoked with the token: a write in
    flight made with a child token is waited for as well."""
    second = factory.member(world.org, admin=True)
    parent = factory.value("select id from api_tokens where member_id = %s", second.id)
    child_secret = factory.token(second.id)
    factory.conn.execute(
        "update api_tokens set made_by = %s where member_id = %s and id <> %s",
        (parent, second.id, parent),
    )
    with_child = Member(second.id, second.org, child_secret)

    async def revoke() -> Any:
        url = f"{V1}/members/{second.id}/tokens/{parent}"
        return await client.delete(url, headers=world.admin.auth)

    write, revoked = await revoked_mid_write(client, factory, settings, with_child, revoke)
    assert write.status == 201 and revoked.status == 204, await body_of(revoked)
    assert (await client.get(f"{V1}/me", headers=with_child.auth)).status == 401


def _member_with_id(factory: Factory, org: str, member_id: str, *, admin: bool = False) -> Member:
    factory.conn.execute(
        "insert into members (id, organization_id, email, name, organization_admin)"
        " values (%s, %s, %s, %s, %s)",
        (member_id, org, f"{member_id.lower()}@example.com", member_id, admin),
    )
    return Member(member_id, org, factory.token(member_id))


async def test_one_admin_disabling_two_members_at_once_is_not_a_deadlock(
    client: TestClient, world: World, factory: Factory, settings: Settings
) -> None:
    """Both disables reach the rows' locks together (held back by a third
    party on the targets): each locks its target, then the admin's own row,
    one after the other; neither holds the admin's row while waiting."""
    admin = _member_with_id(factory, world.org, "ZZADMIN1", admin=True)
    targets = [_member_with_id(factory, world.org, f"AATARGET{i}") for i in (1, 2)]
    connect = psycopg.AsyncConnection.connect(settings.database_url)
    async with await connect as holder, holder.transaction():
        await holder.execute(
            "select 1 from members where id = any(%s) for update", ([t.id for t in targets],)
        )
        disables = [
            asyncio.ensure_future(client.delete(f"{V1}/members/{t.id}", headers=admin.auth))
            for t in targets
        ]
        await until_waiting_on_locks(factory, 2, asyncio.gather(*disables), "no disable waited")
    answers = await asyncio.gather(*disables)
    assert [a.status for a in answers] == [204, 204], [await body_of(a) for a in answers]


async def test_a_sign_out_sent_twice_is_not_a_deadlock(
    client: TestClient, world: World, factory: Factory, settings: Settings
) -> None:
    second = factory.member(world.org)
    token_id = factory.value("select id from api_tokens where member_id = %s", second.id)
    url = f"{V1}/members/{second.id}/tokens/{token_id}"
    connect = psycopg.AsyncConnection.connect(settings.database_url)
    async with await connect as holder, holder.transaction():
        await holder.execute("select 1 from api_tokens where id = %s for update", (token_id,))
        twice = [asyncio.ensure_future(client.delete(url, headers=second.auth)) for _ in (1, 2)]
        await until_waiting_on_locks(factory, 2, asyncio.gather(*twice), "no revoke waited")
    statuses = sorted(a.status for a in await asyncio.gather(*twice))
    assert statuses == [204, 404], statuses


async def test_a_write_in_flight_does_not_hold_back_other_requests_with_its_token(
    client: TestClient, world: World, factory: Factory, settings: Settings
) -> None:
    """last_used_at is written after the write's transaction, not inside it,
    where it would hold the token's row until the write commits."""
    second = factory.member(world.org, admin=True)  # never used: last_used_at is stale
    async with held(settings, HOLD_ORG, second.org):
        write = asyncio.ensure_future(
            client.post(f"{V1}/teams", json={"name": "slow"}, headers=second.auth)
        )
        await until_waiting_on_locks(factory, 1, write, "the write did not wait")
        me = await asyncio.wait_for(client.get(f"{V1}/me", headers=second.auth), 10)
        assert me.status == 200 and not write.done()
    assert (await write).status == 201
    assert factory.value(
        "select last_used_at is not null from api_tokens where member_id = %s", second.id
    )


async def test_a_revocation_by_an_admin_disabled_while_it_waited_revokes_nothing(
    client: TestClient, world: World, factory: Factory, settings: Settings
) -> None:
    """A revocation locks its targets, not its caller (so that crossing ones
    cannot deadlock); it reads its caller again once they are locked: an
    admin disabled meanwhile revokes nothing."""
    revoker = factory.member(world.org, admin=True)
    target = factory.member(world.org)
    token_id = factory.value("select id from api_tokens where member_id = %s", target.id)
    connect = psycopg.AsyncConnection.connect(settings.database_url)
    async with await connect as holder, holder.transaction():
        await holder.execute("select 1 from api_tokens where id = %s for update", (token_id,))
        revocation = asyncio.ensure_future(
            client.delete(f"{V1}/members/{target.id}/tokens/{token_id}", headers=revoker.auth)
        )
        await until_waiting_on_locks(factory, 1, revocation, "the revocation did not wait")
        disabled = await client.delete(f"{V1}/members/{revoker.id}", headers=world.admin.auth)
        assert disabled.status == 204, await body_of(disabled)
    resp = await revocation
    assert resp.status == 401 and (await body_of(resp))["code"] == "invalid_token"
    assert factory.value("select revoked_at from api_tokens where id = %s", token_id) is None
    assert (await client.get(f"{V1}/me", headers=target.auth)).status == 200


async def test_a_demotion_waits_for_the_admins_writes_in_flight(
    client: TestClient, world: World, factory: Factory, settings: Settings
) -> None:
    """Like a disabling: what the admin's role was still allowed commits
    before the demotion answers; nothing made with the role commits after."""
    second = factory.member(world.org, admin=True)

    async def demote() -> Any:
        return await client.patch(
            f"{V1}/members/{second.id}", json={"organizationAdmin": False}, headers=world.admin.auth
        )

    write, demoted = await revoked_mid_write(client, factory, settings, second, demote)
    assert write.status == 201 and demoted.status == 200, await body_of(demoted)
    assert not factory.value("select organization_admin from members where id = %s", second.id)


async def test_a_promotion_made_with_a_token_being_revoked_is_refused(
    client: TestClient, world: World, factory: Factory, settings: Settings
) -> None:
    """The revocation of the admin's token is under way (locked, uncommitted)
    when a promotion made with it arrives: the promotion waits for it, then
    finds the token revoked and promotes nobody. A promotion gives access,
    so it may not commit after the revocation it crossed."""
    token_id = factory.value("select id from api_tokens where member_id = %s", world.admin.id)
    connect = psycopg.AsyncConnection.connect(settings.database_url)
    async with await connect as holder, holder.transaction():
        await holder.execute("select id from api_tokens where id = %s for update", (token_id,))
        await holder.execute("update api_tokens set revoked_at = now() where id = %s", (token_id,))
        promote = asyncio.ensure_future(
            client.patch(
                f"{V1}/members/{world.owner.id}",
                json={"organizationAdmin": True},
                headers=world.admin.auth,
            )
        )
        await until_waiting_on_locks(factory, 1, promote, "the promotion did not wait")
    resp = await promote
    assert resp.status == 403, await body_of(resp)
    assert not factory.value("select organization_admin from members where id = %s", world.owner.id)


async def test_an_admin_demoted_while_revoking_a_members_token_revokes_nothing(
    client: TestClient, world: World, factory: Factory, settings: Settings
) -> None:
    """The revocation waits on the token's lock (here: another revocation of
    it under way, rolled back); meanwhile its caller is demoted. Once it can
    go on, it reads its caller again: no longer an admin, it revokes nothing."""
    second = factory.member(world.org, admin=True)
    token_id = factory.value("select id from api_tokens where member_id = %s", world.viewer.id)
    url = f"{V1}/members/{world.viewer.id}/tokens/{token_id}"
    async with held(settings, "select id from api_tokens where id = %s for update", token_id):
        revoke = asyncio.ensure_future(client.delete(url, headers=second.auth))
        await until_waiting_on_locks(factory, 1, revoke, "the revocation did not wait")
        demoted = await client.patch(
            f"{V1}/members/{second.id}", json={"organizationAdmin": False}, headers=world.admin.auth
        )
        assert demoted.status == 200
    resp = await revoke
    assert resp.status == 403, await body_of(resp)
    assert factory.value("select revoked_at from api_tokens where id = %s", token_id) is None

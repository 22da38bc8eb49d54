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
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient
from api_factories import Factory, Member, World, body_of, until_waiting_on_locks

from cli.main import main
from common.settings import Settings
from sql import query

V1 = "/api/v1"


@asynccontextmanager
async def held_org(settings: Settings, org: str) -> AsyncIterator[None]:
    connect = psycopg.AsyncConnection.connect(settings.database_url)
    async with await connect as holder, holder.transaction():
        await holder.execute("select 1 from organizations where id = %s for update", (org,))
        yield


async def revoked_mid_write(
    client: TestClient,
    factory: Factory,
    settings: Settings,
    caller: Member,
    revoke: Callable[[], Awaitable[Any]],
) -> tuple[Any, Any]:
    """`caller`'s team creation waits mid-transaction; `revoke` is sent
    meanwhile and must wait for it to commit. Both answers."""
    # Used just now: the write does not touch last_used_at, an update that
    # would lock the token row for a reason of its own.
    factory.conn.execute(
        "update api_tokens set last_used_at = %s where member_id = %s",
        (factory.clock.now(), caller.id),
    )
    async with held_org(settings, caller.org):
        write = asyncio.ensure_future(
            client.post(f"{V1}/teams", json={"name": "made in flight"}, headers=caller.auth)
        )
        await until_waiting_on_locks(factory, 1, write, "the write did not wait")
        revocation = asyncio.ensure_future(revoke())
        await until_waiting_on_locks(factory, 2, revocation, "the revocation did not wait")
        assert not write.done()
    done, _ = await asyncio.wait({write, revocation}, return_when=asyncio.FIRST_COMPLETED)
    assert write in done, "the revocation answered before the write committed"
    return await write, await revocation


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

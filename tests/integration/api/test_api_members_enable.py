"""Enabling a disabled member again (POST /members/{member}/enable) and
finding the disabled ones (GET /members?disabled=true): teams, role and
notebooks come back; tokens do not."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from aiohttp.test_utils import TestClient
from api_factories import Factory, Member, World, body_of, until_waiting_on_locks

from common.ids import new_id
from common.settings import Settings

V1 = "/api/v1"


async def listed(client: TestClient, who: Member, query: str = "") -> list[str]:
    resp = await client.get(f"{V1}/members{query}", headers=who.auth)
    assert resp.status == 200, await resp.text()
    return [m["id"] for m in (await body_of(resp))["items"]]


async def problem(resp: Any, status: int, code: str, field: str | None = None) -> None:
    assert resp.status == status, await resp.text()
    body = await body_of(resp)
    assert (body["code"], body.get("field")) == (code, field), body


async def test_a_disabled_member_comes_back_with_teams_and_notebooks_but_no_old_token(
    client: TestClient, world: World, factory: Factory
) -> None:
    editor, admin = world.editor, world.admin
    assert (await client.delete(f"{V1}/members/{editor.id}", headers=admin.auth)).status == 204
    assert editor.id not in await listed(client, admin)
    resp = await client.get(f"{V1}/members?disabled=true", headers=admin.auth)
    (gone,) = (await body_of(resp))["items"]
    assert gone["id"] == editor.id and gone["disabledAt"] is not None

    resp = await client.post(f"{V1}/members/{editor.id}/enable", headers=admin.auth)
    assert resp.status == 200, await resp.text()
    back = await body_of(resp)
    assert (back["id"], back["disabledAt"]) == (editor.id, None)
    assert editor.id in await listed(client, admin)
    assert await listed(client, admin, "?disabled=true") == []
    # The token they had before is revoked, by the admin who enabled them.
    assert (await client.get(f"{V1}/me", headers=editor.auth)).status == 401
    revoked_by = factory.value(
        "select array_agg(distinct revoked_by) from api_tokens where member_id = %s", editor.id
    )
    assert revoked_by == [admin.id]
    # A new one works, and their team and its notebook are theirs again.
    made = await client.post(
        f"{V1}/members/{editor.id}/tokens", json={"name": "back"}, headers=admin.auth
    )
    assert made.status == 201
    auth = {"Authorization": f"Bearer {(await body_of(made))['token']}"}
    me = await body_of(await client.get(f"{V1}/me", headers=auth))
    assert me["teams"] == [{"teamId": world.team, "role": "editor"}]
    nb = f"{V1}/workloads/notebooks/{world.notebook}"
    assert (await client.get(nb, headers=auth)).status == 200
    members = await body_of(await client.get(f"{V1}/teams/{world.team}/members", headers=auth))
    assert editor.id in {m["memberId"] for m in members["items"]}


async def test_only_a_disabled_member_of_ones_own_organization_is_enabled(
    client: TestClient, world: World, factory: Factory
) -> None:
    admin = world.admin
    enable = f"{V1}/members/{{}}/enable"
    await problem(
        await client.post(enable.format(world.editor.id), headers=admin.auth),
        409,
        "member_not_disabled",
        "member",
    )
    # Enabling an active member touches nothing: their token still works.
    assert (await client.get(f"{V1}/me", headers=world.editor.auth)).status == 200
    factory.conn.execute(
        "update members set disabled_at = now() where id = %s", (world.stranger.id,)
    )
    for missing in (world.stranger.id, "NOSUCHMEMBER"):
        await problem(
            await client.post(enable.format(missing), headers=admin.auth),
            404,
            "not_found",
            "member",
        )
    assert factory.value("select disabled_at from members where id = %s", world.stranger.id)
    await problem(
        await client.post(enable.format(world.viewer.id), headers=world.owner.auth),
        403,
        "forbidden",
    )
    await problem(
        await client.post(
            enable.format(world.viewer.id), json={"tokens": True}, headers=admin.auth
        ),
        400,
        "unknown_field",
        "tokens",
    )


async def test_the_disabled_list_checks_its_parameter_and_keeps_its_markers_apart(
    client: TestClient, world: World
) -> None:
    admin = world.admin
    resp = await client.get(f"{V1}/members?disabled=yes", headers=admin.auth)
    await problem(resp, 400, "validation_failed", "disabled")
    page = await body_of(await client.get(f"{V1}/members?limit=1", headers=admin.auth))
    resp = await client.get(
        f"{V1}/members?disabled=true&marker={page['marker']}", headers=admin.auth
    )
    await problem(resp, 400, "invalid_marker", "marker")
    assert (await client.get(f"{V1}/members?disabled=true", headers=world.owner.auth)).status == 403


async def test_a_token_being_made_while_the_member_is_enabled_is_revoked_too(
    client: TestClient, world: World, factory: Factory, settings: Settings
) -> None:
    """A token for the member whose insert commits while the enable waits for
    the member's row is revoked with the rest (a review: the enable's one
    statement read the tokens before its wait, and the token came back live)."""
    editor, admin = world.editor, world.admin
    assert (await client.delete(f"{V1}/members/{editor.id}", headers=admin.auth)).status == 204
    late = new_id()
    async with await psycopg.AsyncConnection.connect(settings.database_url) as maker:
        # As a token being made holds its member: key-share-locked, inserted.
        await maker.execute("select id from members where id = %s for key share", (editor.id,))
        await maker.execute(
            "insert into api_tokens (id, member_id, name, prefix, secret_hash)"
            " values (%s, %s, 'late', 'nbk_late', %s)",
            (late, editor.id, "x" * 64),
        )
        enabling = asyncio.ensure_future(
            client.post(f"{V1}/members/{editor.id}/enable", headers=admin.auth)
        )
        await until_waiting_on_locks(factory, 1, enabling, "the enable did not wait")
        await maker.commit()
    assert (await enabling).status == 200
    assert factory.value("select revoked_at is not null from api_tokens where id = %s", late)

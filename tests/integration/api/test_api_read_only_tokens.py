"""Read-only API tokens (`readOnly`, migration 0023, docs/api.md "Members
and tokens"): such a token reads what its member may read, and every other
request with it is 403 read_only_token, before its body is looked at;
nothing it asks for is written."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from api_factories import Factory, World, body_of, refused

V1 = "/api/v1"
NB = V1 + "/workloads/notebooks"


async def read_only_token(client: TestClient, world: World) -> dict[str, str]:
    resp = await client.post(
        f"{V1}/members/{world.owner.id}/tokens",
        json={"name": "backup script", "readOnly": True},
        headers=world.owner.auth,
    )
    assert resp.status == 201, await resp.text()
    made = await body_of(resp)
    assert made["readOnly"] is True
    return {"Authorization": f"Bearer {made['token']}"}


async def test_a_read_only_token_reads_what_its_member_may(
    client: TestClient, world: World, factory: Factory
) -> None:
    auth = await read_only_token(client, world)
    factory.conn.execute(
        "insert into notebook_files (notebook_id, content, kept_at, session_id)"
        " values (%s, 'x = 1\n', now(), 'S1')",
        (world.notebook,),
    )
    for path in (
        "/me",
        "/workloads/notebooks",
        f"/workloads/notebooks/{world.notebook}",
        f"/workloads/notebooks/{world.notebook}/events",
        f"/workloads/notebooks/{world.notebook}/teams",
        f"/workloads/notebooks/{world.notebook}/file",
        f"/workloads/notebooks/{world.notebook}/file/versions",
        "/me/usage",
        "/teams",
        f"/members/{world.owner.id}/tokens",
        "/workloads/deleted-notebooks",
    ):
        resp = await client.get(V1 + path, headers=auth)
        assert resp.status == 200, (path, await resp.text())
    listed = await body_of(
        await client.get(f"{V1}/members/{world.owner.id}/tokens", headers=world.owner.auth)
    )
    me = await body_of(await client.get(V1 + "/me", headers=auth))
    script = next(t for t in listed["items"] if t["name"] == "backup script")
    assert me["token"] == {"id": script["id"], "readOnly": True, "expiresAt": script["expiresAt"]}
    flags = {t["name"]: t["readOnly"] for t in listed["items"]}
    assert flags == {"test": False, "backup script": True}  # older tokens: not read-only
    # No more than its member: an org admin's pages stay closed.
    await refused(await client.get(V1 + "/members", headers=auth), 403, "forbidden")


async def test_a_read_only_token_changes_starts_and_opens_nothing(
    client: TestClient, world: World, factory: Factory
) -> None:
    auth = await read_only_token(client, world)
    nb = f"{NB}/{world.notebook}"
    before = (
        factory.value("select generation from notebooks where id = %s", world.notebook),
        factory.value("select count(*) from notebooks"),
        factory.value("select count(*) from api_tokens"),
    )
    writes = [
        ("POST", NB, {"name": "n", "workloadConfigId": world.config}),
        # refused before the file is converted (a bad one would be a 400)
        ("POST", NB, {"name": "n", "workloadConfigId": world.config, "source": {"format": "py"}}),
        ("PATCH", nb, {"name": "renamed"}),
        ("POST", nb + "/start", None),
        ("POST", nb + "/stop", None),
        ("POST", nb + "/open", None),  # an edit session
        ("POST", nb + "/ping", None),  # keeps a notebook running
        ("POST", nb + "/teams", {"teamIds": [world.team]}),
        ("DELETE", f"{nb}/teams/{world.team}", None),
        ("PUT", nb + "/offer", {"memberId": world.editor.id}),
        ("POST", nb + "/file/restore", {"version": "1"}),
        ("POST", f"{V1}/workloads/deleted-notebooks/{world.notebook}/restore", None),
        ("DELETE", f"{V1}/workloads/deleted-notebooks/{world.notebook}", None),
        ("DELETE", nb + "/file/versions", None),
        ("DELETE", nb, None),
        ("POST", f"{V1}/members/{world.owner.id}/tokens", {"name": "more", "readOnly": False}),
        ("POST", V1 + "/teams", {"name": "mine"}),
    ]
    for method, path, body in writes:
        resp = await client.request(method, path, json=body, headers=auth)
        problem = await refused(resp, 403, "read_only_token")
        assert problem["detail"].startswith("This token is read-only"), (method, path)
    # Nor another of its member's tokens, nor one of a colleague's.
    listed = await body_of(
        await client.get(f"{V1}/members/{world.owner.id}/tokens", headers=world.owner.auth)
    )
    mine = next(t["id"] for t in listed["items"] if t["readOnly"])
    other = next(t["id"] for t in listed["items"] if not t["readOnly"])
    await refused(
        await client.delete(f"{V1}/members/{world.owner.id}/tokens/{other}", headers=auth),
        403,
        "read_only_token",
    )
    theirs = await body_of(
        await client.get(f"{V1}/members/{world.editor.id}/tokens", headers=world.editor.auth)
    )
    await refused(
        await client.delete(
            f"{V1}/members/{world.editor.id}/tokens/{theirs['items'][0]['id']}", headers=auth
        ),
        403,
        "read_only_token",
    )
    after = (
        factory.value("select generation from notebooks where id = %s", world.notebook),
        factory.value("select count(*) from notebooks"),
        factory.value("select count(*) from api_tokens"),
    )
    assert after == before
    assert factory.value("select count(*) from api_tokens where revoked_at is not null") == 0
    # Itself, yes: a script done with its token, or finding it leaked, ends it.
    resp = await client.delete(f"{V1}/members/{world.owner.id}/tokens/{mine}", headers=auth)
    assert resp.status == 204, await resp.text()
    await refused(await client.get(V1 + "/me", headers=auth), 401, "invalid_token")
    assert (await client.get(V1 + "/me", headers=world.owner.auth)).status == 200
    revoked_by = factory.value("select revoked_by from api_tokens where id = %s", mine)
    assert revoked_by == world.owner.id


async def test_read_only_is_a_boolean(client: TestClient, world: World) -> None:
    resp = await client.post(
        f"{V1}/members/{world.owner.id}/tokens",
        json={"name": "x", "readOnly": "yes"},
        headers=world.owner.auth,
    )
    await refused(resp, 400, "wrong_type", "readOnly")

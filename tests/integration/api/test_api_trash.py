"""Recently deleted notebooks (`/workloads/deleted-notebooks`, migration
0025, docs/api.md "Recently deleted"): what the workers keep of a notebook
as they remove it (reconciler_delete_notebook, run here as the reconciler
runs it), listed to whoever could delete it (its owner, org admins, admins
now of its teams),
downloaded, brought back as a new notebook, or forgotten at once; gone for
every reader after its days. (The reconciler's side, from real processes:
tests/integration/reconciler/test_reconciler_files.py.)"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from api_factories import Factory, World, body_of, refused
from test_api_notebook_file import CODE, NB, V1, keep
from test_api_read_only_tokens import read_only_token

from reconciler.reconcile import DELETED
from sql import query

TRASH = V1 + "/workloads/deleted-notebooks"


async def delete_for_good(
    client: TestClient, factory: Factory, notebook: str, who: Any, trash_days: int = 30
) -> None:
    """A member's delete, then the reconciler's removal of its row."""
    resp = await client.delete(f"{NB}/{notebook}", headers=who.auth)
    assert resp.status == 204, await resp.text()
    factory.clock.advance(60)
    factory.conn.execute(
        query("reconciler_delete_notebook"),
        {"id": notebook, "reason": DELETED, "now": factory.clock.now(), "trash_days": trash_days},
    )


async def trash_the_notebook(client: TestClient, factory: Factory, world: World) -> None:
    """World's notebook, with a copy of its file kept, deleted by its owner."""
    keep(factory, world.notebook, CODE)
    await delete_for_good(client, factory, world.notebook, world.owner)


async def test_a_deleted_notebook_is_listed_with_what_brings_it_back(
    client: TestClient, world: World, factory: Factory
) -> None:
    factory.conn.execute(
        "update notebooks set name = 'Revenue', description = 'Q3', idle_timeout_seconds = 900"
        " where id = %s",
        (world.notebook,),
    )
    keep(factory, world.notebook, "# older\n", minutes_ago=30)
    keep(factory, world.notebook, CODE, minutes_ago=10)
    await delete_for_good(client, factory, world.notebook, world.team_admin)
    # Whoever could delete it: its owner, its team's admin (who did), org admins.
    for who in (world.owner, world.team_admin, world.admin):
        listed = await body_of(await client.get(TRASH, headers=who.auth))
        assert listed["total"] == 1, who
        item = listed["items"][0]
        assert item == {
            "notebookId": world.notebook,
            "name": "Revenue",
            "description": "Q3",
            "memberId": world.owner.id,
            "deletedBy": world.team_admin.id,
            "deletedAt": "2026-11-01T12:01:00+00:00",
            "keptUntil": "2026-12-01T12:01:00+00:00",
            "fileKeptAt": "2026-11-01T11:50:00+00:00",
            "bytes": len(CODE.encode()),
            "workloadConfigId": world.config,
            "teamIds": [world.team],
        }
        named = {m["id"] for m in listed["included"]["members"]}
        assert named == {world.owner.id, world.team_admin.id}
    # Nobody else: not its team's other members, not another organization.
    for who in (world.editor, world.viewer, world.outsider, world.stranger):
        listed = await body_of(await client.get(TRASH, headers=who.auth))
        assert listed == {"total": 0, "items": [], "included": {"members": []}}, who
        await refused(
            await client.get(f"{TRASH}/{world.notebook}/file", headers=who.auth),
            404,
            "not_found",
            "id",
        )
    got = await client.get(f"{TRASH}/{world.notebook}/file", headers=world.owner.auth)
    assert got.status == 200 and await got.text() == CODE  # its newest version
    assert got.headers["Content-Disposition"].startswith('attachment; filename="Revenue.py"')
    assert got.headers["Cache-Control"] == "no-store"
    again = await client.get(
        f"{TRASH}/{world.notebook}/file",
        headers={**world.owner.auth, "If-None-Match": got.headers["ETag"]},
    )
    assert again.status == 304


async def test_a_deleted_notebook_is_brought_back_as_it_was(
    client: TestClient, world: World, factory: Factory
) -> None:
    factory.conn.execute(
        "update notebooks set name = 'Revenue', description = 'Q3', idle_timeout_seconds = 900"
        " where id = %s",
        (world.notebook,),
    )
    await trash_the_notebook(client, factory, world)
    resp = await client.post(f"{TRASH}/{world.notebook}/restore", headers=world.admin.auth)
    assert resp.status == 201, await resp.text()
    body = await body_of(resp)
    back = body["item"]["notebookId"]
    assert back != world.notebook  # a new notebook: the old one's usage stays its own
    assert body["item"]["teamIds"] == [world.team]
    nb = next(n for n in body["included"]["notebooks"] if n["id"] == back)
    assert (nb["name"], nb["description"], nb["idleTimeoutSeconds"]) == ("Revenue", "Q3", 900)
    assert (nb["memberId"], nb["createdBy"], nb["status"]) == (
        world.owner.id,  # its owner's again, brought back by an org admin
        world.admin.id,
        "stopped",
    )
    # Its file is its first start's, and downloaded as any notebook's.
    got = await client.get(f"{NB}/{back}/file", headers=world.owner.auth)
    assert await got.text() == CODE
    history = await body_of(await client.get(f"{NB}/{back}/events", headers=world.owner.auth))
    assert history["items"][0]["reason"] == (
        f"Brought back from Recently deleted: {world.notebook}, deleted 2026-11-01 12:01 UTC"
    )
    # Out of the trash: once.
    assert (await body_of(await client.get(TRASH, headers=world.owner.auth)))["total"] == 0
    await refused(
        await client.post(f"{TRASH}/{world.notebook}/restore", headers=world.owner.auth),
        404,
        "not_found",
        "id",
    )


async def test_a_leavers_notebook_comes_back_to_who_brings_it_back(
    client: TestClient, world: World, factory: Factory
) -> None:
    await trash_the_notebook(client, factory, world)
    factory.conn.execute("update members set disabled_at = now() where id = %s", (world.owner.id,))
    # Its team's admin brings it back, theirs now (as a hand-over would make it).
    url = f"{TRASH}/{world.notebook}/restore"
    resp = await client.post(url, headers=world.team_admin.auth)
    assert resp.status == 201, await resp.text()
    body = await body_of(resp)
    nb = body["included"]["notebooks"][0]
    assert nb["memberId"] == world.team_admin.id


async def test_a_team_admin_removed_since_no_longer_sees_it(
    client: TestClient, world: World, factory: Factory
) -> None:
    """Its file may hold what the team's members alone were to read, and a
    forget would take its owner's way back."""
    keep(factory, world.notebook, CODE)
    await delete_for_good(client, factory, world.notebook, world.team_admin)
    factory.conn.execute(
        "delete from team_memberships where member_id = %s", (world.team_admin.id,)
    )
    listed = await body_of(await client.get(TRASH, headers=world.team_admin.auth))
    assert listed["total"] == 0
    for method, path in (
        ("GET", f"{TRASH}/{world.notebook}/file"),
        ("POST", f"{TRASH}/{world.notebook}/restore"),
        ("DELETE", f"{TRASH}/{world.notebook}"),
    ):
        resp = await client.request(method, path, headers=world.team_admin.auth)
        await refused(resp, 404, "not_found", "id")
    assert (await body_of(await client.get(TRASH, headers=world.owner.auth)))["total"] == 1


async def test_a_deleted_config_or_team_is_not_brought_back(
    client: TestClient, world: World, factory: Factory
) -> None:
    await trash_the_notebook(client, factory, world)
    factory.conn.execute("delete from teams where id = %s", (world.team,))
    factory.conn.execute("delete from workload_configs where id = %s", (world.config,))
    url = f"{TRASH}/{world.notebook}/restore"
    await refused(
        await client.post(url, headers=world.owner.auth), 409, "config_gone", "workloadConfigId"
    )
    other = factory.config(world.org)
    for body, status, code in (
        ({"workloadConfigId": "NOSUCHCONFIG"}, 400, "unknown_reference"),
        ({"workloadConfigId": "bad id"}, 400, "invalid_id"),
        ({"name": "x"}, 400, "unknown_field"),
    ):
        await refused(await client.post(url, json=body, headers=world.owner.auth), status, code)
    assert factory.value("select count(*) from notebook_trash") == 1  # nothing written
    resp = await client.post(url, json={"workloadConfigId": other}, headers=world.owner.auth)
    assert resp.status == 201, await resp.text()
    body = await body_of(resp)
    assert body["item"]["teamIds"] == [] and body["item"]["workloadConfigId"] == other


async def test_a_config_the_owner_may_not_use_is_refused(
    client: TestClient, world: World, factory: Factory
) -> None:
    """Its cost is its owner's: a config closed to them since (org admins
    only) is refused, as at a create, and nothing is written."""
    await trash_the_notebook(client, factory, world)
    factory.conn.execute(
        "update workload_configs set restricted = true where id = %s", (world.config,)
    )
    url = f"{TRASH}/{world.notebook}/restore"
    problem = await refused(
        await client.post(url, headers=world.admin.auth), 403, "config_not_allowed"
    )
    assert "This notebook's owner is not one" in problem["detail"]
    # Nor named in the body.
    named = await client.post(
        url, json={"workloadConfigId": world.config}, headers=world.admin.auth
    )
    await refused(named, 403, "config_not_allowed")
    assert factory.value("select count(*) from notebook_trash") == 1
    assert factory.value("select count(*) from notebooks") == 0


async def test_its_timeouts_come_back_under_the_caps_of_now(
    client: TestClient, world: World, factory: Factory
) -> None:
    factory.conn.execute(
        "update notebooks set idle_timeout_seconds = 0, detached_timeout_seconds = 7200"
        " where id = %s",
        (world.notebook,),
    )
    await trash_the_notebook(client, factory, world)
    factory.conn.execute(
        "update organizations set max_idle_timeout_seconds = 1800 where id = %s", (world.org,)
    )
    resp = await client.post(f"{TRASH}/{world.notebook}/restore", headers=world.owner.auth)
    nb = (await body_of(resp))["included"]["notebooks"][0]
    # "never" is past the cap set since; the detached one is within none.
    assert (nb["idleTimeoutSeconds"], nb["detachedTimeoutSeconds"]) == (1800, 7200)


async def test_pages_of_recently_deleted(
    client: TestClient, world: World, factory: Factory
) -> None:
    gone = []
    for _ in range(3):
        notebook = factory.notebook(world.owner, world.config)
        keep(factory, notebook, CODE)
        await delete_for_good(client, factory, notebook, world.owner)
        gone.append(notebook)
    seen, marker = [], None
    while True:
        url = f"{TRASH}?limit=2" + (f"&marker={marker}" if marker else "")
        page = await body_of(await client.get(url, headers=world.owner.auth))
        assert page["total"] == 3
        seen += [i["notebookId"] for i in page["items"]]
        marker = page.get("marker")
        if marker is None:
            break
    assert seen == gone[::-1]  # the newest deletion first
    # A marker is its reader's: another member's list refuses it.
    first = await body_of(await client.get(f"{TRASH}?limit=1", headers=world.owner.auth))
    await refused(
        await client.get(f"{TRASH}?marker={first['marker']}", headers=world.admin.auth),
        400,
        "invalid_marker",
    )


async def test_forgotten_at_once_or_after_its_days(
    client: TestClient, world: World, factory: Factory
) -> None:
    await trash_the_notebook(client, factory, world)
    other = factory.notebook(world.owner, world.config)
    keep(factory, other, CODE)
    await delete_for_good(client, factory, other, world.owner, trash_days=1)
    assert (await body_of(await client.get(TRASH, headers=world.owner.auth)))["total"] == 2
    # Its file held a key: gone now, for whoever may see it.
    await refused(
        await client.delete(f"{TRASH}/{world.notebook}", headers=world.outsider.auth),
        404,
        "not_found",
        "id",
    )
    resp = await client.delete(f"{TRASH}/{world.notebook}", headers=world.owner.auth)
    assert resp.status == 204, await resp.text()
    # After its days, gone for every reader before the housekeeping runs.
    factory.clock.advance(int(timedelta(days=1, seconds=1).total_seconds()))
    assert (await body_of(await client.get(TRASH, headers=world.owner.auth)))["total"] == 0
    await refused(
        await client.get(f"{TRASH}/{other}/file", headers=world.owner.auth), 404, "not_found"
    )
    assert factory.value("select count(*) from notebook_trash") == 1  # the housekeeping's


async def test_nothing_is_kept_without_days_or_a_file(
    client: TestClient, world: World, factory: Factory
) -> None:
    keep(factory, world.notebook, CODE)
    await delete_for_good(client, factory, world.notebook, world.owner, trash_days=0)
    never_ran = factory.notebook(world.owner, world.config)
    await delete_for_good(client, factory, never_ran, world.owner)
    assert factory.value("select count(*) from notebook_trash") == 0
    assert factory.value("select count(*) from deleted_notebooks") == 2  # tombstones stay


async def test_a_notebook_brought_as_a_file_and_never_run_is_kept_too(
    client: TestClient, world: World, factory: Factory
) -> None:
    resp = await client.post(
        NB,
        json={
            "name": "brought",
            "workloadConfigId": world.config,
            "source": {"format": "py", "content": CODE},
        },
        headers=world.owner.auth,
    )
    notebook = (await body_of(resp))["item"]["notebookId"]
    await delete_for_good(client, factory, notebook, world.owner)
    got = await client.get(f"{TRASH}/{notebook}/file", headers=world.owner.auth)
    assert got.status == 200 and await got.text() == CODE


async def test_a_read_only_token_lists_and_downloads_only(
    client: TestClient, world: World, factory: Factory
) -> None:
    await trash_the_notebook(client, factory, world)
    auth = await read_only_token(client, world)
    assert (await body_of(await client.get(TRASH, headers=auth)))["total"] == 1
    got = await client.get(f"{TRASH}/{world.notebook}/file", headers=auth)
    assert got.status == 200 and await got.text() == CODE
    for method, path in (
        ("POST", f"{TRASH}/{world.notebook}/restore"),
        ("DELETE", f"{TRASH}/{world.notebook}"),
    ):
        resp = await client.request(method, path, headers=auth)
        await refused(resp, 403, "read_only_token")
    assert factory.value("select count(*) from notebook_trash") == 1

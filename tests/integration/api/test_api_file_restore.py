"""Restoring an earlier version of a notebook's file (`POST
/workloads/notebooks/{id}/file/restore`, docs/api.md "Restoring a
version"): the version becomes the newest again and the next start's seed,
written over the file in the notebook's storage; only while the notebook is
stopped or failed, by whoever may change its code. (The start that writes
it, from real processes: tests/integration/reconciler/test_reconciler_files.py.)"""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp.test_utils import TestClient
from api_factories import Factory, World, body_of, refused
from test_api_notebook_file import CODE, NB, V1, keep

from common import notebook_file


def seed_of(factory: Factory, notebook: str) -> Any:
    return factory.conn.execute(
        "select source, replaces from notebook_seeds where notebook_id = %s", (notebook,)
    ).fetchone()


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def test_a_version_is_restored_for_the_next_start(
    client: TestClient, world: World, factory: Factory
) -> None:
    """A cell deleted and saved over, two stops ago: its version comes back
    as the newest, with nothing lost (what it replaces stays a version)."""
    first = keep(factory, world.notebook, CODE, minutes_ago=30)
    keep(factory, world.notebook, "# all but gone\n", minutes_ago=10)
    url = f"{NB}/{world.notebook}/file"
    resp = await client.post(url + "/restore", json={"version": first}, headers=world.editor.auth)
    assert resp.status == 200, await resp.text()
    listed = await body_of(resp)
    assert listed["total"] == 3
    newest = listed["items"][0]
    assert newest["keptAt"] == "2026-11-01T12:00:00+00:00"
    assert newest["restoredFrom"] == "2026-11-01T11:30:00+00:00"
    assert newest["bytes"] == len(CODE.encode()) and newest["sessionId"] == "S1"
    assert [v["restoredFrom"] for v in listed["items"][1:]] == [None, None]
    assert listed == await body_of(await client.get(url + "/versions", headers=world.owner.auth))
    # The download is the restored file; the next start writes it over the
    # one in its storage, unless that is not the newest copy it replaced.
    assert await (await client.get(url, headers=world.viewer.auth)).text() == CODE
    assert tuple(seed_of(factory, world.notebook)) == (CODE, sha("# all but gone\n"))
    history = await body_of(
        await client.get(f"{NB}/{world.notebook}/events", headers=world.owner.auth)
    )
    event = history["items"][0]
    assert event["reason"] == (
        "Restored the version of its file kept at 2026-11-01 11:30 UTC, for its next start"
    )
    assert (event["actor"], event["toStatus"]) == (world.editor.id, "stopped")
    # Nothing starts by itself: a restore is written at the member's next start.
    assert factory.value("select desired_state from notebooks where id = %s", world.notebook) == (
        "stopped"
    )


async def test_a_second_restore_before_a_start_replaces_what_the_first_did(
    client: TestClient, world: World, factory: Factory
) -> None:
    """The storage holds the copy the first replaced, or the first's version
    (a start that failed after writing it): the second may replace either,
    so its start keeps neither beside (both are versions)."""
    first = keep(factory, world.notebook, CODE, minutes_ago=30)
    second = keep(factory, world.notebook, CODE + "# two\n", minutes_ago=20)
    keep(factory, world.notebook, "# three\n", minutes_ago=10)
    url = f"{NB}/{world.notebook}/file/restore"
    for version in (first, second):
        resp = await client.post(url, json={"version": version}, headers=world.owner.auth)
        assert resp.status == 200, await resp.text()
    assert tuple(seed_of(factory, world.notebook)) == (
        CODE + "# two\n",
        " ".join((sha("# three\n"), sha(CODE))),
    )
    # Restoring what is the newest already writes no version, only the seed.
    again = await client.post(url, json={"version": second}, headers=world.owner.auth)
    listed = await body_of(again)
    assert listed["total"] == 5
    assert [v["bytes"] for v in listed["items"][:2]] == [
        len((CODE + "# two\n").encode()),
        len(CODE.encode()),
    ]


async def test_restoring_keeps_the_newest_versions_as_a_copy_does(
    client: TestClient, world: World, factory: Factory
) -> None:
    oldest = keep(factory, world.notebook, "# 0\n", minutes_ago=100)
    for i in range(1, notebook_file.VERSIONS):
        keep(factory, world.notebook, f"# {i}\n", minutes_ago=100 - i)
    resp = await client.post(
        f"{NB}/{world.notebook}/file/restore", json={"version": oldest}, headers=world.owner.auth
    )
    listed = await body_of(resp)
    # The oldest went as the newest came; its file is in the newest.
    assert listed["total"] == notebook_file.VERSIONS
    assert oldest not in [v["version"] for v in listed["items"]]
    assert (
        await (await client.get(f"{NB}/{world.notebook}/file", headers=world.owner.auth)).text()
        == "# 0\n"
    )


async def test_a_running_notebook_is_not_restored_under_its_editor(
    client: TestClient, world: World, factory: Factory
) -> None:
    """Its editor would save over the file, and its stop's copy would come
    after the restore; a failed one is restored (its next start writes it)."""
    for status in ("starting", "running", "idle", "detached", "stopping"):
        notebook = factory.notebook(world.owner, world.config, status=status)
        version = keep(factory, notebook, CODE)
        problem = await refused(
            await client.post(
                f"{NB}/{notebook}/file/restore",
                json={"version": version},
                headers=world.owner.auth,
            ),
            409,
            "notebook_not_stopped",
        )
        assert problem["detail"].startswith(f"A {status} notebook's file cannot be restored")
    assert factory.value("select count(*) from notebook_seeds") == 0
    assert factory.value("select count(*) from notebook_files") == 5  # no version either
    failed = factory.notebook(world.owner, world.config, status="failed")
    version = keep(factory, failed, CODE)
    resp = await client.post(
        f"{NB}/{failed}/file/restore", json={"version": version}, headers=world.owner.auth
    )
    assert resp.status == 200, await resp.text()


async def test_a_restore_is_for_whoever_may_change_the_code(
    client: TestClient, world: World, factory: Factory
) -> None:
    version = keep(factory, world.notebook, CODE)
    url = f"{NB}/{world.notebook}/file/restore"
    body = {"version": version}
    await refused(await client.post(url, json=body, headers=world.viewer.auth), 403, "forbidden")
    for who in (world.outsider, world.stranger):
        await refused(await client.post(url, json=body, headers=who.auth), 404, "not_found", "id")
    await refused(await client.post(url, json=body), 401, "unauthorized")
    assert factory.value("select count(*) from notebook_seeds") == 0
    for who in (world.owner, world.admin, world.team_admin, world.editor):
        resp = await client.post(url, json=body, headers=who.auth)
        assert resp.status == 200, await resp.text()


async def test_bad_restores_are_refused_and_write_nothing(
    client: TestClient, world: World, factory: Factory
) -> None:
    keep(factory, world.notebook, CODE)
    other = factory.notebook(world.owner, world.config)
    foreign = keep(factory, other, "# other\n")
    url = f"{NB}/{world.notebook}/file/restore"
    for body, status, code, field in (
        ({"version": foreign}, 404, "not_found", "version"),  # another notebook's
        ({"version": "999999999"}, 404, "not_found", "version"),
        ({}, 400, "missing_field", "version"),
        ({"version": 1}, 400, "wrong_type", "version"),
        ({"version": "0"}, 400, "invalid_value", "version"),
        ({"version": "abc"}, 400, "invalid_value", "version"),
        ({"version": "1", "force": True}, 400, "unknown_field", "force"),
    ):
        resp = await client.post(url, json=body, headers=world.owner.auth)
        await refused(resp, status, code, field)
    raw = await client.post(
        url, data="version=1", headers={**world.owner.auth, "Content-Type": "text/plain"}
    )
    await refused(raw, 415, "unsupported_media_type")
    await refused(
        await client.post(
            f"{NB}/NOSUCHNOTEBK/file/restore", json={"version": "1"}, headers=world.owner.auth
        ),
        404,
        "not_found",
        "id",
    )
    assert factory.value("select count(*) from notebook_seeds") == 0
    assert factory.value("select count(*) from notebook_files") == 2


async def test_the_openapi_document_describes_the_restore(client: TestClient) -> None:
    doc = await body_of(await client.get(V1 + "/openapi.json"))
    op = doc["paths"]["/api/v1/workloads/notebooks/{id}/file/restore"]["post"]
    assert {"200", "400", "401", "403", "404", "409", "415"} <= set(op["responses"])
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["version"]
    item = doc["components"]["schemas"]["NotebookFileVersion"]["properties"]
    assert item["restoredFrom"]["type"] == ["string", "null"]

"""A notebook's file, downloaded (`GET /workloads/notebooks/{id}/file`,
docs/api.md "A notebook's file"): the copy the reconciler keeps, served to
whoever may see the notebook, named after it, with its time and an ETag;
before the first run, the file it was created from; else 404
file_not_kept. (The reconciler's copies themselves, from real processes:
tests/integration/reconciler/test_reconciler_files.py.)"""

from __future__ import annotations

from datetime import timedelta

from aiohttp.test_utils import TestClient
from api_factories import Factory, World, body_of, refused

V1 = "/api/v1"
NB = V1 + "/workloads/notebooks"
CODE = 'import marimo\n\napp = marimo.App()\n\n\n@app.cell\ndef _():\n    x = "é ✓"\n    return\n'


def keep(factory: Factory, notebook: str, content: str, minutes_ago: int = 5) -> None:
    """What the reconciler writes (reconciler_keep_file)."""
    factory.conn.execute(
        "insert into notebook_files (notebook_id, content, kept_at, session_id)"
        " values (%s, %s, %s, 'S1')"
        " on conflict (notebook_id) do update set content = excluded.content,"
        " kept_at = excluded.kept_at",
        (notebook, content, factory.clock.now() - timedelta(minutes=minutes_ago)),
    )


async def test_whoever_sees_the_notebook_downloads_its_kept_file(
    client: TestClient, world: World, factory: Factory
) -> None:
    factory.conn.execute(
        "update notebooks set name = %s where id = %s", ("Revenue / Q3 (draft)", world.notebook)
    )
    keep(factory, world.notebook, CODE)
    url = f"{NB}/{world.notebook}/file"
    # The owner, an org admin, and every role of a team it is shared with
    # (a viewer reads the code in the editor anyway).
    for who in (world.owner, world.admin, world.team_admin, world.editor, world.viewer):
        resp = await client.get(url, headers=who.auth)
        assert resp.status == 200, await resp.text()
        assert await resp.read() == CODE.encode()
        assert resp.headers["Content-Type"] == "text/x-python; charset=utf-8"
        assert resp.headers["Content-Disposition"] == (
            'attachment; filename="Revenue_Q3_draft.py";'
            " filename*=UTF-8''Revenue%20%2F%20Q3%20%28draft%29.py"
        )
        assert resp.headers["Last-Modified"] == "Sun, 01 Nov 2026 11:55:00 GMT"
        assert resp.headers["Cache-Control"] == "no-store"  # code (and its keys) kept on no disk
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    # Nobody else learns that it exists.
    for who in (world.outsider, world.stranger):
        await refused(await client.get(url, headers=who.auth), 404, "not_found", "id")
    await refused(await client.get(url), 401, "unauthorized")


async def test_an_unchanged_file_is_not_sent_again(
    client: TestClient, world: World, factory: Factory
) -> None:
    keep(factory, world.notebook, CODE)
    url = f"{NB}/{world.notebook}/file"
    first = await client.get(url, headers=world.owner.auth)
    etag = first.headers["ETag"]
    again = await client.get(url, headers={**world.owner.auth, "If-None-Match": f"W/{etag}"})
    assert again.status == 304
    assert again.headers["ETag"] == etag
    assert again.headers["Cache-Control"] == first.headers["Cache-Control"] == "no-store"
    keep(factory, world.notebook, CODE + "# edited\n", minutes_ago=1)
    changed = await client.get(url, headers={**world.owner.auth, "If-None-Match": etag})
    assert changed.status == 200
    assert await changed.text() == CODE + "# edited\n"
    assert changed.headers["ETag"] != etag
    assert changed.headers["Last-Modified"] == "Sun, 01 Nov 2026 11:59:00 GMT"


async def test_no_copy_yet_is_said_plainly(
    client: TestClient, world: World, factory: Factory
) -> None:
    problem = await refused(
        await client.get(f"{NB}/{world.notebook}/file", headers=world.owner.auth),
        404,
        "file_not_kept",
    )
    assert problem["detail"].startswith("No copy of this notebook's file is kept yet")
    # Not a copy of another notebook's, nor of a deleted one.
    other = factory.notebook(world.owner, world.config)
    keep(factory, other, CODE)
    factory.conn.execute("update notebooks set deleted_at = now() where id = %s", (other,))
    await refused(
        await client.get(f"{NB}/{other}/file", headers=world.owner.auth), 404, "not_found", "id"
    )
    await refused(
        await client.get(f"{NB}/NOSUCHNOTEBK/file", headers=world.owner.auth),
        404,
        "not_found",
        "id",
    )
    await refused(
        await client.get(f"{NB}/nope/file", headers=world.owner.auth), 400, "invalid_id", "id"
    )
    await refused(
        await client.get(f"{NB}/{world.notebook}/file?raw=1", headers=world.owner.auth),
        400,
        "unknown_parameter",
    )


async def test_before_its_first_run_a_notebook_brought_as_a_file_gives_that_file(
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
    assert resp.status == 201, await resp.text()
    notebook = (await body_of(resp))["item"]["notebookId"]
    got = await client.get(f"{NB}/{notebook}/file", headers=world.owner.auth)
    assert got.status == 200, await got.text()
    assert await got.text() == CODE
    assert got.headers["Last-Modified"] == "Sun, 01 Nov 2026 12:00:00 GMT"  # its creation
    # Once a copy is kept, the copy is what it is (the editor changed it).
    keep(factory, notebook, CODE + "# mended\n", minutes_ago=0)
    got = await client.get(f"{NB}/{notebook}/file", headers=world.owner.auth)
    assert await got.text() == CODE + "# mended\n"


async def test_the_openapi_document_describes_the_download(client: TestClient) -> None:
    doc = await body_of(await client.get(V1 + "/openapi.json"))
    op = doc["paths"]["/api/v1/workloads/notebooks/{id}/file"]["get"]
    ok = op["responses"]["200"]
    assert ok["content"] == {"text/x-python": {"schema": {"type": "string"}}}
    assert set(ok["headers"]) == {"ETag", "Last-Modified", "Content-Disposition"}
    assert {"304", "404"} <= set(op["responses"])


async def test_a_notebook_starts_as_a_copy_of_one_the_member_can_see(
    client: TestClient, world: World, factory: Factory
) -> None:
    """A team's template, shared with it: a viewer makes a notebook of their
    own from its file (`copyOf`), which its first start writes."""
    keep(factory, world.notebook, CODE)
    body = {"name": "mine", "workloadConfigId": world.config, "copyOf": world.notebook}
    resp = await client.post(NB, json=body, headers=world.viewer.auth)
    assert resp.status == 201, await resp.text()
    created = await body_of(resp)
    item, nb = created["item"], created["included"]["notebooks"][0]
    assert nb["memberId"] == world.viewer.id and item["teamIds"] == []
    assert (
        factory.value(
            "select source from notebook_seeds where notebook_id = %s", item["notebookId"]
        )
        == CODE
    )
    got = await client.get(f"{NB}/{item['notebookId']}/file", headers=world.viewer.auth)
    assert await got.text() == CODE
    # The original is untouched, and not the copy's: edits to one are not the other's.
    keep(factory, world.notebook, CODE + "# the template moved on\n")
    got = await client.get(f"{NB}/{item['notebookId']}/file", headers=world.viewer.auth)
    assert await got.text() == CODE


async def test_a_copy_of_what_cannot_be_copied_is_refused_and_writes_nothing(
    client: TestClient, world: World, factory: Factory
) -> None:
    before = factory.value("select count(*) from notebooks")
    body = {"name": "mine", "workloadConfigId": world.config, "copyOf": world.notebook}
    # Nothing kept yet.
    problem = await refused(
        await client.post(NB, json=body, headers=world.owner.auth), 409, "file_not_kept", "copyOf"
    )
    assert problem["detail"].startswith("Nothing to copy yet: No copy of this notebook's file")
    keep(factory, world.notebook, CODE)
    # A notebook the caller cannot see, in this organization or another, is
    # none: its existence is not told.
    for who in (world.outsider, world.stranger):
        await refused(
            await client.post(NB, json=body, headers=who.auth),
            400,
            "unknown_reference",
            "copyOf",
        )
    # A file and a copy at once: which would it be?
    both = {**body, "source": {"format": "py", "content": CODE}}
    await refused(
        await client.post(NB, json=both, headers=world.owner.auth),
        400,
        "invalid_value",
        "copyOf",
    )
    await refused(
        await client.post(NB, json={**body, "copyOf": "no such"}, headers=world.owner.auth),
        400,
        "invalid_id",
        "copyOf",
    )
    assert factory.value("select count(*) from notebooks") == before

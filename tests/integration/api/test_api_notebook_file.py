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


def keep(factory: Factory, notebook: str, content: str, minutes_ago: int = 5) -> str:
    """A new version, as the reconciler writes it (reconciler_keep_file); its number."""
    row = factory.conn.execute(
        "insert into notebook_files (notebook_id, content, kept_at, session_id)"
        " values (%s, %s, %s, 'S1') returning id",
        (notebook, content, factory.clock.now() - timedelta(minutes=minutes_ago)),
    ).fetchone()
    assert row is not None
    return str(row[0])


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
    for path, status, code, field in (
        (f"{other}/file", 404, "not_found", "id"),
        ("NOSUCHNOTEBK/file", 404, "not_found", "id"),
        ("nope/file", 400, "invalid_id", "id"),
        (f"{world.notebook}/file?raw=1", 400, "unknown_parameter", None),
    ):
        resp = await client.get(f"{NB}/{path}", headers=world.owner.auth)
        await refused(resp, status, code, field)


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


async def test_earlier_versions_are_listed_and_downloaded(
    client: TestClient, world: World, factory: Factory
) -> None:
    """A cell deleted and then saved over is in an earlier version."""
    first = keep(factory, world.notebook, CODE, minutes_ago=30)
    second = keep(factory, world.notebook, CODE + "# more\n", minutes_ago=20)
    newest = keep(factory, world.notebook, "# all but gone\n", minutes_ago=10)
    url = f"{NB}/{world.notebook}/file"
    for who in (world.owner, world.admin, world.team_admin, world.editor):
        listed = await body_of(await client.get(url + "/versions", headers=who.auth))
        assert listed == {
            "total": 3,
            "items": [
                {
                    "version": newest,
                    "keptAt": "2026-11-01T11:50:00+00:00",
                    "sessionId": "S1",
                    "bytes": 15,
                    "restoredFrom": None,
                },
                {
                    "version": second,
                    "keptAt": "2026-11-01T11:40:00+00:00",
                    "sessionId": "S1",
                    "bytes": len((CODE + "# more\n").encode()),
                    "restoredFrom": None,
                },
                {
                    "version": first,
                    "keptAt": "2026-11-01T11:30:00+00:00",
                    "sessionId": "S1",
                    "bytes": len(CODE.encode()),
                    "restoredFrom": None,
                },
            ],
        }
    got = await client.get(f"{url}?version={first}", headers=world.editor.auth)
    assert got.status == 200 and await got.text() == CODE
    assert got.headers["Last-Modified"] == "Sun, 01 Nov 2026 11:30:00 GMT"
    assert await (await client.get(url, headers=world.owner.auth)).text() == "# all but gone\n"

    # A version of another notebook is none of this one's.
    other = factory.notebook(world.owner, world.config)
    foreign = keep(factory, other, "# other\n")
    await refused(
        await client.get(f"{url}?version={foreign}", headers=world.owner.auth),
        404,
        "not_found",
        "version",
    )
    for bad in ("0", "abc", "-1", "1" * 19, ""):
        await refused(
            await client.get(f"{url}?version={bad}", headers=world.owner.auth),
            400,
            "invalid_value",
            "version",
        )
    for who in (world.outsider, world.stranger):
        await refused(await client.get(url + "/versions", headers=who.auth), 404, "not_found", "id")
    none = await body_of(await client.get(f"{NB}/{other}/file/versions", headers=world.owner.auth))
    assert none["total"] == 1
    fresh = factory.notebook(world.owner, world.config)
    empty = await body_of(await client.get(f"{NB}/{fresh}/file/versions", headers=world.owner.auth))
    assert empty == {"total": 0, "items": []}


async def test_a_team_viewer_reads_the_newest_version_only(
    client: TestClient, world: World, factory: Factory
) -> None:
    """An earlier version may hold what the owner took out (a key pasted,
    then removed): a viewer reads what the editor shows, the newest."""
    first = keep(factory, world.notebook, CODE + "KEY = 'sk-live-123'\n", minutes_ago=30)
    keep(factory, world.notebook, CODE, minutes_ago=10)
    url = f"{NB}/{world.notebook}/file"
    got = await client.get(url, headers=world.viewer.auth)
    assert got.status == 200 and await got.text() == CODE
    for path in (f"{url}?version={first}", url + "/versions"):
        problem = await refused(await client.get(path, headers=world.viewer.auth), 403, "forbidden")
        assert problem["detail"].startswith("A team viewer reads the newest version")
    for who in (world.outsider, world.stranger):
        await refused(
            await client.get(f"{url}?version={first}", headers=who.auth), 404, "not_found", "id"
        )


async def test_earlier_versions_are_forgotten_by_whoever_administers_it(
    client: TestClient, world: World, factory: Factory
) -> None:
    for minutes in (30, 20):
        keep(factory, world.notebook, f"{CODE}# {minutes}\n", minutes_ago=minutes)
    newest = keep(factory, world.notebook, CODE, minutes_ago=10)
    url = f"{NB}/{world.notebook}/file/versions"
    for who in (world.viewer, world.editor):  # they change no more than its code
        await refused(await client.delete(url, headers=who.auth), 403, "forbidden")
    for who in (world.outsider, world.stranger):
        await refused(await client.delete(url, headers=who.auth), 404, "not_found", "id")
    assert factory.value("select count(*) from notebook_files") == 3
    resp = await client.delete(url, headers=world.team_admin.auth)
    assert resp.status == 204, await resp.text()
    listed = await body_of(await client.get(url, headers=world.owner.auth))
    assert [v["version"] for v in listed["items"]] == [newest]
    history = await body_of(
        await client.get(f"{NB}/{world.notebook}/events", headers=world.owner.auth)
    )
    assert history["items"][0]["reason"] == "Forgot 2 earlier versions of its file"
    assert history["items"][0]["actor"] == world.team_admin.id
    # Nothing more to forget: no answer but 204, and nothing in the history.
    assert (await client.delete(url, headers=world.owner.auth)).status == 204
    again = await body_of(
        await client.get(f"{NB}/{world.notebook}/events", headers=world.owner.auth)
    )
    assert again["total"] == history["total"]
    got = await client.get(f"{NB}/{world.notebook}/file", headers=world.owner.auth)
    assert await got.text() == CODE


async def test_the_openapi_document_describes_the_download(client: TestClient) -> None:
    doc = await body_of(await client.get(V1 + "/openapi.json"))
    op = doc["paths"]["/api/v1/workloads/notebooks/{id}/file"]["get"]
    ok = op["responses"]["200"]
    assert ok["content"] == {"text/x-python": {"schema": {"type": "string"}}}
    assert set(ok["headers"]) == {"ETag", "Last-Modified", "Content-Disposition"}
    assert {"304", "403", "404"} <= set(op["responses"])
    version = next(p for p in op["parameters"] if p["name"] == "version")
    assert (version["name"], version["in"], version["required"]) == ("version", "query", False)
    # Every write may meet a read-only token's 403.
    for path, ops in doc["paths"].items():
        for method, write in ops.items():
            if method in ("post", "put", "patch", "delete"):
                assert "403" in write["responses"], (method, path)


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
    assert problem["detail"] == (
        "That notebook has no copy of its file to start from yet: one is kept once it has run."
    )
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

"""Notebook endpoints: success shapes, state rules, enqueue in the same
transaction, and the error paths."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from api_factories import Factory, World, body_of

NB = "/api/v1/workloads/notebooks"


async def create(client: TestClient, world: World, **extra: Any) -> Any:
    resp = await client.post(
        NB,
        json={"name": "Sales", "workloadConfigId": world.config, **extra},
        headers=world.owner.auth,
    )
    assert resp.status == 201, await resp.text()
    return await body_of(resp)


async def test_create_returns_describe_shape_in_stopped(client: TestClient, world: World) -> None:
    body = await create(client, world, description="q3", teamIds=[world.team])
    item = body["item"]
    assert set(item) == {"notebookId", "teamIds", "workloadConfigId"}
    assert item["teamIds"] == [world.team] and item["workloadConfigId"] == world.config
    (nb,) = body["included"]["notebooks"]
    assert nb["id"] == item["notebookId"] and nb["status"] == "stopped"
    assert nb["sessionId"] is None and nb["memberId"] == world.owner.id
    assert nb["idleTimeoutSeconds"] == 3600 and nb["detachedTimeoutSeconds"] == 14400
    assert nb["createdAt"] == "2026-11-01T12:00:00+00:00"
    assert [t["id"] for t in body["included"]["teams"]] == [world.team]
    assert [c["id"] for c in body["included"]["workloadConfigs"]] == [world.config]
    assert world.owner.id in [m["id"] for m in body["included"]["members"]]


async def test_describe_has_etag_and_if_none_match(client: TestClient, world: World) -> None:
    resp = await client.get(f"{NB}/{world.notebook}", headers=world.owner.auth)
    assert resp.status == 200
    etag = resp.headers["ETag"]
    again = await client.get(
        f"{NB}/{world.notebook}", headers={**world.owner.auth, "If-None-Match": etag}
    )
    assert again.status == 304


async def test_head_answers_like_get_without_a_body(client: TestClient, world: World) -> None:
    url = f"{NB}/{world.notebook}"
    get = await client.get(url, headers=world.owner.auth)
    head = await client.head(url, headers=world.owner.auth)
    assert head.status == 200 and head.headers["ETag"] == get.headers["ETag"]
    assert await head.read() == b""
    assert (await client.head(NB, headers=world.owner.auth)).status == 200
    assert (await client.head(url, headers=world.outsider.auth)).status == 404


async def test_etag_changes_with_included_and_if_none_match_is_weak_and_a_list(
    client: TestClient, world: World
) -> None:
    url = f"{NB}/{world.notebook}"
    etag = (await client.get(url, headers=world.owner.auth)).headers["ETag"]
    for header in (f'"other", {etag}', f"W/{etag}", "*"):
        resp = await client.get(url, headers={**world.owner.auth, "If-None-Match": header})
        assert resp.status == 304, header
    # Renaming the notebook's config changes the describe body: no stale 304.
    renamed = await client.patch(
        f"/api/v1/workloads/configs/{world.config}",
        json={"name": "bigger"},
        headers=world.admin.auth,
    )
    assert renamed.status == 200
    resp = await client.get(url, headers={**world.owner.auth, "If-None-Match": etag})
    assert resp.status == 200
    assert (await body_of(resp))["included"]["workloadConfigs"][0]["name"] == "bigger"


async def test_patch_with_stale_if_match_is_412(client: TestClient, world: World) -> None:
    url = f"{NB}/{world.notebook}"
    etag = (await client.get(url, headers=world.owner.auth)).headers["ETag"]
    ok = await client.patch(
        url, json={"name": "renamed"}, headers={**world.owner.auth, "If-Match": etag}
    )
    assert ok.status == 200
    assert (await body_of(ok))["included"]["notebooks"][0]["name"] == "renamed"
    stale = await client.patch(
        url, json={"name": "again"}, headers={**world.owner.auth, "If-Match": etag}
    )
    assert stale.status == 412
    assert (await body_of(stale))["code"] == "etag_mismatch"


async def test_if_match_on_a_write_without_an_etag_is_412_and_writes_nothing(
    client: TestClient, world: World, factory: Factory
) -> None:
    """RFC 9110 13.1.1: a condition that cannot hold stops the method; only
    `*` (the resource exists) passes where no ETag is kept."""
    url = f"/api/v1/workloads/configs/{world.config}"
    h = {**world.admin.auth, "If-Match": '"nope"'}
    for method, path, body in (
        ("PATCH", url, {"description": "changed"}),
        ("POST", "/api/v1/teams", {"name": "new team"}),
        ("DELETE", url, None),
        ("POST", f"{NB}/{world.notebook}/start", None),
    ):
        resp = await client.request(method, path, json=body, headers=h)
        assert resp.status == 412, await resp.text()
        problem = await body_of(resp)
        assert (problem["code"], problem["field"]) == ("etag_mismatch", "If-Match")
    assert (
        factory.value("select description from workload_configs where id = %s", world.config) == ""
    )
    assert factory.value("select count(*) from teams where name = 'new team'") == 0
    assert factory.value("select status from notebooks where id = %s", world.notebook) == "stopped"
    resp = await client.patch(
        url, json={"description": "changed"}, headers={**world.admin.auth, "If-Match": "*"}
    )
    assert resp.status == 200, await resp.text()


async def test_delete_of_a_notebook_holds_to_its_etag(
    client: TestClient, world: World, factory: Factory
) -> None:
    """The notebook's URI keeps an ETag (its GET's): a DELETE with a stale one
    is 412 and deletes nothing; with the current one it deletes."""
    url = f"{NB}/{world.notebook}"
    resp = await client.get(url, headers=world.admin.auth)
    etag = resp.headers["ETag"]
    stale = {**world.admin.auth, "If-Match": '"stale"'}
    resp = await client.delete(url, headers=stale)
    assert resp.status == 412, await resp.text()
    assert (await body_of(resp))["code"] == "etag_mismatch"
    assert factory.value("select deleted_at from notebooks where id = %s", world.notebook) is None
    resp = await client.delete(url, headers={**world.admin.auth, "If-Match": etag})
    assert resp.status == 204, await resp.text()
    assert factory.value("select desired_state from notebooks where id = %s", world.notebook) == (
        "deleted"
    )


async def test_start_sets_starting_session_and_enqueues(
    client: TestClient, world: World, factory: Factory
) -> None:
    resp = await client.post(f"{NB}/{world.notebook}/start", headers=world.editor.auth)
    assert resp.status == 202, await resp.text()
    nb = (await body_of(resp))["included"]["notebooks"][0]
    assert nb["status"] == "starting" and nb["sessionId"]
    assert nb["lastActiveAt"] == "2026-11-01T12:00:00+00:00"
    assert factory.jobs(world.notebook) == 1
    assert (
        factory.value("select desired_state from notebooks where id = %s", world.notebook)
        == "running"
    )
    assert factory.value("select generation from notebooks where id = %s", world.notebook) == 2
    assert factory.value(
        "select session_token is not null from notebooks where id = %s", world.notebook
    )
    assert (
        factory.value(
            "select actor from notebook_events where notebook_id = %s and to_status = 'starting'",
            world.notebook,
        )
        == world.editor.id
    )
    again = await client.post(f"{NB}/{world.notebook}/start", headers=world.editor.auth)
    assert again.status == 409
    assert (await body_of(again))["code"] == "notebook_not_startable"


async def test_stop_only_from_stoppable(client: TestClient, world: World, factory: Factory) -> None:
    resp = await client.post(f"{NB}/{world.notebook}/stop", headers=world.owner.auth)
    assert resp.status == 409 and (await body_of(resp))["code"] == "notebook_not_stoppable"
    assert factory.jobs(world.notebook) == 0
    running = factory.notebook(world.owner, world.config, status="running")
    resp = await client.post(f"{NB}/{running}/stop", headers=world.owner.auth)
    assert resp.status == 202
    assert (await body_of(resp))["included"]["notebooks"][0]["status"] == "stopping"
    assert factory.value("select desired_state from notebooks where id = %s", running) == "stopped"
    assert factory.jobs(running) == 1


async def test_config_change_only_when_stopped(
    client: TestClient, world: World, factory: Factory
) -> None:
    other = factory.config(world.org)
    running = factory.notebook(world.owner, world.config, status="idle")
    resp = await client.patch(
        f"{NB}/{running}", json={"workloadConfigId": other}, headers=world.owner.auth
    )
    assert resp.status == 409 and (await body_of(resp))["code"] == "notebook_not_stopped"
    resp = await client.patch(
        f"{NB}/{world.notebook}", json={"workloadConfigId": other}, headers=world.owner.auth
    )
    assert resp.status == 200
    assert (await body_of(resp))["item"]["workloadConfigId"] == other
    assert factory.value("select generation from notebooks where id = %s", world.notebook) == 2
    assert factory.jobs(world.notebook) == 1


async def test_a_stop_is_not_kept_waiting_by_a_retry_back_off(
    client: TestClient, world: World, factory: Factory
) -> None:
    """The notebook's job waits out a failed pass's back-off (a minute at
    most): the stop, deduplicated into that job, brings it forward."""
    running = factory.notebook(world.owner, world.config, status="running")
    factory.conn.execute(
        "insert into pgqueuer (priority, entrypoint, payload, status, execute_after, dedupe_key)"
        " values (0, 'reconcile', %s, 'queued', now() + interval '60 seconds', %s)",
        (running.encode(), f"reconcile:{running}"),
    )
    resp = await client.post(f"{NB}/{running}/stop", headers=world.owner.auth)
    assert resp.status == 202
    assert factory.jobs(running) == 1  # the one job, not a second
    waits = factory.value(
        "select execute_after > now() from pgqueuer where dedupe_key = %s", f"reconcile:{running}"
    )
    assert waits is False


async def test_delete_hides_at_once_and_enqueues(
    client: TestClient, world: World, factory: Factory
) -> None:
    url = f"{NB}/{world.notebook}"
    assert (await client.delete(url, headers=world.owner.auth)).status == 204
    assert (await client.get(url, headers=world.owner.auth)).status == 404
    listed = await body_of(await client.get(NB, headers=world.owner.auth))
    assert listed["total"] == 0 and listed["items"] == []
    assert (
        factory.value("select desired_state from notebooks where id = %s", world.notebook)
        == "deleted"
    )
    assert factory.jobs(world.notebook) == 1
    assert (await client.delete(url, headers=world.owner.auth)).status == 404


async def test_a_failure_after_the_row_write_leaves_nothing_written(
    client: TestClient, world: World, factory: Factory, monkeypatch
) -> None:
    # Fault injected after the row and status writes, at the enqueue: the whole
    # request rolls back (row, event, job) and the client gets a problem, not a hang.
    async def broken(conn, ids):  # type: ignore[no-untyped-def]
        raise RuntimeError("queue unavailable")

    monkeypatch.setattr("api.notebooks.enqueue_reconcile", broken)
    resp = await client.post(f"{NB}/{world.notebook}/start", headers=world.owner.auth)
    assert resp.status == 500
    assert (await body_of(resp))["code"] == "internal_error"
    assert (
        factory.value(
            "select status || '/' || desired_state || '/' || generation"
            " from notebooks where id = %s",
            world.notebook,
        )
        == "stopped/stopped/1"
    )
    assert (
        factory.value("select count(*) from notebook_events where notebook_id = %s", world.notebook)
        == 0
    )
    assert factory.jobs(world.notebook) == 0

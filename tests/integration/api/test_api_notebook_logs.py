"""A notebook's logs (`GET`/`POST /workloads/notebooks/{id}/logs`,
docs/api.md "A notebook's logs"): what a worker last read of its Sail's and
Marimo's output, for whoever may manage it; an ask enqueues one read, asks
close together share it. (The reads themselves, from real processes:
tests/integration/reconciler/test_reconciler_logs.py.)"""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from api_factories import Factory, World, body_of, refused

V1 = "/api/v1"
NB = V1 + "/workloads/notebooks"


def log_jobs(factory: Factory, notebook: str) -> int:
    return int(
        factory.value(
            "select count(*) from pgqueuer where entrypoint = 'capture_logs' and payload = %s",
            notebook.encode(),
        )
    )


def running(factory: Factory, notebook: str) -> None:
    factory.conn.execute(
        "update notebooks set status = 'running', desired_state = 'running',"
        " session_id = 'S1' where id = %s",
        (notebook,),
    )


def read_by_a_worker(factory: Factory, notebook: str, *, answered: bool = True) -> None:
    """What reconciler_keep_logs and reconciler_answer_logs write."""
    factory.conn.execute(
        "insert into notebook_logs (notebook_id, captured_at, session_id, sail, sail_problem,"
        " marimo, marimo_problem) values (%s, %s, 'S1', 'sail says', null, null,"
        " 'It has no pod.') on conflict (notebook_id) do update set captured_at ="
        " excluded.captured_at, sail = excluded.sail, marimo_problem = excluded.marimo_problem",
        (notebook, factory.clock.now()),
    )
    if answered:
        factory.conn.execute(
            "update notebook_logs set answered_at = requested_at where notebook_id = %s",
            (notebook,),
        )


async def test_whoever_manages_the_notebook_reads_its_logs(
    client: TestClient, world: World, factory: Factory
) -> None:
    url = f"{NB}/{world.notebook}/logs"
    # Never read yet: said so, not an error (the page shows "none yet").
    first = await client.get(url, headers=world.owner.auth)
    assert first.status == 200, await first.text()
    assert await body_of(first) == {
        "notebookId": world.notebook,
        "status": "stopped",
        "capturedAt": None,
        "sessionId": None,
        "requestedAt": None,
        "waiting": False,
        "sail": {"text": None, "problem": None},
        "marimo": {"text": None, "problem": None},
    }
    read_by_a_worker(factory, world.notebook)
    for who in (world.owner, world.admin, world.team_admin, world.editor):
        resp = await client.get(url, headers=who.auth)
        assert resp.status == 200, await resp.text()
        got = await body_of(resp)
        assert got["capturedAt"] == "2026-11-01T12:00:00+00:00"
        assert got["sessionId"] == "S1"
        assert got["sail"] == {"text": "sail says", "problem": None}
        assert got["marimo"] == {"text": None, "problem": "It has no pod."}
        assert resp.headers["Cache-Control"] == "no-store"
    # A team viewer sees the notebook but not what its code printed.
    problem = await refused(await client.get(url, headers=world.viewer.auth), 403, "forbidden")
    assert "team viewer" in problem["detail"]
    for who in (world.outsider, world.stranger):
        await refused(await client.get(url, headers=who.auth), 404, "not_found", "id")
    await refused(await client.get(url), 401, "unauthorized")
    await refused(
        await client.get(f"{NB}/nope/logs", headers=world.owner.auth), 400, "invalid_id", "id"
    )
    await refused(
        await client.get(f"{url}?tail=5", headers=world.owner.auth), 400, "unknown_parameter"
    )


async def test_an_ask_enqueues_one_read_and_waits_for_it(
    client: TestClient, world: World, factory: Factory
) -> None:
    running(factory, world.notebook)
    url = f"{NB}/{world.notebook}/logs"
    resp = await client.post(url, headers=world.editor.auth)
    assert resp.status == 202, await resp.text()
    got = await body_of(resp)
    assert got["requestedAt"] == "2026-11-01T12:00:00+00:00"
    assert got["waiting"] is True
    assert got["capturedAt"] is None
    assert log_jobs(factory, world.notebook) == 1
    # Asked again while that one waits: the same ask, no second job.
    factory.clock.advance(4)
    again = await body_of(await client.post(url, headers=world.owner.auth))
    assert again["requestedAt"] == "2026-11-01T12:00:00+00:00"
    assert log_jobs(factory, world.notebook) == 1
    # A worker reads them: no longer waiting.
    read_by_a_worker(factory, world.notebook)
    answered = await body_of(await client.get(url, headers=world.owner.auth))
    assert answered["waiting"] is False
    assert answered["sail"]["text"] == "sail says"
    # Once answered, a new ask is a new read at once.
    later = await body_of(await client.post(url, headers=world.owner.auth))
    assert later["requestedAt"] == "2026-11-01T12:00:04+00:00"
    assert later["waiting"] is True
    assert log_jobs(factory, world.notebook) == 2
    # One that has waited longer than a few seconds (no worker took it, or
    # its job was lost) is asked again, with a job of its own.
    factory.clock.advance(5)
    stale = await body_of(await client.post(url, headers=world.owner.auth))
    assert stale["requestedAt"] == "2026-11-01T12:00:09+00:00"
    assert log_jobs(factory, world.notebook) == 3


async def test_an_ask_is_for_a_running_notebook_and_its_managers(
    client: TestClient, world: World, factory: Factory
) -> None:
    url = f"{NB}/{world.notebook}/logs"
    for status in ("stopped", "failed", "stopping"):
        factory.conn.execute(
            "update notebooks set status = %s where id = %s", (status, world.notebook)
        )
        problem = await refused(
            await client.post(url, headers=world.owner.auth), 409, "notebook_not_running"
        )
        assert "were read as it stopped" in problem["detail"]
    running(factory, world.notebook)
    await refused(await client.post(url, headers=world.viewer.auth), 403, "forbidden")
    for who in (world.outsider, world.stranger):
        await refused(await client.post(url, headers=who.auth), 404, "not_found", "id")
    await refused(
        await client.post(url, json={"tail": 10}, headers=world.owner.auth),
        400,
        "unknown_field",
        "tail",
    )
    assert log_jobs(factory, world.notebook) == 0
    assert factory.value("select count(*) from notebook_logs") == 0
    # Each status a session runs in may be asked.
    for status in ("starting", "running", "idle", "detached"):
        factory.conn.execute(
            "update notebooks set status = %s where id = %s", (status, world.notebook)
        )
        factory.clock.advance(6)
        resp = await client.post(url, headers=world.team_admin.auth)
        assert resp.status == 202, await resp.text()
    assert log_jobs(factory, world.notebook) == 4


async def test_a_read_only_token_reads_logs_and_asks_for_none(
    client: TestClient, world: World, factory: Factory
) -> None:
    running(factory, world.notebook)
    made = await client.post(
        f"{V1}/members/{world.owner.id}/tokens",
        json={"name": "watcher", "readOnly": True},
        headers=world.owner.auth,
    )
    assert made.status == 201, await made.text()
    auth = {"Authorization": f"Bearer {(await body_of(made))['token']}"}
    url = f"{NB}/{world.notebook}/logs"
    assert (await client.get(url, headers=auth)).status == 200
    await refused(await client.post(url, headers=auth), 403, "read_only_token")
    assert log_jobs(factory, world.notebook) == 0


async def test_the_logs_go_with_the_notebook(
    client: TestClient, world: World, factory: Factory
) -> None:
    read_by_a_worker(factory, world.notebook)
    resp = await client.delete(f"{NB}/{world.notebook}", headers=world.owner.auth)
    assert resp.status in (202, 204), await resp.text()
    await refused(
        await client.get(f"{NB}/{world.notebook}/logs", headers=world.owner.auth),
        404,
        "not_found",
        "id",
    )
    # (The row and its logs go with the workers' delete: test_reconciler_logs.py.)


async def test_an_ask_from_a_host_whose_clock_is_behind_still_waits(
    client: TestClient, world: World, factory: Factory
) -> None:
    running(factory, world.notebook)
    url = f"{NB}/{world.notebook}/logs"
    assert (await client.post(url, headers=world.owner.auth)).status == 202
    read_by_a_worker(factory, world.notebook)  # answered: the ask of 12:00:00
    factory.clock.advance(-10)  # another API host, ten seconds behind
    later = await body_of(await client.post(url, headers=world.owner.auth))
    assert later["waiting"] is True
    assert later["requestedAt"] == "2026-11-01T12:00:00.001+00:00"
    assert log_jobs(factory, world.notebook) == 2

"""Authentication and bad input: every failure is RFC 9457 problem+json with
a stable code and, for input, the field named. Nothing is half-written."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from api_factories import Factory, World, body_of

from api.app import create_app
from api.context import POOL
from common.clock import FakeClock
from common.settings import Settings

NB = "/api/v1/workloads/notebooks"


async def problem(resp: Any, status: int, code: str, field: str | None = None) -> dict:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    body = await body_of(resp)
    assert body["code"] == code and body["status"] == status
    assert {"type", "title", "detail"} <= set(body)
    if field is not None:
        assert body.get("field") == field
    return body


async def test_missing_and_unknown_tokens_are_401(client: TestClient) -> None:
    resp = await client.get(NB)
    await problem(resp, 401, "unauthorized")
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="notebooks"'
    await problem(
        await client.get(NB, headers={"Authorization": "Basic eDp5"}), 401, "unauthorized"
    )
    for sent in ("nbk_nope", "nbk_a b", "nbk_\u00e9", "nbk_" + "a" * 300):
        resp = await client.get(NB, headers={"Authorization": f"Bearer {sent}"})
        await problem(resp, 401, "invalid_token")
        assert resp.headers["WWW-Authenticate"] == (
            'Bearer realm="notebooks", error="invalid_token"'
        )
    resp = await client.get(NB, headers={"Authorization": "Bearer "})
    await problem(resp, 401, "unauthorized")  # none sent


async def test_revoked_token_and_disabled_member_stop_at_once(
    client: TestClient, world: World, factory: Factory
) -> None:
    resp = await client.post(
        f"/api/v1/members/{world.editor.id}/tokens",
        json={"name": "laptop"},
        headers=world.editor.auth,
    )
    assert resp.status == 201
    created = await body_of(resp)
    assert created["token"].startswith(created["prefix"]) and created["name"] == "laptop"
    second = {"Authorization": f"Bearer {created['token']}"}
    assert (await client.get("/api/v1/me", headers=second)).status == 200
    resp = await client.delete(
        f"/api/v1/members/{world.editor.id}/tokens/{created['id']}", headers=world.editor.auth
    )
    assert resp.status == 204
    await problem(await client.get("/api/v1/me", headers=second), 401, "invalid_token")
    assert (await client.get("/api/v1/me", headers=world.editor.auth)).status == 200
    resp = await client.delete(f"/api/v1/members/{world.editor.id}", headers=world.admin.auth)
    assert resp.status == 204
    await problem(await client.get("/api/v1/me", headers=world.editor.auth), 401, "invalid_token")


async def test_last_used_is_recorded_but_coalesced(
    client: TestClient, world: World, factory: Factory, clock
) -> None:
    sql = "select last_used_at from api_tokens where member_id = %s"
    assert factory.value(sql, world.owner.id) is None
    await client.get("/api/v1/me", headers=world.owner.auth)
    first = factory.value(sql, world.owner.id)
    assert first == clock.now()
    clock.advance(30)
    await client.get("/api/v1/me", headers=world.owner.auth)
    assert factory.value(sql, world.owner.id) == first
    clock.advance(31)
    await client.get("/api/v1/me", headers=world.owner.auth)
    assert factory.value(sql, world.owner.id) == clock.now()


BAD_BODIES = [
    ({"name": "", "workloadConfigId": "C"}, "invalid_length", "name"),
    ({"name": "   ", "workloadConfigId": "C"}, "invalid_value", "name"),
    ({"name": "x" * 129, "workloadConfigId": "C"}, "invalid_length", "name"),
    ({"name": "a\u0000b", "workloadConfigId": "C"}, "invalid_value", "name"),
    ({"name": "\u200b\u200d", "workloadConfigId": "C"}, "invalid_value", "name"),
    ({"name": " \u202e\ufeff", "workloadConfigId": "C"}, "invalid_value", "name"),
    ({"name": "a\u0001b", "workloadConfigId": "C"}, "invalid_value", "name"),
    ({"name": "two\nlines", "workloadConfigId": "C"}, "invalid_value", "name"),
    ({"name": 5, "workloadConfigId": "C"}, "wrong_type", "name"),
    ({"name": "n"}, "missing_field", "workloadConfigId"),
    ({"name": "n", "workloadConfigId": "C", "color": 1}, "unknown_field", "color"),
    ({"name": "n", "workloadConfigId": "bad-id"}, "invalid_id", "workloadConfigId"),
    (
        {"name": "n", "workloadConfigId": "C", "description": "d" * 2001},
        "invalid_length",
        "description",
    ),
    (
        {"name": "n", "workloadConfigId": "C", "idleTimeoutSeconds": 299},
        "out_of_range",
        "idleTimeoutSeconds",
    ),
    (
        {"name": "n", "workloadConfigId": "C", "detachedTimeoutSeconds": 604801},
        "out_of_range",
        "detachedTimeoutSeconds",
    ),
    (
        {"name": "n", "workloadConfigId": "C", "idleTimeoutSeconds": True},
        "wrong_type",
        "idleTimeoutSeconds",
    ),
    ({"name": "n", "workloadConfigId": "C", "teamIds": ["ok", 3]}, "invalid_id", "teamIds[0]"),
    ({"name": "n", "workloadConfigId": "C", "teamIds": "T"}, "wrong_type", "teamIds"),
]


@pytest.mark.parametrize(("body", "code", "field"), BAD_BODIES)
async def test_bad_create_bodies_name_the_field(
    client: TestClient, world: World, factory: Factory, body: dict, code: str, field: str
) -> None:
    await problem(await client.post(NB, json=body, headers=world.owner.auth), 400, code, field)
    assert factory.value("select count(*) from notebooks") == 1  # only the world's


async def test_malformed_json_wrong_type_and_content_type(client: TestClient, world: World) -> None:
    h = {**world.owner.auth, "Content-Type": "application/json"}
    await problem(await client.post(NB, data=b"{nope", headers=h), 400, "malformed_json", "body")
    await problem(await client.post(NB, data=b"[1]", headers=h), 400, "wrong_type", "body")
    await problem(
        await client.post(
            NB,
            data=b"name=x",
            headers={**world.owner.auth, "Content-Type": "application/x-www-form-urlencoded"},
        ),
        415,
        "unsupported_media_type",
        "Content-Type",
    )
    await problem(await client.post(NB, headers=world.owner.auth), 400, "missing_field", "name")


@pytest.mark.parametrize(
    "raw",
    [b"NaN", b"Infinity", b'{"name": NaN}', b'{"name": "n", "idleTimeoutSeconds": -Infinity}'],
)
async def test_json_that_python_reads_but_json_has_not_is_malformed(
    client: TestClient, world: World, raw: bytes
) -> None:
    h = {**world.owner.auth, "Content-Type": "application/json"}
    await problem(await client.post(NB, data=raw, headers=h), 400, "malformed_json", "body")


async def test_a_key_given_twice_is_malformed_json_not_last_wins(
    client: TestClient, world: World, factory: Factory
) -> None:
    h = {**world.owner.auth, "Content-Type": "application/json"}
    config = factory.value("select id from workload_configs limit 1")
    for raw in (
        f'{{"name": " bad ", "workloadConfigId": "{config}", "name": "ok"}}',
        f'{{"name": "ok", "workloadConfigId": "{config}", "teamIds": [], "teamIds": []}}',
    ):
        body = await problem(await client.post(NB, data=raw, headers=h), 400, "malformed_json")
        assert body["field"] == "body" and "twice" in body["detail"]
    assert factory.value("select count(*) from notebooks") == 1  # only the world's


async def test_a_client_supplied_name_is_echoed_short_and_printable(
    client: TestClient, world: World
) -> None:
    """An error names the key or parameter at fault, never as much of it as
    the client cares to send, nor characters no one can read or store."""
    h = {**world.owner.auth, "Content-Type": "application/json"}
    long = "k" * 100_000
    shown = "k" * 64 + "\u2026"
    cases = [
        ("POST", NB, f'{{"{long}": 1}}', "unknown_field", shown),
        (
            "POST",
            NB,
            r'{"\u0000\n\u001b[31m\ud800": 1}',
            "unknown_field",
            "\\u0000\\u000a\\u001b[31m\\ud800",
        ),
        ("GET", f"{NB}?{'k' * 5000}=1", None, "unknown_parameter", shown),
        ("GET", f"{NB}?%00%1B%E2%80%8B=1", None, "unknown_parameter", "\\u0000\\u001b\\u200b"),
    ]
    for method, url, data, code, field in cases:
        resp = await client.request(method, url, data=data, headers=h)
        assert len(await resp.read()) < 1000
        body = await problem(resp, 400, code, field)
        assert field in body["detail"] and "'" not in body["detail"]
    # A workload config's env: its keys are the client's too.
    resp = await client.post(
        "/api/v1/workloads/configs",
        json={"name": "c", "env": {long: "v"}},
        headers=world.admin.auth,
    )
    await problem(resp, 400, "invalid_length", "env." + "k" * 64 + "\u2026")


async def test_a_delete_takes_no_body_and_says_so_of_one(
    client: TestClient, world: World, factory: Factory
) -> None:
    """A field a DELETE does not take (a `force` it would silently ignore)
    is refused, as on every other route; no body, or `{}`, is fine."""
    url = f"{NB}/{world.notebook}"
    h = {**world.owner.auth, "Content-Type": "application/json"}
    await problem(
        await client.delete(url, data=b'{"force": true}', headers=h), 400, "unknown_field", "force"
    )
    await problem(
        await client.delete(url, data=b"force", headers={**world.owner.auth}),
        415,
        "unsupported_media_type",
        "Content-Type",
    )
    assert factory.value("select desired_state from notebooks where id = %s", world.notebook) != (
        "deleted"
    )
    assert (await client.delete(url, data=b"{}", headers=h)).status == 204


async def test_query_parameters_a_route_does_not_take_or_given_twice_are_refused(
    client: TestClient, world: World
) -> None:
    h = world.owner.auth
    await problem(await client.get(f"{NB}?limt=5", headers=h), 400, "unknown_parameter", "limt")
    await problem(
        await client.get(f"{NB}?limit=1&limit=50", headers=h), 400, "repeated_parameter", "limit"
    )
    await problem(
        await client.get(f"{NB}/{world.notebook}?limit=1", headers=h),
        400,
        "unknown_parameter",
        "limit",
    )
    assert (await client.get(f"{NB}?limit=5", headers=h)).status == 200
    assert (await client.get(f"{NB}/{world.notebook}", headers=h)).status == 200
    # Writes take none either, and refuse before they change anything.
    url = f"{NB}/{world.notebook}"
    for method, path in (("POST", "/start"), ("PATCH", ""), ("DELETE", "")):
        body = {"name": "renamed"} if method == "PATCH" else None
        resp = await client.request(method, f"{url}{path}?force=1", json=body, headers=h)
        await problem(resp, 400, "unknown_parameter", "force")
        resp = await client.request(method, f"{url}{path}?force=1&force=2", json=body, headers=h)
        await problem(resp, 400, "unknown_parameter", "force")
    (nb,) = (await body_of(await client.get(url, headers=h)))["included"]["notebooks"]
    assert nb["status"] == "stopped" and nb["name"] != "renamed"


async def test_a_body_that_does_not_decode_is_400_not_500(
    client: TestClient, world: World, factory: Factory
) -> None:
    async def chunks():  # sent after the headers, so the handler's read meets the error
        yield b"this is not gzip"

    h = {**world.owner.auth, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    resp = await client.post(NB, data=chunks(), headers=h)
    await problem(resp, 400, "malformed_body", "body")
    assert factory.value("select count(*) from notebooks") == 1  # only the world's


async def test_other_organizations_references_are_400(
    client: TestClient, world: World, factory: Factory
) -> None:
    foreign_org = world.stranger.org
    foreign_config, foreign_team = factory.config(foreign_org), factory.team(foreign_org)
    await problem(
        await client.post(
            NB, json={"name": "n", "workloadConfigId": foreign_config}, headers=world.owner.auth
        ),
        400,
        "unknown_reference",
        "workloadConfigId",
    )
    await problem(
        await client.post(
            NB,
            json={
                "name": "n",
                "workloadConfigId": world.config,
                "teamIds": [world.team, foreign_team],
            },
            headers=world.owner.auth,
        ),
        400,
        "unknown_reference",
        "teamIds[1]",
    )
    await problem(
        await client.post(
            f"{NB}/{world.notebook}/teams",
            json={"teamIds": [foreign_team]},
            headers=world.owner.auth,
        ),
        400,
        "unknown_reference",
        "teamIds[0]",
    )
    assert factory.value("select count(*) from notebooks") == 1
    assert factory.value("select count(*) from notebook_teams") == 1


async def test_bad_ids_parameters_and_routes(client: TestClient, world: World) -> None:
    h = world.owner.auth
    await problem(await client.get(f"{NB}/lower-case", headers=h), 400, "invalid_id", "id")
    await problem(await client.get(f"{NB}/{'A' * 21}", headers=h), 400, "invalid_id", "id")
    await problem(await client.get(f"{NB}/NOSUCHNOTEBOOK", headers=h), 404, "not_found")
    await problem(await client.get(NB + "?limit=101", headers=h), 400, "out_of_range", "limit")
    await problem(await client.get(NB + "?limit=-1", headers=h), 400, "out_of_range", "limit")
    await problem(await client.get(NB + "?limit=x", headers=h), 400, "out_of_range", "limit")
    await problem(await client.get("/api/v1/nothing", headers=h), 404, "not_found")
    await problem(await client.put(NB, headers=h), 405, "method_not_allowed")
    await problem(
        await client.post(f"{NB}/{world.notebook}/start", json={"x": 1}, headers=h),
        400,
        "unknown_field",
        "x",
    )


async def test_a_token_that_is_not_text_is_401_not_500(client: TestClient) -> None:
    # aiohttp hands undecodable header bytes on as surrogates; no hash takes them.
    for token in ("\xff\xfe", "nbk_é"):
        await problem(
            await client.get(NB, headers={"Authorization": f"Bearer {token}"}),
            401,
            "invalid_token",  # sent, and refused
        )


CONFIGS = "/api/v1/workloads/configs"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sail": {"image": "img\n"}}, "sail.image"),
        ({"sail": {"image": "a\u0000b"}}, "sail.image"),
        ({"marimo": {"cpu": "1\n"}}, "marimo.cpu"),
        ({"marimo": {"memory": "1Gi\n"}}, "marimo.memory"),
        ({"env": {"FOO\n": "x"}}, "env"),
    ],
    ids=["image newline", "image NUL", "cpu newline", "memory newline", "env key newline"],
)
async def test_config_values_are_matched_whole(
    client: TestClient, world: World, factory: Factory, body: dict, field: str
) -> None:
    # A pattern's `$` also matches before a final newline; a NUL reaches
    # PostgreSQL's jsonb, which refuses it. Both are the caller's 400.
    resp = await client.post(CONFIGS, json={"name": "c", **body}, headers=world.admin.auth)
    got = await problem(resp, 400, "invalid_value")
    assert got["field"].startswith(field), got
    assert factory.value("select count(*) from workload_configs") == 1  # only the world's


async def test_deleting_a_config_while_a_notebook_takes_it_is_409_in_use(
    client: TestClient, world: World, factory: Factory, settings: Any
) -> None:
    """The create's check of its config holds the row until it commits, so a
    concurrent delete waits, then sees the notebook: 409, never a 500."""
    import asyncio

    import psycopg

    from sql import query

    config = factory.config(world.org)
    async with await psycopg.AsyncConnection.connect(settings.database_url) as creating:
        async with creating.transaction():
            # A create of a notebook, between its config check and its insert.
            await creating.execute(query("api_config_in_org"), {"id": config, "org_id": world.org})
            deleting = asyncio.ensure_future(
                client.delete(f"{CONFIGS}/{config}", headers=world.admin.auth)
            )
            while not factory.value(
                "select count(*) from pg_stat_activity"
                " where wait_event_type = 'Lock' and datname = current_database()"
            ):
                assert not deleting.done(), await deleting
                await asyncio.sleep(0.01)
            await creating.execute(
                "insert into notebooks (id, organization_id, member_id, workload_config_id,"
                " name, status, desired_state, created_at, created_by, updated_at, updated_by)"
                " select 'NBRACE1', %(org)s, %(owner)s, %(config)s, 'race', 'stopped',"
                " 'stopped', now(), %(owner)s, now(), %(owner)s",
                {"org": world.org, "owner": world.owner.id, "config": config},
            )
        await problem(await deleting, 409, "workload_config_in_use")


async def test_no_free_connection_is_503_with_retry_after_then_recovers(
    settings: Settings, clock: FakeClock, world: World
) -> None:
    """Every pooled connection busy past the wait: 503 database_unavailable
    with Retry-After (not a 500 after 30 s); served again once one is free."""
    tight = dataclasses.replace(settings, db_pool_max=2, db_pool_wait_seconds=1)
    async with TestClient(TestServer(create_app(tight, clock=clock))) as client:
        pool = client.app[POOL]
        async with pool.connection(), pool.connection():
            resp = await client.get("/api/v1/me", headers=world.owner.auth)
            await problem(resp, 503, "database_unavailable")
            assert resp.headers["Retry-After"] == "5"
        assert (await client.get("/api/v1/me", headers=world.owner.auth)).status == 200


async def test_a_database_restart_gives_503s_not_500s_until_reconnected(
    client: TestClient, world: World, factory: Factory
) -> None:
    """Every connection of the pool killed under it (a database restart or
    failover): requests answer 503 database_unavailable until the pool has
    reconnected, then 200; never a 500."""
    assert (await client.get("/api/v1/me", headers=world.owner.auth)).status == 200
    factory.value(
        "select count(pg_terminate_backend(pid)) from pg_stat_activity"
        " where datname = current_database() and pid <> pg_backend_pid()"
    )
    statuses = []
    for _ in range(50):
        resp = await client.get("/api/v1/me", headers=world.owner.auth)
        statuses.append(resp.status)
        if resp.status == 200:
            break
        await problem(resp, 503, "database_unavailable")
    assert statuses[-1] == 200 and set(statuses) <= {200, 503}, statuses
    assert 503 in statuses  # the dead connections were really met


async def test_a_request_stuck_behind_a_lock_is_503_database_timeout_then_recovers(
    settings: Settings, clock: FakeClock, world: World, factory: Factory
) -> None:
    """A start waits on the notebook's row, which another transaction holds:
    cancelled at the statement timeout (503 database_timeout, Retry-After),
    not a request hanging with its pooled connection; nothing was written."""
    import aiohttp
    import psycopg

    quick = dataclasses.replace(settings, db_statement_timeout_seconds=1)
    async with (
        TestClient(TestServer(create_app(quick, clock=clock))) as client,
        await psycopg.AsyncConnection.connect(settings.database_url) as holder,
    ):
        async with holder.transaction():
            await holder.execute(
                "select 1 from notebooks where id = %s for update", (world.notebook,)
            )
            resp = await client.post(
                f"{NB}/{world.notebook}/start",
                headers=world.owner.auth,
                timeout=aiohttp.ClientTimeout(total=15),  # without the limit: a hang
            )
            await problem(resp, 503, "database_timeout")
            assert resp.headers["Retry-After"] == "5"
        assert factory.value(
            "select desired_state from notebooks where id = %s", world.notebook
        ) == ("stopped")
        resp = await client.post(f"{NB}/{world.notebook}/start", headers=world.owner.auth)
        assert resp.status == 202, await resp.text()


async def test_a_deadlock_is_503_database_conflict_with_a_short_retry_after(
    client: TestClient, world: World, factory: Factory
) -> None:
    """PostgreSQL's deadlock error (SQLSTATE 40P01, raised here by a trigger
    so that the test need not race two transactions) is the client's cue to
    retry at once: 503 database_conflict, Retry-After 1; nothing written."""
    factory.conn.execute(
        "create function deadlock() returns trigger language plpgsql as $$"
        " begin raise exception 'deadlock detected' using errcode = '40P01'; end $$"
    )
    factory.conn.execute(
        "create trigger deadlock before update on notebooks"
        " for each row execute function deadlock()"
    )
    try:
        resp = await client.post(f"{NB}/{world.notebook}/start", headers=world.owner.auth)
        await problem(resp, 503, "database_conflict")
        assert resp.headers["Retry-After"] == "1"
    finally:
        factory.conn.execute("drop trigger deadlock on notebooks")
        factory.conn.execute("drop function deadlock()")
    assert factory.value("select desired_state from notebooks where id = %s", world.notebook) == (
        "stopped"
    )

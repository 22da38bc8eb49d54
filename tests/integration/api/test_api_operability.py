"""Operability: health and readiness, Prometheus metrics by route and status
with pool usage (on a listener of their own, never the public port), and one
canonical structured log line per request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import psycopg
import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer
from api_factories import Factory, World, body_of
from structlog.testing import capture_logs

import api.app
from common.clock import FakeClock
from common.db import add_options
from common.metrics import bound_port
from common.settings import Settings
from sql.migrate import MigrationError, migrate

NB = "/api/v1/workloads/notebooks"


async def test_healthz_and_readyz(client: TestClient, factory: Factory) -> None:
    assert (await client.get("/healthz")).status == 200
    resp = await client.get("/readyz")
    assert resp.status == 200 and (await body_of(resp))["status"] == "ready"
    factory.conn.execute(
        "delete from schema_migrations where version = (select max(version) from schema_migrations)"
    )
    resp = await client.get("/readyz")
    assert resp.status == 503 and (await body_of(resp))["status"] == "migrations_pending"


async def test_an_api_older_than_its_schema_does_not_start(
    settings: Settings, clock: FakeClock, factory: Factory
) -> None:
    """A rollback across a migration: /readyz would say ready (the files it
    knows are applied), yet its statements may no longer fit the schema. It
    refuses to start instead; running replicas are left serving."""
    factory.conn.execute(
        "insert into schema_migrations (version, name)"
        " select max(version) + 1, 'from_a_later_release' from schema_migrations"
    )
    app = api.app.create_app(settings, clock=clock)
    with pytest.raises(MigrationError, match="newer than this release's"):
        async with TestClient(TestServer(app)):
            pass


async def test_a_database_urls_own_options_are_kept(
    settings: Settings, clock: FakeClock, empty_database_url: str
) -> None:
    """A schema-scoped database (`options=-c search_path=nb` in the URL): the
    API pins its time zone beside the URL's options, as the worker and the
    proxy do, instead of in their place."""
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute("create schema nb")
    scoped = add_options(empty_database_url, "-c search_path=nb")
    await migrate(scoped)
    app = api.app.create_app(replace(settings, database_url=scoped), clock=clock)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/readyz")
        assert resp.status == 200 and (await body_of(resp))["status"] == "ready"


@pytest.fixture
async def scraped(settings: Settings, clock: FakeClock) -> AsyncIterator[tuple[TestClient, str]]:
    """The API as `main` serves it: a client of its public port, and the URL
    of its metrics listener (an OS-given port on loopback)."""
    app = api.app.create_app(settings, clock=clock, metrics_port=0)
    async with TestClient(TestServer(app)) as test_client:
        port = bound_port(app[api.app.METRICS_RUNNER])
        yield test_client, f"http://127.0.0.1:{port}/metrics"


async def test_metrics_are_not_served_on_the_public_port(
    scraped: tuple[TestClient, str],
) -> None:
    client, _ = scraped
    resp = await client.get("/metrics")
    assert resp.status == 404
    assert resp.content_type == "application/problem+json"
    assert (await body_of(resp))["code"] == "not_found"


async def test_metrics_count_requests_by_route_and_status(
    scraped: tuple[TestClient, str], world: World
) -> None:
    client, metrics_url = scraped
    await client.get(NB, headers=world.owner.auth)
    await client.get(f"{NB}/NOSUCH", headers=world.owner.auth)
    async with aiohttp.ClientSession() as http, http.get(metrics_url) as resp:
        assert resp.status == 200
        text = await resp.text()
    lines = text.splitlines()

    def value(prefix: str) -> float:
        (line,) = [ln for ln in lines if ln.startswith(prefix)]
        return float(line.rsplit(" ", 1)[1])

    assert (
        value(
            'notebooks_api_requests_total{method="GET",route="/api/v1/workloads/'
            'notebooks/{id}",status="404"}'
        )
        >= 1
    )
    assert (
        value(
            'notebooks_api_requests_total{method="GET",route="/api/v1/workloads/'
            'notebooks",status="200"}'
        )
        >= 1
    )
    assert (
        value(
            'notebooks_api_request_duration_seconds_count{method="GET",'
            'route="/api/v1/workloads/notebooks"}'
        )
        >= 1
    )
    assert value('notebooks_db_pool_connections{process="api",state="size"}') >= 1
    # Every route's series exists from the start.
    assert 'route="/api/v1/workloads/configs/{config}"' in text


async def test_one_canonical_log_line_per_request_with_request_id(
    client: TestClient, world: World, monkeypatch
) -> None:
    with capture_logs() as logs:
        # A fresh logger, in case an earlier test configured structlog to cache loggers.
        monkeypatch.setattr(api.app, "log", structlog.get_logger("api"))
        resp = await client.post(
            f"{NB}/{world.notebook}/start", headers={**world.owner.auth, "X-Request-Id": "abc-123"}
        )
        assert resp.status == 202
        resp2 = await client.get(f"{NB}/{world.notebook}", headers=world.stranger.auth)
    assert resp.headers["X-Request-Id"] == "abc-123"
    lines = [e for e in logs if e["event"] == "request"]
    assert len(lines) == 2
    first, second = lines
    assert first["status"] == 202 and first["route"] == "/api/v1/workloads/notebooks/{id}/start"
    assert first["member_id"] == world.owner.id and first["notebook_id"] == world.notebook
    assert first["duration_ms"] >= 0
    assert second["status"] == 404 and second["code"] == "not_found"
    assert second["request_id"] == resp2.headers["X-Request-Id"] != "abc-123"


async def test_console_is_served_from_static(client: TestClient, settings: Any) -> None:
    resp = await client.get("/")
    assert resp.status == 200 and resp.content_type == "text/html"
    assert "<html" in (await resp.text()).lower()
    # Its own scripts only, frames only from the proxy, never framed itself.
    policy = dict(
        part.strip().split(" ", 1) for part in resp.headers["Content-Security-Policy"].split(";")
    )
    assert policy["script-src"] == "'self'" and policy["object-src"] == "'none'"
    assert policy["frame-src"] == settings.proxy_public_url.rstrip("/")
    assert policy["frame-ancestors"] == "'none'"
    # The same page as /static/index.html (its scripts load from /static/ too)
    # is neither framed nor freer than at `/`.
    for path in ("/", "/static/index.html", "/static/api.js", "/api/v1/me"):
        headers = (await client.get(path)).headers
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["Referrer-Policy"] == "no-referrer", path
        assert headers["Content-Security-Policy"] == resp.headers["Content-Security-Policy"], path
    resp = await client.get("/static/api.js")
    assert resp.status == 200
    for missing in ("/static/../app.py", "/static/nope.js", "/static/", "/static/%2e%2e/app.py"):
        resp = await client.get(missing)
        assert resp.status == 404, missing
        assert resp.content_type == "application/problem+json", missing  # not an empty file
        assert (await resp.json())["code"] == "not_found", missing


async def test_console_files_are_revalidated_api_answers_never_stored_and_no_opener(
    client: TestClient, world: Any
) -> None:
    """After a deploy the browser never pairs a new page with old modules; a
    member's data never lands in its disk cache; no window the console did
    not open (a notebook's popup) keeps a handle on its tab."""
    for path in ("/", "/static/index.html", "/static/api.js", "/healthz"):
        resp = await client.get(path)
        assert resp.headers["Cache-Control"] == "no-cache", path
        assert resp.headers["Cross-Origin-Opener-Policy"] == "same-origin", path
    etag = (await client.get("/static/api.js")).headers["ETag"]
    again = await client.get("/static/api.js", headers={"If-None-Match": etag})
    assert again.status == 304  # revalidation is cheap
    for path in ("/api/v1/me", "/api/v1/members", f"/api/v1/workloads/notebooks/{world.notebook}"):
        resp = await client.get(path, headers=world.admin.auth)
        assert resp.headers["Cache-Control"] == "no-store", path
        assert resp.headers["Cross-Origin-Opener-Policy"] == "same-origin", path
    unauthenticated = await client.get("/api/v1/me")
    assert unauthenticated.status == 401 and unauthenticated.headers["Cache-Control"] == "no-store"


async def test_readyz_without_a_database_says_so_and_no_more(client: TestClient) -> None:
    from api.context import POOL

    await client.app[POOL].close()  # as if the database could not be reached
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert await body_of(resp) == {"status": "unavailable"}  # no error text to anyone

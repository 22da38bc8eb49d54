"""open and ping: only while provisioned; open mints a proxy login token for
the current session; ping records presence (coalesced) and wakes idle."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient
from api_factories import Factory, World, body_of

from common import session_token
from common.settings import Settings

NB = "/api/v1/workloads/notebooks"


@pytest.mark.parametrize("status", ["stopped", "starting", "stopping", "failed"])
async def test_open_and_ping_refused_unless_provisioned(
    client: TestClient, world: World, factory: Factory, status: str
) -> None:
    nb = factory.notebook(world.owner, world.config, status=status)
    for action in ("open", "ping"):
        resp = await client.post(f"{NB}/{nb}/{action}", headers=world.owner.auth)
        assert resp.status == 409
        assert (await body_of(resp))["code"] == "notebook_not_running"


async def assert_opens(
    client: TestClient, settings: Settings, clock, nb: str, session: str, who, mode: str
) -> None:
    """`who` opens `nb`: 200, exactly url/expiresAt/mode, and a proxy login
    URL whose token names `who`, the notebook, its current session and `mode`."""
    resp = await client.post(f"{NB}/{nb}/open", headers=who.auth)
    assert resp.status == 200, await resp.text()
    body = await body_of(resp)
    assert set(body) == {"url", "expiresAt", "mode"}
    assert body["mode"] == mode
    assert body["expiresAt"] == "2026-11-01T12:05:00Z"
    parts = urlsplit(body["url"])
    assert f"{parts.scheme}://{parts.netloc}" == settings.proxy_public_url
    assert parts.path == f"/notebooks/{nb}/_open"
    claims = session_token.verify(
        parse_qs(parts.query)["token"][0], settings.signing_keys, now=clock.now()
    )
    assert (claims.member_id, claims.notebook_id, claims.session_id, claims.mode) == (
        who.id,
        nb,
        session,
        mode,
    )


async def test_open_mints_token_for_current_session(
    client: TestClient, world: World, factory: Factory, settings: Settings, clock
) -> None:
    nb = factory.notebook(world.owner, world.config, status="idle")
    resp = await client.post(f"{NB}/{nb}/open", headers=world.editor.auth)
    assert resp.status == 404  # not shared with the editor's team: invisible
    session = factory.value("select session_id from notebooks where id = %s", nb)
    await assert_opens(client, settings, clock, nb, session, world.owner, "edit")


async def test_open_detached_mints_token_by_role(
    client: TestClient, world: World, factory: Factory, settings: Settings, clock
) -> None:
    """Detached is provisioned (DESIGN §4, §5): open answers 200 with the usual
    mode rules (nobody has it open, so the owner is not present)."""
    nb = factory.notebook(world.owner, world.config, status="detached", teams=(world.team,))
    session = factory.value("select session_id from notebooks where id = %s", nb)
    for who, mode in ((world.owner, "edit"), (world.editor, "edit"), (world.viewer, "view")):
        await assert_opens(client, settings, clock, nb, session, who, mode)


async def test_ping_wakes_idle_and_coalesces_presence(
    client: TestClient, world: World, factory: Factory, clock
) -> None:
    nb = factory.notebook(world.owner, world.config, status="idle", teams=(world.team,))
    resp = await client.post(f"{NB}/{nb}/ping", headers=world.viewer.auth)
    assert resp.status == 204
    assert factory.value("select status from notebooks where id = %s", nb) == "running"
    assert (
        factory.value(
            "select actor from notebook_events where notebook_id = %s and to_status = 'running'", nb
        )
        == world.viewer.id
    )
    first = factory.value(
        "select last_seen_at from notebook_presence where notebook_id = %s and member_id = %s",
        nb,
        world.viewer.id,
    )
    assert first == clock.now()
    assert factory.value("select last_active_at from notebooks where id = %s", nb) == first
    clock.advance(10)  # within the coalescing window: no write
    assert (await client.post(f"{NB}/{nb}/ping", headers=world.viewer.auth)).status == 204
    assert (
        factory.value("select last_seen_at from notebook_presence where notebook_id = %s", nb)
        == first
    )
    clock.advance(10)  # past it: written
    assert (await client.post(f"{NB}/{nb}/ping", headers=world.viewer.auth)).status == 204
    assert (
        factory.value("select last_seen_at from notebook_presence where notebook_id = %s", nb)
        == clock.now()
    )
    assert factory.value("select last_active_at from notebooks where id = %s", nb) == clock.now()


async def test_ping_detached_moves_to_running(
    client: TestClient, world: World, factory: Factory
) -> None:
    nb = factory.notebook(world.owner, world.config, status="detached")
    assert (await client.post(f"{NB}/{nb}/ping", headers=world.owner.auth)).status == 204
    assert factory.value("select status from notebooks where id = %s", nb) == "running"


async def test_open_points_at_the_notebooks_own_origin_when_there_is_one(
    settings: Settings, clock, world: World, factory: Factory
) -> None:
    """With NOTEBOOKS_PROXY_NOTEBOOK_URL the login URL is on the notebook's own
    host (the id lower-cased), and the console may frame any notebook host."""
    import dataclasses

    from aiohttp.test_utils import TestServer

    from api.app import create_app

    own = dataclasses.replace(settings, proxy_notebook_url="https://{id}.nb.example.com")
    nb = factory.notebook(world.owner, world.config, status="running")
    async with TestClient(TestServer(create_app(own, clock=clock))) as client:
        resp = await client.post(f"{NB}/{nb}/open", headers=world.owner.auth)
        assert resp.status == 200, await resp.text()
        url = urlsplit((await body_of(resp))["url"])
        assert (url.scheme, url.netloc, url.path) == (
            "https",
            f"{nb.lower()}.nb.example.com",
            f"/notebooks/{nb}/_open",
        )
        page = await client.get("/")
        assert "frame-src https://*.nb.example.com;" in page.headers["Content-Security-Policy"]

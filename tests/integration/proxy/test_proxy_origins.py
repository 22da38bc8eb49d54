"""One origin per notebook (NOTEBOOKS_PROXY_NOTEBOOK_URL): a notebook is
served only to requests that name its own host, and its WebSockets only to
pages of its own origin, so one notebook's pages cannot reach another's
(docs/proxy.md, "One origin per notebook"). Real proxy (express lane and
app), real PostgreSQL, an in-process upstream standing in for Marimo."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from proxy_helpers import ProxyUnderTest, aiohttp_upstream, proxy_in_front

from common.settings import Settings

NB = "NBORIGIN1"
TOKEN = "upstream-secret-token"
TEMPLATE = "http://{id}.nb.localhost"
OWN_HOST = "nborigin1.nb.localhost"
OTHER_HOST = "nbother22.nb.localhost"


def upstream_app() -> web.Application:
    async def echo(_: web.Request) -> web.Response:
        return web.Response(text="marimo")

    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for msg in sock:
            await sock.send_str(f"echo:{msg.data}")
        return sock

    app = web.Application()
    app.router.add_get(f"/notebooks/{NB}/echo", echo)
    app.router.add_get(f"/notebooks/{NB}/ws", ws)
    return app


@pytest.fixture
async def own_origins(settings: Settings) -> AsyncIterator[ProxyUnderTest]:
    per_notebook = dataclasses.replace(settings, proxy_notebook_url=TEMPLATE)
    async with (
        aiohttp_upstream(upstream_app()) as url,
        proxy_in_front(per_notebook, url, TOKEN, NB) as p,
    ):
        yield p


async def login(p: ProxyUnderTest, host: str) -> tuple[aiohttp.ClientSession, int]:
    client = p.client()
    async with client.get(
        p.open_url(p.token(p.world.owner)), headers={"Host": host}, allow_redirects=False
    ) as resp:
        return client, resp.status


async def test_a_notebook_is_served_on_its_own_host_only(own_origins: ProxyUnderTest) -> None:
    p = own_origins
    client, status = await login(p, OWN_HOST)
    try:
        assert status == 303
        async with client.get(p.url("/echo"), headers={"Host": OWN_HOST}) as resp:
            assert (resp.status, await resp.text()) == (200, "marimo")
        # The same cookie, sent from another notebook's host or the bare proxy's: refused.
        for host in (OTHER_HOST, p.base.removeprefix("http://"), "NBORIGIN1.nb.localhost.evil"):
            async with client.get(p.url("/echo"), headers={"Host": host}) as resp:
                assert resp.status == 404, host
        # Host names ignore case.
        async with client.get(p.url("/echo"), headers={"Host": OWN_HOST.upper()}) as resp:
            assert resp.status == 200
    finally:
        await client.close()


async def test_a_login_on_another_host_is_refused_before_its_token_is_spent(
    own_origins: ProxyUnderTest,
) -> None:
    p = own_origins
    token = p.token(p.world.owner)
    async with (
        p.client() as client,
        client.get(p.open_url(token), headers={"Host": OTHER_HOST}, allow_redirects=False) as resp,
    ):
        assert resp.status == 404 and "Set-Cookie" not in resp.headers
    async with (
        p.client() as client,
        client.get(p.open_url(token), headers={"Host": OWN_HOST}, allow_redirects=False) as resp,
    ):
        assert resp.status == 303


async def test_a_websocket_takes_only_its_own_notebooks_origin(
    own_origins: ProxyUnderTest,
) -> None:
    p = own_origins
    client, _ = await login(p, OWN_HOST)
    try:
        headers = {"Host": OWN_HOST}
        public = p.settings.proxy_public_url  # the bare proxy's pages are not this notebook's
        for origin in (f"http://{OTHER_HOST}", public, p.base, f"https://{OWN_HOST}"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await client.ws_connect(p.url("/ws"), origin=origin, headers=headers)
            assert refused.value.status == 403, origin
        async with client.ws_connect(
            p.url("/ws"), origin=f"http://{OWN_HOST}", headers=headers
        ) as ws:
            await ws.send_str("hi")
            assert await ws.receive_str(timeout=5) == "echo:hi"
    finally:
        await client.close()


async def test_a_template_in_capitals_still_matches_what_browsers_send(
    settings: Settings,
) -> None:
    """Host and Origin arrive lower-cased: a template written in capitals
    must not leave every WebSocket refused."""
    shouting = dataclasses.replace(settings, proxy_notebook_url="HTTP://{id}.NB.Localhost")
    async with (
        aiohttp_upstream(upstream_app()) as url,
        proxy_in_front(shouting, url, TOKEN, NB) as p,
    ):
        client, status = await login(p, OWN_HOST)
        try:
            assert status == 303
            async with client.ws_connect(
                p.url("/ws"), origin=f"http://{OWN_HOST}", headers={"Host": OWN_HOST}
            ) as ws:
                await ws.send_str("hi")
                assert await ws.receive_str(timeout=5) == "echo:hi"
        finally:
            await client.close()


async def test_with_secure_cookies_the_login_cookie_is_host_prefixed(settings: Settings) -> None:
    """On its own host, with Secure cookies, the login cookie is `__Host-…`
    (host-only, Path=/): a page of another notebook cannot plant one for this
    host with `Domain=` the shared parent, and the plain name is ignored."""
    secure = dataclasses.replace(settings, proxy_notebook_url=TEMPLATE, cookie_secure=True)
    host = {"Host": OWN_HOST}
    async with (
        aiohttp_upstream(upstream_app()) as url,
        proxy_in_front(secure, url, TOKEN, NB) as p,
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client,
    ):
        login = await client.get(
            p.open_url(p.token(p.world.owner)), headers=host, allow_redirects=False
        )
        login.release()
        assert login.status == 303
        set_cookie = login.headers["Set-Cookie"]
        name, _, rest = set_cookie.partition("=")
        value = rest.split(";", 1)[0]
        attrs = {a.strip().split("=")[0].lower() for a in rest.split(";")[1:]}
        assert name == "__Host-notebooks_proxy_session"
        assert "Path=/;" in set_cookie + ";" and "secure" in attrs and "domain" not in attrs
        for cookie, status in ((f"{name}={value}", 200), (f"notebooks_proxy_session={value}", 401)):
            async with client.get(p.url("/echo"), headers={**host, "Cookie": cookie}) as got:
                assert got.status == status, cookie

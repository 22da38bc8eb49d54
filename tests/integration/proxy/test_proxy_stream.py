"""Streaming through the proxy against a small in-process upstream that shows
what it received: headers filtered and injected, bodies streamed both ways
without buffering, WebSocket messages and close codes passed through. The
later tests drive the aiohttp path (what the express lane hands off: HEAD,
WebSocket handshakes, `Expect: 100-continue`): the whole header set upstream
gets, response headers, revocation, upstream refusals and metrics."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import time
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict
from prometheus_client.parser import text_string_to_metric_families
from proxy_helpers import (
    PAST_STOP,
    ProxyUnderTest,
    SteppingClock,
    aiohttp_upstream,
    api_token_of,
    eventually,
    free_port,
    insert_world,
    proxy_in_front,
    refreshes,
    serve_proxy,
    sql,
    wait_listening,
)
from yarl import URL

from common.settings import Settings
from common.statuses import SAVE_WINDOW_SECONDS
from proxy import metrics
from proxy.app import PROXY
from proxy.cookie import COOKIE_NAME
from proxy.live import Live

NB = "NBECHO1"
TOKEN = "upstream-secret-token"
UPSTREAM_CSP = "default-src 'self'"
KIOSK_READY = "kiosk-ready"  # the upstream's first message to a kiosk, like Marimo's kernel-ready


@dataclass(frozen=True)
class Seen:
    """One request as it reached the upstream."""

    method: str
    path_qs: str
    headers: list[tuple[str, str]]  # in wire order, names as sent
    port: int  # the upstream's own port (what `Host` must name)


class Upstream:
    def __init__(self) -> None:
        self.first_chunk_sent = asyncio.Event()
        self.client_got_first = asyncio.Event()
        self.upload_first = asyncio.Event()
        # How each upload's body ended for upstream: "complete" or "broken".
        self.uploads: list[str] = []
        self.upload_ended = asyncio.Event()
        self.ws_close_codes: list[int | None] = []
        self.big_text = b""  # what `big text` answers, as a frame of its own
        self.last_headers: dict[str, str] = {}
        self.last_query = ""
        # Every request that reached this upstream, its headers as on the wire.
        self.seen: list[Seen] = []

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.record])
        base = f"/notebooks/{NB}"
        app.router.add_get(base + "/echo", self.echo)
        app.router.add_get(base + "/banner", self.banner)  # and HEAD
        app.router.add_get(base + "/slash", self.slash)  # and HEAD
        app.router.add_get(base + "/stream", self.stream)
        app.router.add_post(base + "/upload", self.upload)
        app.router.add_post(base + "/upload-stream", self.upload_stream)
        app.router.add_get(base + "/ws", self.ws)
        app.router.add_get(base + "/ws-forbidden", self.ws_forbidden)
        app.router.add_get(base + "/not-a-socket", self.not_a_socket)
        return app

    @web.middleware
    async def record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]
        assert request.transport is not None
        port = request.transport.get_extra_info("sockname")[1]
        self.seen.append(Seen(request.method, request.raw_path, pairs, port))
        return await handler(request)

    async def slash(self, request: web.Request) -> web.Response:
        """Starlette's trailing-slash redirect: absolute, from the Host sent."""
        raise web.HTTPTemporaryRedirect(f"http://{request.host}{request.path}/")

    async def banner(self, _: web.Request) -> web.Response:
        """Headers an upstream may send that the client must not see as sent."""
        resp = web.Response(text="banner")
        resp.headers["Server"] = "marimo-secret/1.0"
        resp.headers["X-Powered-By"] = "uvicorn"
        resp.headers["X-Content-Type-Options"] = "upstream-value"
        resp.headers["Referrer-Policy"] = "unsafe-url"
        resp.headers["Content-Security-Policy"] = UPSTREAM_CSP
        resp.headers["Keep-Alive"] = "timeout=5"
        resp.headers["X-Upstream"] = "yes"
        return resp

    async def upload_stream(self, request: web.Request) -> web.StreamResponse:
        """Reads the body, then streams like /stream: never finishes unless the
        client has seen the first chunk."""
        body = await request.read()
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"got:" + body + b";")
        self.first_chunk_sent.set()
        await asyncio.wait_for(self.client_got_first.wait(), 10)
        await resp.write(b"second")
        await resp.write_eof()
        return resp

    async def ws_forbidden(self, _: web.Request) -> web.Response:
        """A socket route that refuses the handshake."""
        return web.Response(status=403, text="no socket for you")

    async def not_a_socket(self, _: web.Request) -> web.Response:
        """Not a WebSocket endpoint: answers an upgrade with a plain 200."""
        return web.Response(text="just a page")

    async def echo(self, request: web.Request) -> web.Response:
        self.last_headers = dict(request.headers)
        resp = web.json_response(
            {
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "path_qs": request.raw_path,
            }
        )
        resp.headers["Server"] = "marimo-secret/1.0"
        resp.headers["Keep-Alive"] = "timeout=5"
        resp.headers["X-Upstream"] = "yes"
        return resp

    async def stream(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"first;")
        self.first_chunk_sent.set()
        await asyncio.wait_for(self.client_got_first.wait(), 10)
        await resp.write(b"second")
        await resp.write_eof()
        return resp

    async def upload(self, request: web.Request) -> web.Response:
        got = b""
        try:
            async for chunk in request.content.iter_any():
                got += chunk
                if b"part1" in got:
                    self.upload_first.set()
        except BaseException:  # the proxy dropped the request mid-body
            self.uploads.append("broken")
            self.upload_ended.set()
            raise
        self.uploads.append("complete")
        self.upload_ended.set()
        return web.json_response({"received": got.decode()})

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        self.last_headers = dict(request.headers)
        self.last_query = request.rel_url.raw_query_string  # as sent
        # No size limit of its own (Marimo's is the proxy's: 16 MiB).
        ws = web.WebSocketResponse(protocols=("marimo-test",), max_msg_size=0)
        await ws.prepare(request)
        quiet = request.query.get("session_id", "").endswith("quiet")
        if request.query.get("kiosk") == "true" and not quiet:
            await ws.send_str(KIOSK_READY)  # as Marimo speaks first to a kiosk
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT and msg.data == "bye":
                await ws.close(code=4001, message=b"upstream says bye")
                break
            if msg.type == aiohttp.WSMsgType.TEXT and msg.data == "big text":
                await ws.send_frame(self.big_text, aiohttp.WSMsgType.TEXT)
                continue
            if msg.type == aiohttp.WSMsgType.TEXT and msg.data.startswith("big:"):
                await ws.send_str("x" * int(msg.data[4:]))  # an output that large
                continue
            if msg.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str("echo:" + msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(msg.data[::-1])
        self.ws_close_codes.append(ws.close_code)
        return ws


@contextlib.asynccontextmanager
async def echo_proxy(
    settings: Settings, **proxy_kwargs: object
) -> AsyncIterator[tuple[Upstream, ProxyUnderTest]]:
    """The in-process upstream and a proxy in front of it. No periodic
    re-check: revocations in these tests can only come from NOTIFY."""
    upstream = Upstream()
    async with (
        aiohttp_upstream(upstream.app()) as url,
        proxy_in_front(settings, url, TOKEN, NB, **proxy_kwargs) as p,
    ):
        yield upstream, p


@pytest.fixture
async def echo(settings: Settings) -> AsyncIterator[tuple[Upstream, ProxyUnderTest]]:
    async with echo_proxy(settings) as pair:
        yield pair


async def test_request_headers_filtered_and_marimo_token_injected(echo) -> None:  # type: ignore[no-untyped-def]
    _, p = echo
    session = await p.login(p.world.owner)
    try:
        session.cookie_jar.update_cookies({"other": "kept"})
        async with session.get(
            URL(p.url("/echo?x=1&y=%2F%20"), encoded=True),
            headers={
                "Authorization": "Bearer from-the-browser",
                "Connection": "keep-alive, X-Secret",
                "X-Secret": "hop",
                "Marimo-Session-Id": "s1",
                "Marimo-Server-Token": "t1",
                "Proxy-Authorization": "x",
                "TE": "trailers",
            },
        ) as resp:
            assert resp.status == 200
            body = await resp.json()
            got = body["headers"]
            assert body["path_qs"] == f"/notebooks/{NB}/echo?x=1&y=%2F%20"
            assert got["authorization"] == f"Bearer {TOKEN}"
            assert "cookie" not in got  # neither ours nor the browser's others
            assert "x-secret" not in got and "proxy-authorization" not in got and "te" not in got
            assert got["marimo-session-id"] == "s1" and got["marimo-server-token"] == "t1"
            assert got["x-forwarded-for"] == "127.0.0.1"
            assert got["x-forwarded-proto"] == "http"
            assert got["x-forwarded-host"] == f"127.0.0.1:{p.server.port}"
            # Response side: no banner from us or upstream, our security headers.
            assert "Server" not in resp.headers
            assert "Keep-Alive" not in resp.headers
            assert resp.headers["X-Upstream"] == "yes"
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert resp.headers["Content-Security-Policy"] == "frame-ancestors 'self'"
    finally:
        await session.close()


async def test_view_sessions_marimo_session_id_is_namespaced(echo) -> None:  # type: ignore[no-untyped-def]
    _, p = echo
    session = await p.login(p.world.viewer, "view")
    try:
        async with session.get(
            p.url("/echo"), headers={"Marimo-Session-Id": "s1", "Marimo-Server-Token": "t1"}
        ) as resp:
            got = (await resp.json())["headers"]
        # The id its kiosk `/ws` was registered under, never an editor's.
        assert got["marimo-session-id"] == "view-s1" and got["marimo-server-token"] == "t1"
    finally:
        await session.close()


async def test_response_body_is_streamed_not_buffered(echo) -> None:  # type: ignore[no-untyped-def]
    upstream, p = echo
    session = await p.login(p.world.owner)
    try:
        async with session.get(p.url("/stream")) as resp:
            # Upstream withholds the rest until we have seen the first chunk.
            first = await asyncio.wait_for(resp.content.readexactly(6), 10)
            assert first == b"first;"
            upstream.client_got_first.set()
            assert await asyncio.wait_for(resp.content.read(), 10) == b"second"
    finally:
        await session.close()


async def test_request_body_is_streamed_not_buffered(echo) -> None:  # type: ignore[no-untyped-def]
    upstream, p = echo
    session = await p.login(p.world.owner)

    async def body() -> AsyncIterator[bytes]:
        yield b"part1-"
        # Upstream must see part1 before we send more: no buffering in between.
        await asyncio.wait_for(upstream.upload_first.wait(), 10)
        yield b"part2"

    try:
        async with session.post(p.url("/upload"), data=body()) as resp:
            assert resp.status == 200
            assert (await resp.json())["received"] == "part1-part2"
    finally:
        await session.close()


async def test_a_browser_message_over_the_limit_ends_the_socket_with_1009(
    echo,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from proxy import forward

    assert forward.BROWSER_MESSAGE_LIMIT == 16 * 1024 * 1024  # uvicorn's ws_max_size
    monkeypatch.setattr(forward, "BROWSER_MESSAGE_LIMIT", 64 * 1024)  # the same code, faster
    limit = forward.BROWSER_MESSAGE_LIMIT
    upstream, p = echo
    session = await p.login(p.world.owner)
    try:
        async with session.ws_connect(p.url("/ws"), origin=p.origin) as ws:
            # Under the limit: passed on (the echo answers it reversed).
            await ws.send_bytes(b"a" * (limit - 2) + b"b")
            assert (await ws.receive_bytes(timeout=30))[:2] == b"ba"
            # At it: never held whole, never passed on.
            await ws.send_bytes(b"x" * limit)
            msg = await ws.receive(timeout=30)
            assert msg.type == aiohttp.WSMsgType.CLOSE, msg
            assert ws.close_code == 1009
        await eventually(lambda: len(upstream.ws_close_codes) == 1, "upstream's socket to close")
    finally:
        await session.close()


async def test_a_large_text_output_is_relayed_as_its_bytes(echo) -> None:  # type: ignore[no-untyped-def]
    """A text message is passed on as the bytes it came as, never decoded:
    a str of a 16 MiB output with one emoji in it takes 64 MiB, and was
    encoded twice more (to count it, to send it)."""
    upstream, p = echo
    upstream.big_text = ("\U0001f600" + "x" * (16 * 1024 * 1024)).encode()
    session = await p.login(p.world.owner)
    try:
        async with session.ws_connect(
            p.url("/ws"), origin=p.origin, decode_text=False, max_msg_size=0
        ) as ws:
            tracemalloc.start()
            try:
                await ws.send_str("big text")
                msg = await ws.receive(timeout=30)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert msg.type == aiohttp.WSMsgType.TEXT and msg.data == upstream.big_text
    finally:
        await session.close()
    # The upstream's frame, the proxy's copy in and out, the client's: each
    # the message's bytes, once or twice; never a 64 MiB str.
    assert peak < 4 * len(upstream.big_text), peak


async def test_a_viewers_message_is_held_to_the_viewer_limit(echo) -> None:  # type: ignore[no-untyped-def]
    """Marimo's /ws drops what a browser says there, so a viewer (whose only
    socket it is) may say little: 64 KiB, where an editor may send 16 MiB."""
    from proxy import forward

    limit = forward.VIEWER_MESSAGE_LIMIT
    upstream, p = echo
    for member, mode in ((p.world.viewer, "view"), (p.world.owner, "edit")):
        session = await p.login(member, mode)
        try:
            async with session.ws_connect(p.url("/ws"), origin=p.origin) as ws:
                if mode == "view":
                    assert await ws.receive_str(timeout=10) == KIOSK_READY
                await ws.send_bytes(b"a" * (limit - 2) + b"b")  # under it: passed on
                assert (await ws.receive_bytes(timeout=30))[:2] == b"ba"
                await ws.send_bytes(b"x" * limit)
                msg = await ws.receive(timeout=30)
                if mode == "view":
                    assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 1009, msg
                else:
                    assert msg.type == aiohttp.WSMsgType.BINARY and len(msg.data) == limit
        finally:
            await session.close()


async def test_websocket_round_trip_and_close_codes(echo) -> None:  # type: ignore[no-untyped-def]
    upstream, p = echo
    session = await p.login(p.world.owner)
    try:
        async with session.ws_connect(
            p.url("/ws"), origin=p.origin, protocols=("marimo-test",)
        ) as ws:
            assert ws.protocol == "marimo-test"
            await ws.send_str("hi")
            assert (await ws.receive_str(timeout=5)) == "echo:hi"
            await ws.send_bytes(b"abc")
            assert (await ws.receive_bytes(timeout=5)) == b"cba"
            await ws.send_str("bye")
            msg = await ws.receive(timeout=5)
            assert msg.type == aiohttp.WSMsgType.CLOSE
            assert ws.close_code == 4001
            assert msg.extra == "upstream says bye"
        assert upstream.last_headers["Authorization"] == f"Bearer {TOKEN}"
        # Client-initiated close: upstream sees the client's code.
        async with session.ws_connect(p.url("/ws"), origin=p.origin) as ws:
            await ws.send_str("x")
            await ws.receive_str(timeout=5)
            await ws.close(code=4002)
        for _ in range(100):
            if len(upstream.ws_close_codes) == 2:
                break
            await asyncio.sleep(0.05)
        assert upstream.ws_close_codes[-1] == 4002
    finally:
        await session.close()


@pytest.mark.parametrize("origin", [None, "http://evil.example", "http://127.0.0.1:1"])
async def test_websocket_from_another_origin_is_refused(echo, origin) -> None:  # type: ignore[no-untyped-def]
    _, p = echo
    session = await p.login(p.world.owner)
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await session.ws_connect(p.url("/ws"), origin=origin)
        assert err.value.status == 403
    finally:
        await session.close()


@pytest.mark.parametrize("kind", ["http", "websocket"])
async def test_upstream_down_gives_502_page(settings: Settings, kind: str) -> None:
    world = insert_world(settings.database_url, f"http://127.0.0.1:{free_port()}", TOKEN, NB)
    server, p = await serve_proxy(settings, world)
    try:
        session = await p.login(world.owner)
        errors = {k: total(metrics.UPSTREAM_ERRORS_TOTAL, k) for k in metrics.UPSTREAM_ERRORS}
        outcome = total(metrics.REQUESTS, kind, "upstream_error")
        gauge = total(metrics.WEBSOCKETS_ACTIVE, "edit")
        if kind == "http":
            async with session.get(p.url("/echo")) as resp:
                assert resp.status == 502
                assert "not reachable" in await resp.text()
        else:
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await session.ws_connect(p.url("/ws"), origin=p.origin)
            assert err.value.status == 502
        await session.close()
        # One failure to connect, counted once (the lane hands it to aiohttp).
        assert {k: total(metrics.UPSTREAM_ERRORS_TOTAL, k) for k in metrics.UPSTREAM_ERRORS} == {
            **errors,
            "connect": errors["connect"] + 1,
        }
        assert total(metrics.REQUESTS, kind, "upstream_error") == outcome + 1
        assert total(metrics.WEBSOCKETS_ACTIVE, "edit") == gauge
        assert await scraped(p, "notebooks_proxy_upstream_errors_total", kind="connect") == (
            errors["connect"] + 1
        )
    finally:
        await server.close()


@pytest.mark.parametrize("kind", ["http", "websocket", "login"])
async def test_database_unavailable_gives_a_503_page_to_retry(
    settings: Settings, kind: str
) -> None:
    """The access check cannot get a database connection (every one busy
    past the wait; a restart looks the same): a 503 page with Retry-After,
    counted, not aiohttp's bare 500; served again once one is free."""
    from proxy.access import AccessCache
    from proxy.app import CACHE, POOL

    tight = dataclasses.replace(settings, db_pool_max=1, db_pool_wait_seconds=1)
    world = insert_world(settings.database_url, f"http://127.0.0.1:{free_port()}", TOKEN, NB)
    server, p = await serve_proxy(tight, world)
    session = p.client() if kind == "login" else await p.login(world.owner)
    outcome = total(metrics.REQUESTS, "http" if kind == "login" else kind, "database_unavailable")
    try:
        cache: AccessCache = server.app[CACHE]
        async with server.app[POOL].connection():
            cache.invalidate("*")
            if kind == "websocket":
                with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                    await session.ws_connect(p.url("/ws"), origin=p.origin)
                assert err.value.status == 503
            else:
                url = p.open_url(p.token(world.owner)) if kind == "login" else p.url("/echo")
                handed_off = metrics.HANDOFFS._value.get()
                async with session.get(url, allow_redirects=False) as resp:
                    assert resp.status == 503
                    if kind == "http":  # the lane answered: no second wait for the pool in the app
                        assert metrics.HANDOFFS._value.get() == handed_off
                    assert resp.headers["Retry-After"] == "5"
                    assert "Try again in a moment" in await resp.text()
                    assert "Set-Cookie" not in resp.headers
        counted = total(
            metrics.REQUESTS, "http" if kind == "login" else kind, "database_unavailable"
        )
        assert counted == outcome + 1
        if kind == "login":
            async with session.get(p.open_url(p.token(world.owner)), allow_redirects=False) as resp:
                assert resp.status == 303
        else:
            async with session.get(p.url("/echo")) as resp:
                assert resp.status == 502  # past the access check; no Marimo behind it here
    finally:
        await session.close()
        await server.close()


async def test_paths_escaping_the_prefix_are_refused(echo) -> None:  # type: ignore[no-untyped-def]
    _, p = echo
    session = await p.login(p.world.owner)
    try:
        for path in ("/%2e%2e/OTHER/echo", "/a/%2E%2E/%2e%2e/x", "/./echo"):
            async with session.get(URL(p.url(path), encoded=True)) as resp:
                assert resp.status == 400, path
                assert resp.url.path.startswith(f"/notebooks/{NB}/")
    finally:
        await session.close()


async def test_bare_notebook_path_redirects_and_bad_ids_404(echo) -> None:  # type: ignore[no-untyped-def]
    _, p = echo
    async with p.client() as c:
        async with c.get(f"{p.base}/notebooks/{NB}", allow_redirects=False) as resp:
            assert resp.status == 308
            assert resp.headers["Location"] == f"/notebooks/{NB}/"
        async with c.get(f"{p.base}/notebooks/bad-id/x") as resp:
            assert resp.status == 404


async def test_view_sessions_websocket_is_forced_to_kiosk(echo) -> None:  # type: ignore[no-untyped-def]
    upstream, p = echo
    session = await p.login(p.world.viewer, "view")
    try:
        async with session.ws_connect(
            p.url("/ws?session_id=abc&kiosk=false&kiosk=0"), origin=p.origin
        ) as ws:
            assert await ws.receive_str(timeout=5) == KIOSK_READY
            await ws.send_str("x")
            assert await ws.receive_str(timeout=5) == "echo:x"
        # Also under a session id no editor can have (see proxy/policy.py).
        assert upstream.last_query == "session_id=view-abc&kiosk=true"
    finally:
        await session.close()


async def test_a_viewers_session_id_is_decoded_once_as_marimo_reads_its_headers(echo) -> None:  # type: ignore[no-untyped-def]
    """The id reaches Marimo as the browser sent it, prefixed: decoded twice
    (aiohttp's decoded query parsed again), `a%252B` became `a+`, and the
    viewer's socket and its HTTP calls (the raw header) named two sessions."""
    upstream, p = echo
    session = await p.login(p.world.viewer, "view")
    try:
        url = URL(p.url("/ws?session_id=a%252B%2B+b"), encoded=True)
        async with session.ws_connect(url, origin=p.origin) as ws:
            assert await ws.receive_str(timeout=5) == KIOSK_READY
        assert parse_qs(upstream.last_query)["session_id"] == ["view-a%2B+ b"]
    finally:
        await session.close()


async def test_a_kiosk_upstream_that_says_nothing_first_is_still_relayed(
    echo,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The proxy waits for Marimo's first word to a viewer (to catch
    # MARIMO_NO_SESSION) only so long; then it relays the socket as it is.
    from proxy import forward

    monkeypatch.setattr(forward, "FIRST_MESSAGE_SECONDS", 0.2)
    _, p = echo
    session = await p.login(p.world.viewer, "view")
    try:
        async with session.ws_connect(p.url("/ws?session_id=quiet"), origin=p.origin) as ws:
            await ws.send_str("hi")
            assert await ws.receive_str(timeout=5) == "echo:hi"
    finally:
        await session.close()


async def unshare_and_expect_the_body_cut(p: ProxyUnderTest, resp: aiohttp.ClientResponse) -> None:
    """Unshare the notebook from the member's team mid-body: the proxy cuts
    the body (upstream never sends more) within the promised 10 s, and
    counts one revocation."""
    revoked = total(metrics.REVOKED, "access")
    started = time.monotonic()
    sql(p.settings.database_url, "delete from notebook_teams where team_id = %s", (p.world.team,))
    with pytest.raises(
        (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, asyncio.IncompleteReadError)
    ):
        await asyncio.wait_for(resp.content.read(), 10)
    assert time.monotonic() - started < 10
    assert total(metrics.REVOKED, "access") == revoked + 1


async def test_revoking_access_ends_a_streaming_response(echo) -> None:  # type: ignore[no-untyped-def]
    upstream, p = echo
    await wait_listening(p)
    session = await p.login(p.world.editor)
    try:
        async with session.get(p.url("/stream")) as resp:
            assert await asyncio.wait_for(resp.content.readexactly(6), 10) == b"first;"
            await unshare_and_expect_the_body_cut(p, resp)
    finally:
        upstream.client_got_first.set()
        await session.close()


@pytest.mark.parametrize("handed_off", [False, True], ids=["lane", "aiohttp"])
async def test_client_leaving_mid_body_frees_the_connection(  # type: ignore[no-untyped-def]
    echo, handed_off: bool, caplog: pytest.LogCaptureFixture
) -> None:
    from proxy import metrics
    from proxy.app import PROXY

    upstream, p = echo
    errors_before = sum(
        metrics.UPSTREAM_ERRORS_TOTAL.labels(k)._value.get() for k in metrics.UPSTREAM_ERRORS
    )
    # `Expect` sends the request down aiohttp's path (the lane hands it off).
    headers = {"Expect": "100-continue"} if handed_off else {}
    session = await p.login(p.world.owner)
    before = handoffs(p)
    try:
        resp = await session.get(p.url("/stream"), headers=headers)
        assert await asyncio.wait_for(resp.content.readexactly(6), 10) == b"first;"
        assert delta(handoffs(p), before)[1] == (1 if handed_off else 0)
        resp.close()  # drop the connection mid-body
        upstream.client_got_first.set()
        registry = p.server.app[PROXY].registry
        for _ in range(200):
            if len(registry) == 0:
                break
            await asyncio.sleep(0.02)
        assert len(registry) == 0
        async with session.get(p.url("/echo")) as again:
            assert again.status == 200
    finally:
        await session.close()
    errors_after = sum(
        metrics.UPSTREAM_ERRORS_TOTAL.labels(k)._value.get() for k in metrics.UPSTREAM_ERRORS
    )
    assert errors_after == errors_before  # a browser leaving is not Marimo's fault
    # Nor an error of the proxy's: no "Error handling request" with a traceback.
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.records


# A change, and the reason the proxy counts for the connections it ends.
REVOCATIONS = {
    "team membership removed": (
        "delete from team_memberships where member_id = 'EDITOR1'",
        "access",
    ),
    "team unshared": ("delete from notebook_teams where team_id = 'TEAMED1'", "access"),
    "team deleted": ("delete from teams where id = 'TEAMED1'", "access"),
    "role lowered to viewer": (
        "update team_memberships set role = 'viewer' where member_id = 'EDITOR1'",
        "edit",
    ),
    "member disabled": ("update members set disabled_at = now() where id = 'EDITOR1'", "access"),
    "API token revoked": (
        "update api_tokens set revoked_at = now() where id = 'TEDITOR1'",
        "access",
    ),
    "API token removed": ("delete from api_tokens where id = 'TEDITOR1'", "access"),
    # a stop whose save window (for open editors) is over
    "notebook stopping": (f"update notebooks set status = 'stopping', {PAST_STOP}", "status"),
    "new session": ("update notebooks set session_id = 'OTHER'", "session"),
    "notebook deleted": (
        "update notebooks set deleted_at = now(), desired_state = 'deleted'",
        "access",
    ),
}


@pytest.mark.parametrize("change", sorted(REVOCATIONS))
async def test_each_access_change_ends_a_live_websocket(echo, change: str) -> None:  # type: ignore[no-untyped-def]
    upstream, p = echo
    await wait_listening(p)
    session = await p.login(p.world.editor)
    try:
        async with session.ws_connect(p.url("/ws"), origin=p.origin) as ws:
            await ws.send_str("hi")
            assert await ws.receive_str(timeout=5) == "echo:hi"
            change_sql, reason = REVOCATIONS[change]
            revoked = total(metrics.REVOKED, reason)
            started = time.monotonic()
            sql(p.settings.database_url, change_sql)
            msg = await ws.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.CLOSE, msg
            assert ws.close_code == 4403
            assert time.monotonic() - started < 10
            assert total(metrics.REVOKED, reason) == revoked + 1
    finally:
        await session.close()


async def test_handing_the_notebook_on_ends_the_previous_owners_websocket(echo) -> None:  # type: ignore[no-untyped-def]
    """The owner, in none of its teams, had it only as its owner (docs/api.md,
    "A notebook is handed on")."""
    upstream, p = echo
    await wait_listening(p)
    session = await p.login(p.world.owner)
    try:
        async with session.ws_connect(p.url("/ws"), origin=p.origin) as ws:
            await ws.send_str("hi")
            assert await ws.receive_str(timeout=5) == "echo:hi"
            revoked = total(metrics.REVOKED, "access")
            sql(p.settings.database_url, "update notebooks set member_id = 'EDITOR1'")
            msg = await ws.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.CLOSE, msg
            assert ws.close_code == 4403
            assert total(metrics.REVOKED, "access") == revoked + 1
    finally:
        await session.close()


async def test_a_stop_leaves_an_open_editor_its_save_window_and_ends_viewers_at_once(echo) -> None:  # type: ignore[no-untyped-def]
    """Marimo's editor saves what was typed last 1 s after the last
    keystroke, only while its socket is open: ended at `stopping`, a Stop
    lost it (the durability audit: the last 0.3 s, or 13 s typed on). An
    editor open when the stop began goes on for the save window (the worker
    stops Marimo after it); a viewer, with nothing to save, ends at once,
    and nobody logs in to a notebook stopping."""
    _, p = echo
    await wait_listening(p)
    editor, viewer = await p.login(p.world.owner), await p.login(p.world.viewer, "view")
    late_link = p.open_url(p.token(p.world.owner))
    try:
        async with (
            editor.ws_connect(p.url("/ws"), origin=p.origin) as editor_ws,
            viewer.ws_connect(p.url("/ws"), origin=p.origin) as viewer_ws,
        ):
            await editor_ws.send_str("hi")
            assert await editor_ws.receive_str(timeout=5) == "echo:hi"
            assert await viewer_ws.receive_str(timeout=5) == KIOSK_READY
            sql(
                p.settings.database_url,
                "update notebooks set status = 'stopping', desired_state = 'stopped',"
                " status_changed_at = %s",
                (p.clock.now(),),
            )
            msg = await viewer_ws.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.CLOSE and viewer_ws.close_code == 4403
            # The editor saves meanwhile: its socket and its requests go on.
            await editor_ws.send_str("save")
            assert await editor_ws.receive_str(timeout=5) == "echo:save"
            async with editor.get(p.url("/echo")) as resp:
                assert resp.status == 200
            async with p.client() as late, late.get(late_link, allow_redirects=False) as resp:
                assert resp.status == 503, await resp.text()
            # The window over, the next look ends the editor's too.
            p.clock.advance(SAVE_WINDOW_SECONDS)
            sql(p.settings.database_url, f"select pg_notify('notebooks_proxy', 'notebook:{NB}')")
            msg = await editor_ws.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.CLOSE and editor_ws.close_code == 4403
        async with editor.get(p.url("/echo")) as resp:
            assert resp.status == 503
    finally:
        await editor.close()
        await viewer.close()


async def test_revoking_one_api_token_ends_only_what_it_opened(echo) -> None:  # type: ignore[no-untyped-def]
    """A leaked token is revoked: the proxy sessions its `open` calls minted
    end within seconds; the same member's sessions opened with another token
    go on, and a login minted for the revoked token is refused."""
    _, p = echo
    await wait_listening(p)
    sql(
        p.settings.database_url,
        "insert into api_tokens (id, member_id, name, prefix, secret_hash)"
        " values ('TEDITOR1B', 'EDITOR1', 'laptop', 'p', 'hash-laptop')",
    )
    leaked, kept = p.client(), p.client()
    try:
        for client, token_id in ((leaked, "TEDITOR1"), (kept, "TEDITOR1B")):
            token = p.token(p.world.editor, token_id=token_id)
            async with client.get(p.open_url(token), allow_redirects=False) as resp:
                assert resp.status == 303
        async with (
            leaked.ws_connect(p.url("/ws"), origin=p.origin) as leaked_ws,
            kept.ws_connect(p.url("/ws"), origin=p.origin) as kept_ws,
        ):
            started = time.monotonic()
            sql(
                p.settings.database_url,
                "update api_tokens set revoked_at = now() where id = 'TEDITOR1'",
            )
            msg = await leaked_ws.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.CLOSE and leaked_ws.close_code == 4403
            assert time.monotonic() - started < 10
            await kept_ws.send_str("still")
            assert await kept_ws.receive_str(timeout=5) == "echo:still"
        async with leaked.get(p.url("/echo")) as resp:
            assert resp.status == 403
        async with kept.get(p.url("/echo")) as resp:
            assert resp.status == 200
        fresh = p.token(p.world.editor, token_id="TEDITOR1")
        async with p.client() as again, again.get(p.open_url(fresh), allow_redirects=False) as resp:
            assert resp.status == 401, await resp.text()
            assert "Set-Cookie" not in resp.headers
    finally:
        await leaked.close()
        await kept.close()


async def test_an_expiring_api_token_ends_the_websocket_it_opened(settings: Settings) -> None:
    """Expiry is no database event (no NOTIFY): the periodic re-check compares
    the token's expiry with the clock and ends the socket as a lapsed session."""
    async with echo_proxy(settings, recheck_seconds=0.1) as (_, p):
        sql(
            p.settings.database_url,
            "update api_tokens set expires_at = %s where id = 'TEDITOR1'",
            (p.clock.now() + timedelta(hours=1),),
        )
        session = await p.login(p.world.editor)
        try:
            async with session.ws_connect(p.url("/ws"), origin=p.origin) as ws:
                await ws.send_str("hi")
                assert await ws.receive_str(timeout=5) == "echo:hi"
                revoked = total(metrics.REVOKED, "session")
                p.clock.advance(3600)  # the cookie itself would last 12 h
                msg = await ws.receive(timeout=10)
                assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 4403
                assert total(metrics.REVOKED, "session") == revoked + 1
        finally:
            await session.close()


async def test_marimos_own_sign_in_is_out_of_reach_even_for_editors(echo) -> None:  # type: ignore[no-untyped-def]
    """`/auth/token` answers Marimo's token to an editor: good for the whole
    session after their access ends. Refused on either path (the lane's GET,
    aiohttp's HEAD), and upstream never asked."""
    upstream, p = echo
    session = await p.login(p.world.owner)
    try:
        for method, path in (
            ("GET", "/auth/token"),
            ("HEAD", "/auth/token"),
            ("POST", "/auth/login"),
        ):
            async with session.request(method, p.url(path)) as resp:
                assert resp.status == 403, (method, path)
        assert not [r for r in upstream.seen if "/auth/" in r.path_qs]
    finally:
        await session.close()


async def refused_to_everyone(resp: aiohttp.ClientResponse, says: str) -> None:
    """What Marimo's editor shows of a refusal: not a 403 (it keeps those
    quiet, as read-only refusals), and a JSON `detail` (its toasts read
    that), with a reason phrase for what reads only the status line."""
    assert resp.status == 405, resp.url
    assert resp.reason == "Not available on this platform"
    assert resp.headers["Allow"] == ""
    assert resp.content_type == "application/json"
    assert says in (await resp.json())["detail"]


async def test_marimos_own_shutdown_is_out_of_reach_even_for_the_owner(echo) -> None:  # type: ignore[no-untyped-def]
    """Marimo's Shutdown button ended Marimo under a notebook the platform
    still called running, leaving the editor on "kernel not found". Stopping
    is the platform's; refused on either path, upstream never asked."""
    upstream, p = echo
    session = await p.login(p.world.owner)
    try:
        for path in ("/api/kernel/shutdown", "/api/home/shutdown_session", "/api/kernel/shutdown/"):
            async with session.post(p.url(path), json={}) as resp:
                await refused_to_everyone(resp, "Stop the notebook from the platform")
        assert not [r for r in upstream.seen if "shutdown" in r.path_qs]
    finally:
        await session.close()


async def test_renaming_the_notebook_file_is_out_of_reach_even_for_the_owner(echo) -> None:  # type: ignore[no-untyped-def]
    """Marimo's rename (its title bar) moved the work into a file no start
    opens; the next start put a fresh template in its place (an audit did,
    on a real stack). Refused on either path, upstream never asked."""
    upstream, p = echo
    session = await p.login(p.world.owner)
    try:
        for path in ("/api/kernel/rename", "/api/kernel/rename/"):
            async with session.post(p.url(path), json={"filename": "analysis.py"}) as resp:
                await refused_to_everyone(resp, "rename the notebook in the platform")
        assert not [r for r in upstream.seen if "rename" in r.path_qs]
    finally:
        await session.close()


async def test_package_installs_are_out_of_reach_even_for_the_owner(echo) -> None:  # type: ignore[no-untyped-def]
    """Marimo installs into the environment its kernel runs in: under the
    local runtime the platform's own, so one click of "Install" changed the
    packages of every notebook and of the API, worker and proxy (an audit
    did, in a real browser). Listing stays open."""
    upstream, p = echo
    session = await p.login(p.world.owner)
    try:
        for path in (
            "/api/packages/add",
            "/api/packages/remove",
            "/api/packages/sync",
            "/api/kernel/install_missing_packages",
            "/api/export/requirements/install",
        ):
            async with session.post(p.url(path), json={"package": "x"}) as resp:
                await refused_to_everyone(resp, "Installing packages")
        assert not [r for r in upstream.seen if "packages" in r.path_qs]
        async with session.get(p.url("/api/packages/list")) as resp:
            assert resp.status != 403  # relayed (this upstream has no such page)
        assert [r.path_qs for r in upstream.seen if "packages" in r.path_qs] == [
            f"/notebooks/{NB}/api/packages/list"
        ]
    finally:
        await session.close()


async def test_an_editor_yields_to_the_owner_coming_back(settings: Settings) -> None:
    """DESIGN §5: others edit only while the owner is away (`open` gives
    them `view` while the owner is present). A team editor who opened it to
    edit while the owner was away: once the owner pings, the editor's socket
    ends saying why (no NOTIFY for a ping: the periodic re-check), their
    page requests are refused, and an edit link minted before is refused at
    login; a viewer's socket goes on. When the owner's
    presence lapses, an edit link works again."""
    async with echo_proxy(settings, recheck_seconds=0.1) as (_, p):
        editor, viewer = await p.login(p.world.editor), await p.login(p.world.viewer, "view")
        stale_link = p.token(p.world.editor)
        try:
            async with (
                editor.ws_connect(p.url("/ws"), origin=p.origin) as ws,
                viewer.ws_connect(p.url("/ws"), origin=p.origin) as watching,
            ):
                await ws.send_str("hi")
                assert await ws.receive_str(timeout=5) == "echo:hi"
                assert await watching.receive_str(timeout=5) == KIOSK_READY
                revoked = total(metrics.REVOKED, "owner")
                sql(
                    p.settings.database_url,
                    "insert into notebook_presence (notebook_id, member_id, last_seen_at)"
                    " values (%s, %s, %s)",
                    (p.world.notebook, p.world.owner, p.clock.now()),
                )
                msg = await ws.receive(timeout=10)
                assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 4403
                assert msg.extra == "the owner is editing: open it again to view"
                assert total(metrics.REVOKED, "owner") == revoked + 1
                await watching.send_str("still")
                assert await watching.receive_str(timeout=5) == "echo:still"
            async with editor.get(p.url("/echo")) as resp:  # a page reload, as editor
                assert resp.status == 403 and "owner is back" in await resp.text()
            async with (
                p.client() as late,
                late.get(p.open_url(stale_link), allow_redirects=False) as resp,
            ):
                assert resp.status == 401 and "owner is editing" in await resp.text()
                assert "Set-Cookie" not in resp.headers
            p.clock.advance(settings.presence_window_seconds)  # the owner left
            async with (
                p.client() as again,
                again.get(p.open_url(p.token(p.world.editor)), allow_redirects=False) as resp,
            ):
                assert resp.status == 303
        finally:
            await editor.close()
            await viewer.close()


async def test_metrics_and_one_log_line_per_websocket(echo) -> None:  # type: ignore[no-untyped-def]
    from structlog.testing import capture_logs

    from proxy import metrics

    _, p = echo

    def value(metric, *labels: str) -> float:  # type: ignore[no-untyped-def]
        return float(metric.labels(*labels)._value.get())

    up_before = value(metrics.BYTES, "to_upstream", "websocket")
    down_before = value(metrics.BYTES, "to_client", "websocket")
    ok_before = value(metrics.LOGINS, "ok")
    session = await p.login(p.world.owner)
    try:
        with capture_logs() as logs:
            async with session.ws_connect(p.url("/ws"), origin=p.origin) as ws:
                assert value(metrics.WEBSOCKETS_ACTIVE, "edit") >= 1
                await ws.send_str("abcd")
                assert await ws.receive_str(timeout=5) == "echo:abcd"
            for _ in range(100):
                if any(e["event"] == "proxy.session" for e in logs):
                    break
                await asyncio.sleep(0.02)
    finally:
        await session.close()
    assert value(metrics.LOGINS, "ok") == ok_before + 1
    assert value(metrics.BYTES, "to_upstream", "websocket") == up_before + 4
    assert value(metrics.BYTES, "to_client", "websocket") == down_before + 9
    lines = [e for e in logs if e["event"] == "proxy.session"]
    assert len(lines) == 1
    line = lines[0]
    assert line["member_id"] == p.world.owner and line["notebook_id"] == NB
    assert line["mode"] == "edit" and line["bytes_to_upstream"] == 4
    assert line["bytes_to_client"] == 9 and line["duration_s"] >= 0


async def test_a_shutdown_ends_websockets_at_once_with_a_code_browsers_reconnect_on(echo) -> None:  # type: ignore[no-untyped-def]
    """A deploy stops this proxy: its WebSockets end now with 1012 (service
    restart), which Marimo's frontend reconnects on through a proxy that
    stays, rather than being held until the shutdown timeout cuts them."""
    from proxy.serve import SHUTDOWN_GRACE_SECONDS

    upstream, p = echo
    session = await p.login(p.world.owner)
    try:
        async with session.ws_connect(p.url("/ws"), origin=p.origin) as ws:
            await ws.send_str("hi")
            assert await ws.receive_str(timeout=5) == "echo:hi"
            started = time.monotonic()
            closing = asyncio.create_task(p.server.close())
            msg = await ws.receive(timeout=SHUTDOWN_GRACE_SECONDS / 2)
            assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 1012
            await closing
            assert time.monotonic() - started < SHUTDOWN_GRACE_SECONDS
    finally:
        await session.close()
    await eventually(lambda: upstream.ws_close_codes == [1001], "Marimo's socket to close")


# The heartbeat's interval in its tests: whole seconds, so that the clock's
# sums (1, 1.5 and 2 intervals) are exact.
HEARTBEAT = 20.0


def the_websocket(p: ProxyUnderTest) -> Live:
    """The one open WebSocket's registration (`heard`: when its browser's
    last frame reached the proxy, on the proxy's clock)."""
    (live,) = p.server.app[PROXY].registry.websockets()
    return live


async def test_a_browser_that_vanished_is_noticed_and_its_marimo_socket_closed(settings) -> None:  # type: ignore[no-untyped-def]
    """No close frame, no pongs (a laptop asleep): pinged after an interval of
    silence and given up after one and a half, on the proxy's clock; Marimo's
    socket is closed with 1001, so Marimo orphans the session for the
    member's next open."""
    clock = SteppingClock(datetime.now(UTC))
    async with echo_proxy(settings, clock=clock, ws_heartbeat_seconds=HEARTBEAT) as (
        upstream,
        p,
    ):
        session = await p.login(p.world.owner)
        try:
            ws = await session.ws_connect(p.url("/ws"), origin=p.origin, autoping=False)
            await ws.send_str("hi")
            assert (await ws.receive(timeout=5)).data == "echo:hi"
            # From here the client neither sends nor answers pings.
            heard = the_websocket(p).heard
            await clock.asleep_until(heard + HEARTBEAT)
            clock.advance(HEARTBEAT)
            assert (await ws.receive(timeout=5)).type == aiohttp.WSMsgType.PING
            await clock.asleep_until(heard + HEARTBEAT * 1.5)  # the answer is awaited till then
            assert upstream.ws_close_codes == []
            clock.advance(HEARTBEAT / 2)
            await eventually(lambda: upstream.ws_close_codes == [1001], "Marimo's socket to close")
            # "going away", as for a closed tab; the browser's side is dropped
            # (nobody is there to finish a closing handshake).
            assert (await ws.receive(timeout=5)).type in (
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            )
        finally:
            await session.close()


async def test_a_quiet_browser_that_answers_pings_stays_connected(settings) -> None:  # type: ignore[no-untyped-def]
    """Silent but alive (an open tab nobody types in): pinged after each
    interval of silence, it answers with a pong and nothing else, and that
    keeps its socket open interval after interval, well past the one and a
    half at which a silent one is given up."""
    clock = SteppingClock(datetime.now(UTC))
    async with echo_proxy(settings, clock=clock, ws_heartbeat_seconds=HEARTBEAT) as (
        upstream,
        p,
    ):
        session = await p.login(p.world.owner)
        try:
            ws = await session.ws_connect(p.url("/ws"), origin=p.origin, autoping=False)
            live = the_websocket(p)
            for _ in range(4):
                await clock.asleep_until(live.heard + HEARTBEAT)
                pinged_at = live.heard + HEARTBEAT
                clock.advance(pinged_at - clock.monotonic())  # an interval of silence
                msg = await ws.receive(timeout=5)
                assert msg.type == aiohttp.WSMsgType.PING, msg
                await ws.pong(msg.data)
                await eventually(
                    lambda: live.heard == clock.monotonic(), "the pong to reach the proxy"
                )
                # When it would be given up had it not answered:
                await clock.asleep_until(pinged_at + HEARTBEAT / 2)
                clock.advance(HEARTBEAT / 2)
            assert clock.monotonic() == HEARTBEAT * 4.5  # silent but for pongs all along
            assert upstream.ws_close_codes == []  # still connected upstream
            await ws.send_str("still here")
            assert (await ws.receive(timeout=5)).data == "echo:still here"
        finally:
            await session.close()


# The aiohttp path: what the express lane hands off (HEAD, WebSocket
# handshakes, `Expect: 100-continue`), driven from raw sockets where the exact
# headers sent are the point.


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: CIMultiDict[str]


@contextlib.asynccontextmanager
async def raw_request(
    p: ProxyUnderTest, method: str, target: str, headers: list[tuple[str, str]]
) -> AsyncIterator[tuple[RawResponse, asyncio.StreamReader]]:
    """Send one request head as given; yield the response head and the reader
    (for what follows it). The connection is closed on leaving."""
    reader, writer = await asyncio.open_connection("127.0.0.1", p.server.port)
    try:
        lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{p.server.port}"]
        lines += [f"{name}: {value}" for name, value in headers]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        block = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status_line, *header_lines = block.decode("latin-1").split("\r\n")
        parsed: CIMultiDict[str] = CIMultiDict()
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                parsed.add(name.strip(), value.strip())
        yield RawResponse(int(status_line.split(" ", 2)[1]), parsed), reader
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def handoffs(p: ProxyUnderTest) -> tuple[int, int]:
    """(requests the lane relayed itself, requests it handed to aiohttp)."""
    return p.server.lane.relayed, p.server.lane.handed_off


def delta(after: tuple[int, int], before: tuple[int, int]) -> tuple[int, int]:
    return after[0] - before[0], after[1] - before[1]


async def scraped(p: ProxyUnderTest, name: str, **labels: str) -> float:
    """One sample of the proxy's /metrics, as a scraper reads it."""
    async with p.client() as c, c.get(p.metrics_url) as resp:
        assert resp.status == 200
        text = await resp.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    raise AssertionError(f"{name}{labels} not in the scrape")


# What a browser-like client sends beside its credentials: passed on as is.
PASSED_ON = [
    ("Marimo-Session-Id", "s1"),
    ("Marimo-Server-Token", "t1"),
    ("Accept", "*/*"),
    ("Accept-Encoding", "identity"),
    ("User-Agent", "test-browser"),
]
# Never passed on: the client's credentials, forwarding claims and hop-by-hop
# headers (including one named in `Connection`).
NOT_PASSED_ON = [
    ("Authorization", "Bearer from-the-browser"),
    ("Keep-Alive", "timeout=5"),
    ("X-Secret", "hop"),
    ("Proxy-Authorization", "Basic eDp5"),
    ("Proxy-Connection", "keep-alive"),
    ("TE", "trailers"),
    ("Trailer", "X-Checksum"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "evil.example"),
    ("Forwarded", "for=198.51.100.1"),
]


# Marimo serves `/public/*` from the directory of the notebook this names:
# passed on for an editor only.
NOTEBOOK_ID_HEADER = ("X-Notebook-Id", "%2Fother%2Fsecret_nb.py")


def browser_headers(cookie: str) -> list[tuple[str, str]]:
    return [
        # Our cookie between two others: none of them reaches Marimo.
        ("Cookie", f"other=1; {COOKIE_NAME}={cookie}; theme=dark"),
        ("X-Forwarded-For", "203.0.113.9"),
        NOTEBOOK_ID_HEADER,
        *PASSED_ON,
        *NOT_PASSED_ON,
    ]


def expected_upstream_headers(p: ProxyUnderTest, seen: Seen, mode: str) -> list[tuple[str, str]]:
    """The whole set (as sorted lowercase-name pairs) that Marimo must get."""
    session_id = "view-s1" if mode == "view" else "s1"  # a viewer's, namespaced
    pairs = [
        ("Host", f"127.0.0.1:{seen.port}"),  # upstream's, set by the proxy's client
        *[(k, session_id if k == "Marimo-Session-Id" else v) for k, v in PASSED_ON],
        ("X-Forwarded-For", "203.0.113.9, 127.0.0.1"),  # the client's chain, then the client
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Host", f"127.0.0.1:{p.server.port}"),
        ("Authorization", f"Bearer {TOKEN}"),
        *([NOTEBOOK_ID_HEADER] if mode == "edit" else []),
    ]
    return sorted((k.lower(), v) for k, v in pairs)


def member_for(p: ProxyUnderTest, mode: str) -> str:
    return p.world.owner if mode == "edit" else p.world.viewer


@pytest.mark.parametrize("method", ["GET", "HEAD"])  # the lane, then aiohttp's path
async def test_marimos_absolute_redirect_reaches_the_browser_as_a_path(echo, method: str) -> None:  # type: ignore[no-untyped-def]
    upstream, p = echo
    cookie = await p.cookie(p.world.owner, "edit")
    before = handoffs(p)
    target = f"/notebooks/{NB}/slash"
    async with raw_request(p, method, target, browser_headers(cookie)) as (resp, _):
        assert resp.status == 307
        assert resp.headers["Location"] == f"/notebooks/{NB}/slash/"
    assert delta(handoffs(p), before) == ((1, 0) if method == "GET" else (0, 1))
    assert len(upstream.seen) == 1


@pytest.mark.parametrize("expect", [False, True])  # the lane, then aiohttp's path
async def test_a_fragment_in_the_target_does_not_hide_a_refused_route(echo, expect: bool) -> None:  # type: ignore[no-untyped-def]
    """Marimo cuts a request target at `#`: judged with it, `shutdown#x` was
    not `shutdown`, and Marimo ran it (a security audit ended an owner's
    Marimo, and installed packages, this way). A fragment is refused."""
    upstream, p = echo
    cookie = await p.cookie(p.world.owner, "edit")
    headers = [*browser_headers(cookie), ("Content-Length", "0")]
    if expect:
        headers.append(("Expect", "100-continue"))
    for target in (
        f"/notebooks/{NB}/api/kernel/shutdown#x",
        f"/notebooks/{NB}/api/packages/add#",
        f"/notebooks/{NB}/echo?a=1#/../api/kernel/shutdown",
    ):
        async with raw_request(p, "POST", target, headers) as (resp, reader):
            status = resp.status
            if status == 100:  # aiohttp's interim answer to Expect; the final one follows
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                status = int(head.split(b" ", 2)[1])
            assert status == 400, target
    assert not upstream.seen


async def test_two_host_headers_are_refused_on_either_path(echo) -> None:  # type: ignore[no-untyped-def]
    upstream, p = echo
    cookie = await p.cookie(p.world.owner, "edit")
    twice = [("Host", "elsewhere.example"), *browser_headers(cookie)]
    async with raw_request(p, "GET", f"/notebooks/{NB}/echo", twice) as (resp, _):
        assert resp.status == 400
    assert upstream.seen == []


async def test_a_head_over_max_head_in_one_read_is_left_to_aiohttp(echo) -> None:  # type: ignore[no-untyped-def]
    """The lane holds a head up to MAX_HEAD, also when it came whole in one
    read; past it, aiohttp's own limits judge it (here: it serves it)."""
    upstream, p = echo
    cookie = await p.cookie(p.world.owner, "edit")
    filler = [(f"X-Filler-{i}", "f" * 8000) for i in range(9)]  # each line under aiohttp's 8190
    before = handoffs(p)
    async with raw_request(
        p, "GET", f"/notebooks/{NB}/banner", [*browser_headers(cookie), *filler]
    ) as (
        resp,
        _,
    ):
        assert resp.status == 200
    assert delta(handoffs(p), before) == (0, 1)
    assert [seen.path_qs for seen in upstream.seen] == [f"/notebooks/{NB}/banner"]


@pytest.mark.parametrize("mode", ["edit", "view"])
async def test_handed_off_head_reaches_upstream_with_exactly_the_filtered_headers(
    echo,  # type: ignore[no-untyped-def]
    mode: str,
) -> None:
    upstream, p = echo
    cookie = await p.cookie(member_for(p, mode), mode)
    sent = [("Connection", "keep-alive, X-Secret"), *browser_headers(cookie)]
    before = handoffs(p)
    # `file` and `access_token` are Marimo's, never the browser's to send.
    target = f"/notebooks/{NB}/banner?q=1&file=%2Fother%2Fsecret_nb.py&access_token=t"
    async with raw_request(p, "HEAD", target, sent) as (resp, reader):
        assert resp.status == 200
        assert await asyncio.wait_for(reader.read(), 10) == b""  # no body, then the close
    assert delta(handoffs(p), before) == (0, 1)  # answered on the aiohttp path
    (seen,) = upstream.seen
    assert (seen.method, seen.path_qs) == ("HEAD", f"/notebooks/{NB}/banner?q=1")
    assert sorted((k.lower(), v) for k, v in seen.headers) == expected_upstream_headers(
        p, seen, mode
    )


WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_handshake(key: str, origin: str) -> list[tuple[str, str]]:
    return [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade, X-Secret"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Protocol", "marimo-test, other"),
        ("Sec-WebSocket-Extensions", "x-browser-extension"),
        ("Origin", origin),
    ]


def ws_accept(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


@pytest.mark.parametrize("mode", ["edit", "view"])
async def test_websocket_handshake_reaches_upstream_with_exactly_the_filtered_headers(
    echo,  # type: ignore[no-untyped-def]
    mode: str,
) -> None:
    upstream, p = echo
    cookie = await p.cookie(member_for(p, mode), mode)
    key = base64.b64encode(b"sixteen byte key").decode()
    sent = [*ws_handshake(key, p.origin), *browser_headers(cookie)]
    target = f"/notebooks/{NB}/ws?session_id=abc&kiosk=false&file=%2Fother.py&access_token=t"
    async with raw_request(p, "GET", target, sent) as (resp, _):
        assert resp.status == 101
        assert resp.headers["Sec-WebSocket-Accept"] == ws_accept(key)
        assert resp.headers["Sec-WebSocket-Protocol"] == "marimo-test"  # upstream's choice
        (seen,) = upstream.seen
    # A viewer's main socket is always a kiosk under a namespaced session id.
    query = "session_id=view-abc&kiosk=true" if mode == "view" else "session_id=abc&kiosk=false"
    assert (seen.method, seen.path_qs) == ("GET", f"/notebooks/{NB}/ws?{query}")
    got = [(k.lower(), v) for k, v in seen.headers]
    # The handshake is the proxy's own upstream, never the browser's: a fresh
    # key, no Origin, no browser extensions; only the offered subprotocols.
    handshake = {"upgrade", "connection", "sec-websocket-version", "sec-websocket-protocol"}
    (upstream_key,) = [v for k, v in got if k == "sec-websocket-key"]
    assert upstream_key != key and len(base64.b64decode(upstream_key)) == 16
    assert sorted((k, v) for k, v in got if k in handshake) == [
        ("connection", "Upgrade"),
        ("sec-websocket-protocol", "marimo-test,other"),
        ("sec-websocket-version", "13"),
        ("upgrade", "websocket"),
    ]
    rest = sorted((k, v) for k, v in got if k not in handshake and k != "sec-websocket-key")
    assert rest == expected_upstream_headers(p, seen, mode)


async def test_a_long_cookie_header_passes_on_either_path(echo) -> None:  # type: ignore[no-untyped-def]
    """Cookies of the parent domain make a long Cookie header: the page (the
    lane) and its WebSocket (a hand-off) must both take it."""
    upstream, p = echo
    cookie = await p.cookie(p.world.owner, "edit")
    others = "; ".join(f"site{i}={'v' * 90}" for i in range(110))  # about 10 KiB
    long_cookie = [("Cookie", f"{others}; {COOKIE_NAME}={cookie}")]
    async with raw_request(p, "GET", f"/notebooks/{NB}/echo", long_cookie) as (resp, _):
        assert resp.status == 200
    key = base64.b64encode(b"sixteen byte key").decode()
    handshake = [*ws_handshake(key, p.origin), *long_cookie]
    async with raw_request(p, "GET", f"/notebooks/{NB}/ws?session_id=s", handshake) as (resp, _):
        assert resp.status == 101


FRAME_ANCESTORS = "https://platform.example.com"


@pytest.fixture
async def framed(settings: Settings) -> AsyncIterator[tuple[Upstream, ProxyUnderTest]]:
    """The echo pair with frame-ancestors configured to something not the default."""
    async with echo_proxy(dataclasses.replace(settings, frame_ancestors=FRAME_ANCESTORS)) as pair:
        yield pair


def assert_security_headers(headers: CIMultiDict[str], upstream_csp: list[str]) -> None:
    csp = headers.getall("Content-Security-Policy", [])
    assert sorted(csp) == sorted([f"frame-ancestors {FRAME_ANCESTORS}", *upstream_csp])
    assert headers.getall("X-Content-Type-Options", []) == ["nosniff"]  # not upstream's
    assert headers.getall("Referrer-Policy", []) == ["no-referrer"]  # not upstream's
    assert "Server" not in headers
    assert "X-Powered-By" not in headers


async def test_handed_off_head_response_has_our_security_headers_and_no_banner(framed) -> None:  # type: ignore[no-untyped-def]
    upstream, p = framed
    cookie = await p.cookie(p.world.owner)
    before = handoffs(p)
    sent = [("Cookie", f"{COOKIE_NAME}={cookie}")]
    async with raw_request(p, "HEAD", f"/notebooks/{NB}/banner", sent) as (resp, _):
        assert resp.status == 200
        assert resp.headers["X-Upstream"] == "yes"  # upstream's own headers do pass
        assert "Keep-Alive" not in resp.headers  # hop-by-hop, upstream's
        assert_security_headers(resp.headers, [UPSTREAM_CSP])  # upstream's CSP kept beside
    assert delta(handoffs(p), before) == (0, 1)
    assert [s.method for s in upstream.seen] == ["HEAD"]


async def test_handed_off_websocket_handshake_response_has_our_security_headers(framed) -> None:  # type: ignore[no-untyped-def]
    _, p = framed
    cookie = await p.cookie(p.world.owner)
    key = base64.b64encode(b"another 16 bytes").decode()
    sent = [*ws_handshake(key, p.origin), ("Cookie", f"{COOKIE_NAME}={cookie}")]
    async with raw_request(p, "GET", f"/notebooks/{NB}/ws", sent) as (resp, _):
        assert resp.status == 101
        assert_security_headers(resp.headers, [])


async def test_revoking_access_ends_a_handed_off_streaming_response(echo) -> None:  # type: ignore[no-untyped-def]
    """`Expect: 100-continue` is handed off: forward_http streams the answer,
    and must cut it when the member's access goes, within the promised 10 s."""
    upstream, p = echo
    await wait_listening(p)
    session = await p.login(p.world.editor)
    try:
        before = handoffs(p)
        async with session.post(p.url("/upload-stream"), data=b"abc", expect100=True) as resp:
            assert resp.status == 200
            assert await asyncio.wait_for(resp.content.readexactly(8), 10) == b"got:abc;"
            assert delta(handoffs(p), before) == (0, 1)
            await unshare_and_expect_the_body_cut(p, resp)
    finally:
        upstream.client_got_first.set()
        await session.close()


def total(counter: Any, *labels: str) -> float:
    return float(counter.labels(*labels)._value.get())


@pytest.mark.parametrize(
    ("path", "status"),
    [("/ws-forbidden", 403), ("/not-a-socket", 502)],
    ids=["upstream-403", "upstream-not-a-socket"],
)
async def test_websocket_refused_upstream_is_never_accepted(
    echo,  # type: ignore[no-untyped-def]
    path: str,
    status: int,
) -> None:
    """Upstream is connected first: when it refuses the handshake, the client
    gets an error page, never a 101."""
    upstream, p = echo
    cookie = await p.cookie(p.world.owner)
    key = base64.b64encode(b"refused 16 bytes").decode()
    sent = [*ws_handshake(key, p.origin), ("Cookie", f"{COOKIE_NAME}={cookie}")]
    gauge = total(metrics.WEBSOCKETS_ACTIVE, "edit")
    errors = total(metrics.UPSTREAM_ERRORS_TOTAL, "other")
    refused = total(metrics.REQUESTS, "websocket", "upstream_error")
    async with raw_request(p, "GET", f"/notebooks/{NB}{path}", sent) as (resp, reader):
        assert resp.status == status
        assert "Sec-WebSocket-Accept" not in resp.headers
        assert resp.headers["Connection"] == "close"
        body = await asyncio.wait_for(reader.read(), 10)  # the page, then the close
        assert b"Notebook refused" in body
    assert [(s.method, s.path_qs) for s in upstream.seen] == [("GET", f"/notebooks/{NB}{path}")]
    assert total(metrics.WEBSOCKETS_ACTIVE, "edit") == gauge
    assert total(metrics.UPSTREAM_ERRORS_TOTAL, "other") == errors + 1
    assert total(metrics.REQUESTS, "websocket", "upstream_error") == refused + 1


@pytest.mark.parametrize("mode", ["edit", "view"])
@pytest.mark.parametrize("ending", ["close-frame", "connection-dropped"])
async def test_active_websockets_gauge_follows_an_open_socket(
    echo,  # type: ignore[no-untyped-def]
    mode: str,
    ending: str,
) -> None:
    upstream, p = echo
    name = "notebooks_proxy_websockets_active"
    other = "view" if mode == "edit" else "edit"
    before = await scraped(p, name, mode=mode)
    before_other = await scraped(p, name, mode=other)

    async def back_to_before() -> bool:
        return await scraped(p, name, mode=mode) == before

    if ending == "close-frame":
        session = await p.login(member_for(p, mode), mode)
        try:
            async with session.ws_connect(p.url("/ws"), origin=p.origin) as ws:
                if mode == "view":
                    assert await ws.receive_str(timeout=5) == KIOSK_READY
                await ws.send_str("hi")
                assert await ws.receive_str(timeout=5) == "echo:hi"
                assert await scraped(p, name, mode=mode) == before + 1
                assert await scraped(p, name, mode=other) == before_other
            assert ws.close_code == 1000
        finally:
            await session.close()
    else:  # the browser's connection just goes: no close frame
        cookie = await p.cookie(member_for(p, mode), mode)
        key = base64.b64encode(b"dropped 16 bytes").decode()
        sent = [*ws_handshake(key, p.origin), ("Cookie", f"{COOKIE_NAME}={cookie}")]
        async with raw_request(p, "GET", f"/notebooks/{NB}/ws", sent) as (resp, _):
            assert resp.status == 101
            assert await scraped(p, name, mode=mode) == before + 1
    await eventually(back_to_before, "the gauge to return once the socket closed")
    assert await scraped(p, name, mode=other) == before_other
    await eventually(lambda: len(upstream.ws_close_codes) == 1, "upstream's socket to close")


async def test_a_taken_port_leaves_nothing_of_the_proxy_listening_or_open(settings) -> None:  # type: ignore[no-untyped-def]
    """The public port taken: start fails, and the metrics listener it had
    opened first is closed again, as is the app (its pool)."""
    import socket

    from proxy.app import POOL, create_app
    from proxy.serve import start

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        metrics_port = probe.getsockname()[1]
    app = create_app(settings)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            await start(app, "127.0.0.1", taken.getsockname()[1], metrics_port=metrics_port)
    with socket.socket() as again:
        again.bind(("127.0.0.1", metrics_port))  # free: the metrics listener was closed
    assert app[POOL].closed


async def _closed(reader: asyncio.StreamReader) -> bytes:
    """What the proxy sends before closing the connection (b"" for nothing)."""
    try:
        return await asyncio.wait_for(reader.read(), 10)
    except ConnectionResetError:  # closed with our unread bytes in its buffer
        return b""


@pytest.mark.parametrize("framing", ["chunked", "length"])
async def test_revoking_access_mid_upload_never_lets_marimo_have_the_whole_body(
    echo,  # type: ignore[no-untyped-def]
    framing: str,
) -> None:
    """`Expect: 100-continue` hands the request to the app. Access ends while
    its body is still arriving: the client's connection is closed at once, and
    Marimo never gets the body whole, even when the client sends the rest."""
    upstream, p = echo
    await wait_listening(p)
    cookie = await p.cookie(p.world.editor)
    if framing == "chunked":
        frame, first, rest = "Transfer-Encoding: chunked", b"5\r\npart1\r\n", b"1\r\nx\r\n0\r\n\r\n"
    else:
        frame, first, rest = "Content-Length: 6", b"part1", b"x"
    reader, writer = await asyncio.open_connection("127.0.0.1", p.server.port)
    try:
        writer.write(
            (
                f"POST /notebooks/{NB}/upload HTTP/1.1\r\nHost: 127.0.0.1:{p.server.port}\r\n"
                f"Cookie: {COOKIE_NAME}={cookie}\r\nExpect: 100-continue\r\n{frame}\r\n\r\n"
            ).encode()
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert interim.startswith(b"HTTP/1.1 100 ")
        writer.write(first)
        await asyncio.wait_for(upstream.upload_first.wait(), 10)
        revoked = total(metrics.REVOKED, "access")
        sql(p.settings.database_url, "delete from team_memberships where member_id = 'EDITOR1'")
        assert await _closed(reader) == b""  # no answer, no waiting for the rest
        assert total(metrics.REVOKED, "access") == revoked + 1
        with contextlib.suppress(ConnectionError):
            writer.write(rest)  # too late: nothing more is read
            await writer.drain()
        await asyncio.wait_for(upstream.upload_ended.wait(), 10)
        assert upstream.uploads == ["broken"]
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


KEY = ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")


@pytest.mark.parametrize(
    "handshake",
    [
        ("GET", [("Sec-WebSocket-Version", "99"), KEY]),
        ("GET", [("Sec-WebSocket-Version", "13")]),
        ("GET", [("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Key", "short")]),
        ("POST", [("Sec-WebSocket-Version", "13"), KEY]),
    ],
    ids=["bad-version", "no-key", "bad-key", "post"],
)
async def test_a_malformed_websocket_handshake_gets_400_and_never_reaches_upstream(
    echo,  # type: ignore[no-untyped-def]
    handshake: tuple[str, list[tuple[str, str]]],
) -> None:
    upstream, p = echo
    method, extra = handshake
    cookie = await p.cookie(p.world.owner)
    sent = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Origin", p.origin),
        ("Cookie", f"{COOKIE_NAME}={cookie}"),
        *extra,
    ]
    refused = total(metrics.REQUESTS, "websocket", "bad_request")
    async with raw_request(p, method, f"/notebooks/{NB}/ws", sent) as (resp, reader):
        assert resp.status == 400
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert b"Bad request" in await asyncio.wait_for(reader.read(), 10)
    assert upstream.seen == []  # judged before upstream was connected
    assert total(metrics.REQUESTS, "websocket", "bad_request") == refused + 1


async def test_a_marimo_message_over_the_limit_ends_the_socket_with_1009(
    echo,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from proxy import forward

    assert forward.MARIMO_MESSAGE_LIMIT == 64 * 1024 * 1024
    monkeypatch.setattr(forward, "MARIMO_MESSAGE_LIMIT", 64 * 1024)  # the same code, faster
    limit = forward.MARIMO_MESSAGE_LIMIT
    upstream, p = echo
    session = await p.login(p.world.owner)
    try:
        async with session.ws_connect(p.url("/ws"), origin=p.origin) as ws:
            await ws.send_str(f"big:{limit - 1}")  # under the limit: passed on
            assert len(await ws.receive_str(timeout=30)) == limit - 1
            await ws.send_str(f"big:{limit}")  # at it: never held whole, never passed on
            msg = await ws.receive(timeout=30)
            assert msg.type == aiohttp.WSMsgType.CLOSE, msg
            assert ws.close_code == 1009
            # A reason on which Marimo's page stops reconnecting: a reconnect
            # would be replayed the same message, and closed again, forever.
            assert msg.extra == forward.TOO_BIG_REASON == "MARIMO_SHUTDOWN"
        await eventually(lambda: len(upstream.ws_close_codes) == 1, "upstream's socket to close")
    finally:
        await session.close()


async def test_marimo_only_query_keys_never_reach_an_editors_websocket(echo) -> None:  # type: ignore[no-untyped-def]
    """Marimo's `/ws` opens (and creates) whatever file `file` names, with a
    kernel of its own: not for anyone to choose through the proxy."""
    upstream, p = echo
    session = await p.login(p.world.owner)
    try:
        query = "session_id=abc&file=%2Fother%2Fnb.py&x=1&access_token=t"
        url = URL(p.url(f"/ws?{query}"), encoded=True)
        async with session.ws_connect(url, origin=p.origin) as ws:
            await ws.send_str("hi")
            assert await ws.receive_str(timeout=5) == "echo:hi"
        assert upstream.last_query == "session_id=abc&x=1"
    finally:
        await session.close()


async def test_a_notify_pass_judges_the_connections_it_concerns_in_one_lookup(echo) -> None:  # type: ignore[no-untyped-def]
    """A NOTIFY re-checks only the connections its payload names, every one
    of them from the one statement of its pass."""
    _, p = echo
    await wait_listening(p)
    owner, editor = await p.login(p.world.owner), await p.login(p.world.editor)
    owner_key = (p.world.owner, NB, api_token_of(p.world.owner))
    editor_key = (p.world.editor, NB, api_token_of(p.world.editor))
    try:
        async with (
            owner.ws_connect(p.url("/ws"), origin=p.origin) as kept,
            editor.ws_connect(p.url("/ws"), origin=p.origin) as ended,
            refreshes(p) as seen,
        ):
            # member:OWNER1 concerns the owner's connection alone.
            sql(
                p.settings.database_url,
                "update members set organization_admin = true where id = 'OWNER1'",
            )
            await eventually(lambda: seen.keys, "the owner's pass")
            assert seen.keys == [frozenset({owner_key})]
            # notebook:NB concerns both: one statement, each judged from it.
            sql(p.settings.database_url, "delete from notebook_teams where team_id = 'TEAMED1'")
            msg = await ended.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.CLOSE and ended.close_code == 4403
            assert seen.keys[1:] == [frozenset({owner_key, editor_key})]
            await kept.send_str("still here")
            assert await kept.receive_str(timeout=5) == "echo:still here"
    finally:
        await owner.close()
        await editor.close()


@pytest.mark.parametrize("behaviour", ["raises", "hangs"])
async def test_a_pass_that_cannot_look_up_access_ends_nothing_confirmed_just_now(
    echo,  # type: ignore[no-untyped-def]
    behaviour: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its one statement fails or hangs (a slow database): every connection
    is unconfirmed, but only just, so none ends; the next pass that gets an
    answer sees the revocation."""
    from proxy import app

    monkeypatch.setattr(app, "RECHECK_LOOKUP_SECONDS", 0.2)  # a hang times out sooner
    _, p = echo
    await wait_listening(p)
    owner, editor = await p.login(p.world.owner), await p.login(p.world.editor)
    try:
        async with (
            owner.ws_connect(p.url("/ws"), origin=p.origin) as kept,
            editor.ws_connect(p.url("/ws"), origin=p.origin) as ended,
        ):
            async with refreshes(p, behaviour) as seen:
                sql(p.settings.database_url, "delete from notebook_teams where team_id = 'TEAMED1'")
                await eventually(lambda: seen.failures, "the pass's lookup to fail")
                for ws in (kept, ended):
                    await ws.send_str("still here")
                    assert await ws.receive_str(timeout=5) == "echo:still here"
            await app._recheck(p.server.app, "*")  # the database answers again
            msg = await ended.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.CLOSE and ended.close_code == 4403
            await kept.send_str("still here")
            assert await kept.receive_str(timeout=5) == "echo:still here"
    finally:
        await owner.close()
        await editor.close()


async def test_a_connection_whose_access_cannot_be_confirmed_ends_with_1013(settings) -> None:  # type: ignore[no-untyped-def]
    """Fail closed: while the database cannot answer (here its one pooled
    connection is taken), a revocation cannot be seen, so a connection whose
    access no re-check has confirmed for UNCONFIRMED_SECONDS (by the proxy's
    clock) ends with 1013; Marimo's page reconnects, to a 503 page."""
    from proxy.app import CACHE, POOL, UNCONFIRMED_SECONDS

    tight = dataclasses.replace(settings, db_pool_max=1, db_pool_wait_seconds=1)
    async with echo_proxy(tight, recheck_seconds=0.2) as (_, p):
        await wait_listening(p)
        session = await p.login(p.world.editor)
        try:
            async with session.ws_connect(p.url("/ws"), origin=p.origin) as ws:
                unconfirmed = total(metrics.REVOKED, "unconfirmed")
                async with p.server.app[POOL].connection(timeout=10), refreshes(p) as seen:
                    failures = seen.failures
                    sql(tight.database_url, "delete from team_memberships where role = 'editor'")
                    await eventually(lambda: failures, "a re-check to fail, the database away")
                    # Not yet past the limit: the socket goes on, revoked or not, through
                    # a failed pass that started after the clock moved (periodic passes
                    # run one after the other; beside them, at most the NOTIFY's pass
                    # is in flight: the third failure from now is such a one).
                    p.clock.advance(UNCONFIRMED_SECONDS - 1)
                    seen = len(failures)
                    await eventually(lambda: len(failures) >= seen + 3, "three more failures")
                    await ws.send_str("hi")
                    assert await ws.receive_str(timeout=5) == "echo:hi"
                    p.clock.advance(1)
                    msg = await ws.receive(timeout=10)
                    assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 1013
                    # Marimo's page reconnects; while the database is away, a page to
                    # retry (once the access cached at the last good read has expired,
                    # which in real time it has 8 s later).
                    p.server.app[CACHE].invalidate("*")
                    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                        await session.ws_connect(p.url("/ws"), origin=p.origin)
                    assert err.value.status == 503
                assert total(metrics.REVOKED, "unconfirmed") == unconfirmed + 1
            # The database back: the revocation it holds is seen.
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await session.ws_connect(p.url("/ws"), origin=p.origin)
            assert err.value.status == 403
        finally:
            await session.close()


async def test_marimo_is_told_the_scheme_browsers_use_behind_a_tls_ingress(
    settings: Settings,
) -> None:
    """The proxy serves plain HTTP behind an ingress that terminates TLS: its
    own request scheme is `http`, yet browsers use https, and Marimo must be
    told so (X-Forwarded-Proto), on the lane and on the aiohttp path alike."""
    behind_tls = dataclasses.replace(settings, proxy_public_url="https://notebooks.example.com")
    async with echo_proxy(behind_tls) as (upstream, p):
        session = await p.login(p.world.owner)
        try:
            async with session.get(p.url("/echo")) as resp:  # relayed by the lane
                assert (await resp.json())["headers"]["x-forwarded-proto"] == "https"
        finally:
            await session.close()
        cookie = await p.cookie(p.world.owner, "edit")
        before = handoffs(p)
        async with raw_request(p, "HEAD", f"/notebooks/{NB}/banner", browser_headers(cookie)) as (
            resp,
            _,
        ):
            assert resp.status == 200
        assert delta(handoffs(p), before) == (0, 1)  # the aiohttp path
        assert (
            dict((k.lower(), v) for k, v in upstream.seen[-1].headers)["x-forwarded-proto"]
            == "https"
        )


async def test_a_member_past_the_websocket_cap_gets_a_429_until_one_closes(
    settings: Settings,
) -> None:
    """NOTEBOOKS_PROXY_MAX_WEBSOCKETS_PER_MEMBER: a runaway page or script
    cannot take the proxy's sockets from everyone else. Handshakes under way
    count too; another member has a cap of their own."""
    capped = dataclasses.replace(settings, proxy_max_websockets_per_member=2)
    async with echo_proxy(capped) as (upstream, p):
        owner = await p.login(p.world.owner)
        editor = await p.login(p.world.editor)
        try:
            first = await owner.ws_connect(p.url("/ws"), origin=p.origin)
            second = await owner.ws_connect(p.url("/ws"), origin=p.origin)
            refused = total(metrics.REQUESTS, "websocket", "too_many")
            with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
                await owner.ws_connect(p.url("/ws"), origin=p.origin)
            assert caught.value.status == 429
            assert total(metrics.REQUESTS, "websocket", "too_many") == refused + 1
            theirs = await editor.ws_connect(p.url("/ws"), origin=p.origin)
            await first.close()
            await eventually(
                lambda: p.server.app[PROXY].registry.websockets_of(p.world.owner) == 1,
                "the closed socket to leave the count",
            )
            third = await owner.ws_connect(p.url("/ws"), origin=p.origin)
            await third.send_str("hi")
            assert await third.receive_str(timeout=5) == "echo:hi"
            for ws in (second, third, theirs):
                await ws.close()
        finally:
            await owner.close()
            await editor.close()

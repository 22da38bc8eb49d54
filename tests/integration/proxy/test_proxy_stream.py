"""Streaming through the proxy against a small in-process upstream that shows
what it received: headers filtered and injected, bodies streamed both ways
without buffering, WebSocket messages and close codes passed through."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from proxy_helpers import (
    ProxyUnderTest,
    aiohttp_upstream,
    free_port,
    insert_world,
    proxy_in_front,
    serve_proxy,
    sql,
    wait_listening,
)
from yarl import URL

from common.settings import Settings

NB = "NBECHO1"
TOKEN = "upstream-secret-token"


class Upstream:
    def __init__(self) -> None:
        self.first_chunk_sent = asyncio.Event()
        self.client_got_first = asyncio.Event()
        self.upload_first = asyncio.Event()
        self.ws_close_codes: list[int | None] = []
        self.last_headers: dict[str, str] = {}
        self.last_query = ""

    def app(self) -> web.Application:
        app = web.Application()
        base = f"/notebooks/{NB}"
        app.router.add_get(base + "/echo", self.echo)
        app.router.add_get(base + "/stream", self.stream)
        app.router.add_post(base + "/upload", self.upload)
        app.router.add_get(base + "/ws", self.ws)
        return app

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
        async for chunk in request.content.iter_any():
            got += chunk
            if b"part1" in got:
                self.upload_first.set()
        return web.json_response({"received": got.decode()})

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        self.last_headers = dict(request.headers)
        self.last_query = request.query_string
        ws = web.WebSocketResponse(protocols=("marimo-test",))
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT and msg.data == "bye":
                await ws.close(code=4001, message=b"upstream says bye")
                break
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
            assert "notebooks_proxy_session" not in got.get("cookie", "")
            assert "other=kept" in got.get("cookie", "")
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


async def test_upstream_down_gives_502_page(settings: Settings) -> None:
    world = insert_world(settings.database_url, f"http://127.0.0.1:{free_port()}", TOKEN, NB)
    server, p = await serve_proxy(settings, world)
    try:
        session = await p.login(world.owner)
        async with session.get(p.url("/echo")) as resp:
            assert resp.status == 502
            assert "not reachable" in await resp.text()
        await session.close()
    finally:
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
            await ws.send_str("x")
            await ws.receive_str(timeout=5)
        # Also under a session id no editor can have (see proxy/policy.py).
        assert upstream.last_query == "session_id=view-abc&kiosk=true"
    finally:
        await session.close()


async def test_revoking_access_ends_a_streaming_response(echo) -> None:  # type: ignore[no-untyped-def]
    upstream, p = echo
    await wait_listening(p)
    session = await p.login(p.world.editor)
    try:
        async with session.get(p.url("/stream")) as resp:
            assert await asyncio.wait_for(resp.content.readexactly(6), 10) == b"first;"
            sql(
                p.settings.database_url,
                "delete from notebook_teams where team_id = %s",
                (p.world.team,),
            )
            # Upstream never sends more; the proxy must cut the body itself.
            with pytest.raises(
                (
                    aiohttp.ClientPayloadError,
                    aiohttp.ClientConnectionError,
                    asyncio.IncompleteReadError,
                )
            ):
                await asyncio.wait_for(resp.content.read(), 10)
    finally:
        upstream.client_got_first.set()
        await session.close()


async def test_client_leaving_mid_body_frees_the_connection(echo) -> None:  # type: ignore[no-untyped-def]
    from proxy import metrics
    from proxy.app import PROXY

    upstream, p = echo
    errors_before = sum(
        metrics.UPSTREAM_ERRORS_TOTAL.labels(k)._value.get() for k in metrics.UPSTREAM_ERRORS
    )
    session = await p.login(p.world.owner)
    try:
        resp = await session.get(p.url("/stream"))
        assert await asyncio.wait_for(resp.content.readexactly(6), 10) == b"first;"
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


REVOCATIONS = {
    "team membership removed": "delete from team_memberships where member_id = 'EDITOR1'",
    "team unshared": "delete from notebook_teams where team_id = 'TEAMED1'",
    "role lowered to viewer": (
        "update team_memberships set role = 'viewer' where member_id = 'EDITOR1'"
    ),
    "member disabled": "update members set disabled_at = now() where id = 'EDITOR1'",
    "notebook stopping": "update notebooks set status = 'stopping'",
    "new session": "update notebooks set session_id = 'OTHER'",
    "notebook deleted": "update notebooks set deleted_at = now(), desired_state = 'deleted'",
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
            started = time.monotonic()
            sql(p.settings.database_url, REVOCATIONS[change])
            msg = await ws.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.CLOSE, msg
            assert ws.close_code == 4403
            assert time.monotonic() - started < 10
    finally:
        await session.close()


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


async def test_a_browser_that_vanished_is_noticed_and_its_marimo_socket_closed(settings) -> None:  # type: ignore[no-untyped-def]
    """No close frame, no pongs (a laptop asleep): the heartbeat notices and
    closes upstream, so Marimo orphans the session for the member's next open."""
    async with echo_proxy(settings, ws_heartbeat_seconds=0.5) as (upstream, p):
        session = await p.login(p.world.owner)
        try:
            ws = await session.ws_connect(p.url("/ws"), origin=p.origin, autoping=False)
            await ws.send_str("hi")
            assert (await ws.receive(timeout=5)).data == "echo:hi"
            # From here the client neither reads nor answers pings.
            for _ in range(200):  # up to 10 s
                if upstream.ws_close_codes:
                    break
                await asyncio.sleep(0.05)
            assert upstream.ws_close_codes == [1001]  # "going away", as for a closed tab
        finally:
            await session.close()


async def test_a_quiet_browser_that_answers_pings_stays_connected(settings) -> None:  # type: ignore[no-untyped-def]
    """Silent but alive (an open tab nobody types in): pinged, it answers, and
    its socket outlives several heartbeat intervals."""
    async with echo_proxy(settings, ws_heartbeat_seconds=0.3) as (upstream, p):
        session = await p.login(p.world.owner)
        try:
            ws = await session.ws_connect(p.url("/ws"), origin=p.origin, autoping=False)
            pings = 0
            while pings < 4:  # 4 pings: each after 1 interval of silence from us
                msg = await ws.receive(timeout=5)
                assert msg.type == aiohttp.WSMsgType.PING, msg
                pings += 1
                await ws.pong(msg.data)
            assert upstream.ws_close_codes == []  # still connected upstream
            await ws.send_str("still here")
            assert (await ws.receive(timeout=5)).data == "echo:still here"
        finally:
            await session.close()
